import os

import pytest

from zoo._quiet import notices_dropped

NOTICE = (b"I0000 00:00:1795816329.071505    7414 port.cc:153] oneDNN custom operations are on. You may see "
          b"slightly different numerical results\n")
CUINIT = (b"E0000 00:00:1795816331.183951    7414 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
          b"error: Failed call to cuInit: UNKNOWN ERROR (303)\n")


def test_drops_the_notices_and_writes_every_other_line_back_in_order(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with notices_dropped():
        os.write(2, b"first\n" + NOTICE + b"second\n" + CUINIT)
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nlast, unterminated")
        assert capfd.readouterr().err == ""  # held until the block ends
    assert capfd.readouterr().err == "first\nsecond\nlast, unterminated"


def test_the_lines_come_back_when_the_block_raises(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with pytest.raises(RuntimeError, match="boom"):
        with notices_dropped():
            os.write(2, NOTICE + b"why it failed\n")
            raise RuntimeError("boom")
    assert capfd.readouterr().err == "why it failed\n"


@pytest.mark.parametrize("level", ["0", "1"])
def test_nothing_is_dropped_when_info_lines_are_asked_for(capfd, monkeypatch, level):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", level)
    with notices_dropped():
        os.write(2, NOTICE)
    assert capfd.readouterr().err == NOTICE.decode()
