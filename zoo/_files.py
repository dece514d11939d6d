"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of one.

Everything the package writes for later (checkpoint state, weights, metadata, exports) goes through
`atomic_path`: the content is written to a temporary name in the target's directory (so the rename
stays on one file system) and renamed over the target only once it is complete; on an error the
temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from typing import Any, Iterator

__all__ = ["atomic_path", "write_bytes", "write_json", "write_text"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside ``path`` to write; renames it to ``path`` when the block succeeds.

    The temporary name keeps ``path``'s suffix (``.h5`` writers check it).

    Example:
        >>> with atomic_path("/tmp/w.h5") as tmp:  # doctest: +SKIP
        ...     model.save_weights(tmp)
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    stem, suffix = os.path.splitext(name)
    # A fresh name the writer creates itself, so the file gets the usual permissions (mkstemp's are 0600).
    tmp = os.path.join(directory, f".{stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically, with ``\\n`` line ends on every platform."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_png(path: str | os.PathLike, figure: Any, **options: Any) -> None:
    """Saves a matplotlib ``figure`` as a PNG to ``path`` atomically (``options`` go to ``savefig``)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", **options)


def write_json(path: str | os.PathLike, data: Any, *, indent: int = 1, sort_keys: bool = True) -> None:
    """Writes ``data`` as JSON (a trailing newline) to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n")
