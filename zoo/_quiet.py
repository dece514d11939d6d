"""TensorFlow's start-up notices, kept out of the command line's output.

TensorFlow 2.21 writes a few lines to stderr while it loads, before its logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` does not silence them: that oneDNN is on (twice), that no CUDA driver was
found, and ``failed call to cuInit`` (an error line on every machine without a GPU). The entry points
(``zoo``, ``python -m zoo.demo``) load TensorFlow with `import_tensorflow`, which drops those lines and
writes every other line back; with ``TF_CPP_MIN_LOG_LEVEL`` at 0 or 1 (info lines asked for) nothing is
dropped. LiteRT prints one more line the first time a process runs an interpreter (XNNPACK), which no log
level silences; `export.tflite.TFLiteModel` drops it with `notices_dropped`, and `export.tflite.convert` the
converter's quantizer line (``fully_quantize: 0, inference_type: 6, ...``, printed on every int8 conversion).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

__all__ = ["import_tensorflow", "notices_dropped"]

_NOTICES = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called|oneDNN custom operations are on"
    r"|Could not find cuda drivers|failed call to cuInit|Created TensorFlow Lite XNNPACK delegate"
    r"|^fully_quantize: \d+, inference_type: "  # the TFLite converter's quantizer, on every int8 conversion
)


@contextlib.contextmanager
def notices_dropped() -> Iterator[None]:
    """Captures file descriptor 2 while the block runs, then writes back, in order, every line but the notices.

    The lines come back when the block ends, an exception included; only a crash of the process loses them.
    """
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("0", "1"):
        yield
        return
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _NOTICES.search(line)))
            sys.stderr.flush()


def import_tensorflow():
    """``import tensorflow`` and its device probe, without the start-up notices; returns the module."""
    with notices_dropped():
        import tensorflow as tf

        tf.config.list_physical_devices()  # probes CUDA: the cuInit line comes here
    return tf
