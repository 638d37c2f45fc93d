"""Tuned encoders kept for the rest of a search, so each fold tunes once.

``GridSearchCV`` fits a clone per candidate and fold; candidates that differ
only in the classifier's parameters (or in the vectorizer's inference-only
ones) would tune the same encoder on the same fold again. A tuning run is
named by its *tuning key* (:func:`tuning_key`: the base model's identity,
the training texts and labels, every setting that changes the tuned
weights, the seed and the device type), and its result is kept:

* in this process, as the registry's model under the tuned identity;
* in the session directory (:mod:`skbert._storage.session`, shared with the worker
  processes of ``n_jobs``, removed when the search's process exits), as the
  files of a checkpoint folder, at most :data:`MAX_ENTRIES` of them (the
  oldest go first).

A file lock per key lets one process tune while the others wait and then
read its result. An entry is read back through the checked loading path and
used only if its weights have the fingerprint written with them; storage
trouble never fails a fit, it only costs a tuning run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._core.filelock import file_lock
from .._core.report import user_stacklevel
from .._model.identity import canonical_digest
from .._storage import session as _session

if TYPE_CHECKING:
    import torch

    from .._model.checkpoint import LoadedModel

__all__ = ["MAX_ENTRIES", "claim", "read_entry", "tuning_key", "write_entry"]

#: Tuned checkpoints a session directory keeps (a 10-fold search needs 11).
MAX_ENTRIES = 12
_FOLDER = "tuned"
_RECORD = "skbert-tuning.json"
_FORMAT = 1


def tuning_key(
    base: str, texts: list[str], codes: np.ndarray, classes: np.ndarray, settings: dict
) -> str:
    """SHA-256 naming a tuning run: ``base`` (the base model's identity
    digest), the texts and labels, and ``settings`` (JSON-able)."""
    hasher = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        hasher.update(len(data).to_bytes(8, "little") + data)
    return canonical_digest(
        {
            "format": _FORMAT,
            "base": base,
            "texts": hasher.hexdigest(),
            "codes": hashlib.sha256(codes.astype("<i8").tobytes()).hexdigest(),
            "classes": [[type(c).__name__, str(c)] for c in classes.tolist()],
            "settings": settings,
        }
    )


def _root() -> Path:
    return Path(_session.share()) / _FOLDER


@contextlib.contextmanager
def claim(key: str) -> Iterator[Path | None]:
    """Hold the key's lock; yield its entry folder (``None``: no storage)."""
    name = key.removeprefix("sha256:")
    try:
        root = _root()
        lock = file_lock(root / f"{name}.lock")
        lock.__enter__()
    except OSError as exc:
        _warn(exc)
        yield None
        return
    try:
        yield root / name
    finally:
        lock.__exit__(None, None, None)


def read_entry(
    entry: Path | None, device: torch.device, description: str
) -> tuple[LoadedModel, dict[str, Any]] | None:
    """The tuned model stored at ``entry`` and its report, if it is whole."""
    import torch

    from .._model.checkpoint import load_folder

    if entry is None or not (entry / _RECORD).is_file():
        return None
    try:
        record = json.loads((entry / _RECORD).read_text(encoding="utf-8"))
        loaded = load_folder(
            entry, device=device, dtype=torch.float32, description=description
        )
    except (OSError, ValueError):
        return None  # damaged: tuned again
    if not isinstance(record, dict) or record.get("weights") != loaded.fingerprint:
        return None
    with contextlib.suppress(OSError):  # used: the last to be evicted
        os.utime(entry / _RECORD)
    return loaded, record.get("report", {})


def write_entry(entry: Path | None, files: dict[str, bytes], record: dict) -> None:
    """Store a tuned checkpoint's files at ``entry`` (whole, or not at all)."""
    if entry is None:
        return
    tmp = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".writing-", dir=entry.parent))
        for name, data in files.items():
            (tmp / name).parent.mkdir(exist_ok=True)
            (tmp / name).write_bytes(data)
        _write_record(tmp, record)
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(tmp, entry)
    except BaseException as exc:  # Ctrl-C too: nothing half-written stays
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(exc, OSError):
            raise
        _warn(exc)
        return
    _evict(entry.parent)


def _write_record(folder: Path, record: dict) -> None:
    """The entry's record, written last: an entry without one is not whole."""
    (folder / _RECORD).write_text(json.dumps(record), encoding="utf-8")


def _evict(root: Path) -> None:
    """Remove the least recently used entries beyond :data:`MAX_ENTRIES`, each
    only while no process holds its key (one being read or written stays)."""
    import fcntl

    entries = []
    for entry in root.iterdir():
        with contextlib.suppress(OSError):  # gone meanwhile
            entries.append(((entry / _RECORD).stat().st_mtime_ns, entry))
    entries.sort()
    for _, stale in entries[: max(0, len(entries) - MAX_ENTRIES)]:
        try:
            with open(root / f"{stale.name}.lock", "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:  # in use by another process, or no longer there
            continue


def _warn(exc: OSError) -> None:
    warnings.warn(
        "skbert could not keep the fine-tuned encoder for the rest of this session "
        f"({type(exc).__name__}: {exc}); the fit goes on, but another fit on the "
        "same data tunes it again.",
        RuntimeWarning,
        stacklevel=user_stacklevel(),
    )
