"""The process-wide registry of loaded models, keyed by model identity.

``GridSearchCV`` clones the vectorizer for every candidate and fold; the
registry lets every clone share one loaded model instead of reading the
weights again. A model is found by its identity's digest (with device,
precision and backend), so two checkpoints that differ in weights,
tokenizer, configuration or recipe are never confused; a folder on disk is
mapped to the identity it held when it was last read (its files' names,
sizes and modification times make the stamp).

The registry lock guards the registry's dictionaries only. A load runs
outside it: a second thread asking for the same key waits for that load
(one load per key), threads asking for other models go on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .checkpoint import LoadedModel

__all__ = ["clear_model_cache", "folder_key", "lookup", "obtain", "peek"]

#: How many loaded models the registry keeps alive (least recently used out).
_REGISTRY_SIZE = 2

_LOCK = threading.Lock()
#: (identity digest, device, dtype, backend) -> model.
_MODELS: OrderedDict[tuple[str, str, str, str], LoadedModel] = OrderedDict()
#: (folder key, device, dtype) -> identity digest of what the folder held.
_FOLDERS: dict[tuple, str] = {}
#: Loads in flight, by key: later callers wait for the first one.
_LOADING: dict[tuple, Future] = {}


def model_key(
    digest: str, device: torch.device, dtype: torch.dtype, backend: str
) -> tuple[str, str, str, str]:
    return (digest, str(device), str(dtype), backend)


def _stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes: a changed file on disk is a different model."""
    stamp = []
    for entry in sorted(folder.rglob("*")):
        if entry.is_file():
            info = entry.stat()
            stamp.append(
                (str(entry.relative_to(folder)), info.st_size, info.st_mtime_ns)
            )
    return tuple(stamp)


def folder_key(folder: Path, trust_remote_code: bool) -> tuple:
    """What identifies a checkpoint folder as it is on disk now."""
    return ("folder", str(folder), _stamp(folder), trust_remote_code)


def lookup(
    digest: str, device: torch.device, dtype: torch.dtype, backend: str = "torch"
) -> LoadedModel | None:
    """The model with this identity already loaded in this process, if any."""
    key = model_key(digest, device, dtype, backend)
    with _LOCK:
        loaded = _MODELS.get(key)
        if loaded is not None:
            _touch(loaded)
        return loaded


def peek(folder: tuple, device: torch.device, dtype: torch.dtype) -> LoadedModel | None:
    """The torch model this process loaded from ``folder`` (a :func:`folder_key`)
    on ``device`` in ``dtype``, if it is still registered."""
    with _LOCK:
        digest = _FOLDERS.get((folder, str(device), str(dtype), "torch"))
    return None if digest is None else lookup(digest, device, dtype)


def _touch(loaded: LoadedModel) -> None:
    """Make every key of ``loaded`` the most recently used (lock held)."""
    for key in [k for k, v in _MODELS.items() if v is loaded]:
        _MODELS.move_to_end(key)


def _register(loaded: LoadedModel) -> LoadedModel:
    """Keep ``loaded`` (or the equal model already kept); evict beyond the size."""
    key = model_key(loaded.identity.digest, loaded.device, loaded.dtype, loaded.backend)
    kept = _MODELS.setdefault(key, loaded)
    _touch(kept)
    while len({id(value) for value in _MODELS.values()}) > _REGISTRY_SIZE:
        oldest = next(iter(_MODELS.values()))
        for stale in [k for k, v in _MODELS.items() if v is oldest]:
            del _MODELS[stale]
    return kept


def _single_flight(key: tuple, load: Callable[[], LoadedModel]) -> LoadedModel:
    """Run ``load`` once for ``key``, whoever asks meanwhile; register its result."""
    with _LOCK:
        pending = _LOADING.get(key)
        owner = pending is None
        if owner:
            pending = _LOADING[key] = Future()
    if not owner:
        return pending.result()
    try:
        loaded = load()
        with _LOCK:
            loaded = _register(loaded)
    except BaseException as exc:
        with _LOCK:
            del _LOADING[key]
        pending.set_exception(exc)
        raise
    with _LOCK:
        del _LOADING[key]
    pending.set_result(loaded)
    return loaded


def obtain(
    *,
    digest: str | None,
    folder: tuple | None,
    device: torch.device,
    dtype: torch.dtype,
    backend: str = "torch",
    load: Callable[[], LoadedModel],
) -> LoadedModel:
    """The registered model for an identity ``digest`` or a ``folder`` key,
    else ``load()`` it (once per key, outside the registry lock).

    ``load`` must return a model on ``device`` in ``dtype`` run by ``backend``;
    it is registered under its identity (an equal model already registered is
    returned instead, so one checkpoint is held once).
    """
    place = (str(device), str(dtype), backend)
    with _LOCK:
        if digest is None and folder is not None:
            digest = _FOLDERS.get((folder, *place))
        if digest is not None:
            found = _MODELS.get((digest, *place))
            if found is not None:
                _touch(found)
                return found
    key = ("identity", digest, *place) if digest else ("folder", folder, *place)
    loaded = _single_flight(key, load)
    if folder is not None:
        with _LOCK:
            _FOLDERS[(folder, *place)] = loaded.identity.digest
    return loaded


def clear_model_cache() -> None:
    """Forget every model loaded in this process (frees their memory).

    Fitted vectorizers keep the model they use; the next ``fit`` of a new
    estimator reads the weights again.

    Examples
    --------
    >>> import skbert
    >>> skbert.clear_model_cache()
    """
    with _LOCK:
        _MODELS.clear()
        _FOLDERS.clear()
