"""An exclusive lock that processes take on a file (``flock``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

__all__ = ["file_lock", "open_for_locking"]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, with its folder, if needed).

    The lock is released when the block ends, or by the operating system when
    the process dies, so a killed process never leaves it held.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open_for_locking(path) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
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
