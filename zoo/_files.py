"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of one.

Everything the package writes for later (checkpoint state, weights, metadata, exports) goes through
`atomic_path`: the content is written to a temporary name in the target's directory (so the rename
stays on one file system) and renamed over the target only once it is complete; on an error the
temporary file is removed and the target is untouched. Writers that read, change and rewrite files a
directory shares (the weights registry, an export's report) take turns with `locked`.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from typing import Any, Iterator

__all__ = ["atomic_path", "locked", "write_bytes", "write_json", "write_text"]


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


_THREAD_LOCKS: dict[str, threading.Lock] = {}
_HELD = threading.local()


@contextlib.contextmanager
def locked(directory: str | os.PathLike, *, shared: bool = False) -> Iterator[None]:
    """Holds an exclusive lock on an existing ``directory`` across processes and threads, or with
    ``shared=True`` one that other processes' shared locks do not exclude (readers).

    The lock is ``flock`` on the directory's own descriptor, so there is no lock file to leave behind,
    and a process killed while holding it releases it. It is re-entrant within a thread: a block that
    holds it may call code that takes it again, and gets the lock it holds (a shared one stays shared).
    Where ``fcntl`` is missing (Windows), only the threads of one process take turns.

    Example:
        >>> with locked("zoo/weights"):  # doctest: +SKIP
        ...     entries = read_entries(); write_entries(entries + [new])
    """
    key = os.path.realpath(directory)
    held = _HELD.__dict__.setdefault("keys", set())
    if key in held:
        yield
        return
    with _THREAD_LOCKS.setdefault(key, threading.Lock()):  # flock does not exclude a process's own threads
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX (a directory cannot be opened there either)
            fcntl = None
        fd = os.open(key, os.O_RDONLY) if fcntl is not None else None
        held.add(key)
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            held.discard(key)
            if fd is not None:
                os.close(fd)  # releases the flock
