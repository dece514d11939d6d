"""Shared fixtures. Importing zoo first sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads."""

import zoo  # must precede any TensorFlow import

import contextlib
import json
import os
import subprocess
import sys
from typing import Iterator

import pytest

_MEASURE_CARDS = ("import sys, zoo._files as f, zoo._registry as r; "
                  "f.write_json(sys.argv[1], r.compute_cards(sys.argv[2:]))")
_CARD_PARTS = 4


@contextlib.contextmanager
def _claim(directory, *, wait: bool) -> Iterator[bool]:
    """An exclusive ``flock`` on ``directory``: yields whether it was taken (always, with ``wait``)."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)  # releases the flock


@pytest.fixture(scope="session")
def measured_cards(tmp_path_factory):
    """Every registered model built at its defaults and measured (params, trainable, MACs).

    Measured once per run and shared by the xdist workers, in `_CARD_PARTS` parts, each in a child
    process: a worker measures each part no other worker has started, then waits for the others' (or
    measures a part whose worker died). One worker measuring all 53 models took about 105 s while the
    other waited; building them in the workers themselves left about 4 GB in each.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this run's, not an earlier one's
    names = zoo.list_models()
    parts = []
    for i in range(_CARD_PARTS):
        (shared / f"measured_cards.{i}").mkdir(exist_ok=True)
        parts.append((shared / f"measured_cards.{i}", names[i::_CARD_PARTS]))
    for wait in (False, True):
        for directory, part in parts:
            with _claim(directory, wait=wait) as mine:
                if mine and not (directory / "cards.json").exists():
                    subprocess.run([sys.executable, "-c", _MEASURE_CARDS, str(directory / "cards.json"), *part],
                                   check=True, timeout=1200)
    cards = {}
    for directory, _ in parts:
        cards.update(json.loads((directory / "cards.json").read_text()))
    return {name: cards[name] for name in names}
