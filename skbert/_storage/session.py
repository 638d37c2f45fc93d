"""One embedding cache for a process and the workers it starts.

``GridSearchCV(..., n_jobs=k)`` pickles the pipeline into ``k`` worker
processes; each would otherwise have its own in-process cache and encode
every text again, and the parent once more for the refit. With the default
``cache="auto"``, a vectorizer pickled by a process carries the path of that
process's *session directory* (created on first need in the system's
temporary folder, named after the process); a process that unpickles it
joins the session, and ``cache="auto"`` then means the in-process cache in
front of one SQLite store in that directory, which all of them share: each
distinct text is encoded once across the parent and its workers (the disk
store's file locks let one process compute a text while the others encode
other texts or wait, then read it).

The directory is removed when the process that made it exits normally
(directories of processes that no longer run are removed by the next one to
start a session); its database stops growing beyond the in-process cache's
byte budget. A path read from a pickle is used only if it is such a session
directory: in the temporary folder, named ``skbert-session-*``, a real
directory owned by this user.

The session also keeps small *notes* that its processes leave for each other
(:func:`write_note`, :func:`read_note`): what a checkpoint folder, as it is
on disk now, was found to be when one of them loaded it, so that the others
need not load it again to know its identity.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

__all__ = ["active", "join", "read_note", "share", "write_note"]

_PREFIX = "skbert-session-"
#: The session's subfolder of notes, one JSON file per note.
_NOTES = "notes"
_NAME = re.compile(rf"{_PREFIX}(\d+)-[A-Za-z0-9_]+")
_LOCK = threading.Lock()
#: This process's session: the directory, and whether this process made it.
_STATE: dict[str, object] = {"path": None, "owner": None}


def active() -> Path | None:
    """The session directory this process uses, if any."""
    with _LOCK:
        path = _STATE["path"]
    return path if isinstance(path, Path) and path.is_dir() else None


def share() -> str:
    """The session directory to hand to worker processes (made if needed)."""
    with _LOCK:
        path = _STATE["path"]
        if isinstance(path, Path) and path.is_dir():
            return str(path)
        _remove_orphans()
        made = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        _STATE.update(path=made, owner=os.getpid())
        atexit.register(_remove, made, os.getpid())
        return str(made)


def join(path: object) -> None:
    """Use the session directory ``path`` read from a pickle, if it is one."""
    if not isinstance(path, str) or not _is_session(Path(path)):
        return
    with _LOCK:
        if _STATE["path"] is None or not Path(str(_STATE["path"])).is_dir():
            _STATE.update(path=Path(path), owner=None)


def _note_path(session: Path, name: str) -> Path:
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return session / _NOTES / f"{digest}.json"


def write_note(name: str, value: dict) -> None:
    """Leave ``value`` (JSON) under ``name`` for the session's processes; nothing
    without a session, nothing if it cannot be written (a note saves work, it
    is never needed)."""
    session = active()
    if session is None:
        return
    target = _note_path(session, name)
    try:
        target.parent.mkdir(exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(value, out)
        os.replace(temporary, target)  # readers see the whole note or none
    except OSError:
        return


def read_note(name: str) -> dict | None:
    """The note left under ``name`` in this process's session, if any."""
    session = active()
    if session is None:
        return None
    try:
        value = json.loads(_note_path(session, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _is_session(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return (
        _NAME.fullmatch(path.name) is not None
        and path.parent == Path(tempfile.gettempdir())
        and path.is_dir()
        and not path.is_symlink()
        and info.st_uid == os.getuid()
    )


def _remove(path: Path, owner: int) -> None:
    if os.getpid() == owner:  # not in a forked child that inherited the hook
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_orphans() -> None:
    """Session directories of processes that died without cleaning up."""
    for entry in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        match = _NAME.fullmatch(entry.name)
        if match and _is_session(entry) and not _alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
