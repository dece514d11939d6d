"""The demo's figure (`zoo.demo.samples_png`); the whole demo runs in tests/zoo/test_cli_train.py."""

import os

import numpy as np
import pytest

from zoo import demo


def _samples(path):
    images = np.zeros((3, 8, 8, 1), np.uint8)
    labels, predicted = np.array([0, 1, 1]), np.array([0, 1, 0])
    return demo.samples_png(images, labels, predicted, np.array([0.9, 0.8, 0.6]), ["a", "b"], path, count=3)


def test_samples_png_is_written_atomically(tmp_path, monkeypatch):
    path = tmp_path / "samples"  # no suffix: the format is PNG whatever the name
    assert _samples(path) == path and path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    path.write_bytes(b"old")

    def interrupted(src, dst):
        raise KeyboardInterrupt  # as if killed between writing and renaming

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(os, "replace", interrupted)
        _samples(path)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["samples"]
