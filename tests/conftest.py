"""Shared fixtures. Importing zoo first sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads."""

import zoo  # noqa: F401  (must precede any TensorFlow import)

import json
import os
import subprocess
import sys

import pytest

_MEASURE_CARDS = "import sys, zoo._files as f, zoo._registry as r; f.write_json(sys.argv[1], r.compute_cards())"


@pytest.fixture(scope="session")
def measured_cards(tmp_path_factory):
    """Every registered model built at its defaults and measured (params, trainable, MACs).

    Measured once per run, in a child process, and shared by the xdist workers: building the 53 models
    left about 4 GB in each worker that did it, and both workers did, with the publish tests' child
    processes still to come.
    """
    from zoo._files import locked

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # this run's, not an earlier one's
    path = shared / "measured_cards.json"
    with locked(shared):
        if not path.exists():
            subprocess.run([sys.executable, "-c", _MEASURE_CARDS, str(path)], check=True, timeout=1200)
    return json.loads(path.read_text())
