"""An exclusive lock that processes take on a file (``flock``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

__all__ = ["file_lock", "open_for_locking"]


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created, with its folder, if needed);
    the block is told whether it holds it: with ``wait=False``, ``False`` at
    once where another holder has it.

    The lock is released when the block ends, or by the operating system when
    the process dies, so a killed process never leaves it held.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open_for_locking(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_for_locking(path: Path):
    """``path`` opened to be locked: created if need be, or read-only where the
    process may not write it (``flock`` needs no write access)."""
    try:
        return open(path, "a+b")
    except PermissionError:
        if not path.exists():
            raise
        return open(path, "rb")
