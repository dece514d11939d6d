"""Atomic writes (`zoo._files`): the target holds the old content or the new, never a part."""

import json
import os

import pytest

from zoo import _files


def test_a_write_replaces_the_target_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "state.json"
    _files.write_json(target, {"step": 1})
    _files.write_json(target, {"step": 2})
    assert json.loads(target.read_text()) == {"step": 2} and target.read_text().endswith("\n")
    assert os.listdir(target.parent) == ["state.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # like open(), not mkstemp's 0600


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "weights.h5"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="killed mid-write"):
        with _files.atomic_path(target) as tmp:
            assert tmp.endswith(".h5") and os.path.dirname(tmp) == str(tmp_path)  # h5 writers check the suffix
            with open(tmp, "wb") as f:
                f.write(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["weights.h5"]


def test_bytes_and_text(tmp_path):
    _files.write_bytes(tmp_path / "m.tflite", b"\x00\x01")
    _files.write_text(tmp_path / "m.json", "é\n")
    assert (tmp_path / "m.tflite").read_bytes() == b"\x00\x01"
    assert (tmp_path / "m.json").read_text(encoding="utf-8") == "é\n"


def test_locked_excludes_other_threads_and_is_reentrant(tmp_path):
    import threading
    import time

    from zoo._files import locked

    order = []
    with locked(tmp_path):
        with locked(tmp_path):  # re-entrant: a publish that finishes a journal takes it again
            order.append("nested")

        def other():
            with locked(tmp_path):
                order.append("other")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        order.append("holder")  # the other thread waits until the block ends
    thread.join(timeout=10)
    assert order == ["nested", "holder", "other"]
