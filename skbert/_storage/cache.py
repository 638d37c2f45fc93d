"""The embedding cache: pooled vectors keyed by everything that determines them.

A cache entry holds, for one text, the pooled ``float32`` vectors of *every*
pooling (``cls``, ``mean``, ``max`` and ``pooler`` where the model has one) of
one layer selection, so that one forward pass serves a whole search over
``pooling``, plus one row of flags (whether the text was truncated). Its
key is a SHA-256 over the model's identity digest (weights, tokenizer,
configuration and recipe), how the vectors were computed (backend,
precision and the versions of torch, transformers, tokenizers and ONNX
Runtime), ``max_length``, the layer selection, the stored poolings and the
text itself: a different model, setting or library version can never hit.

Two stores share one interface (their modules say how each works):

* :class:`MemoryStore` (``cache="auto"``): in this process, least recently
  used entries evicted beyond a byte budget (default 1 GiB).
* :class:`DiskStore` (``cache=<directory>``): one SQLite database, shared by
  processes and sessions. Writes are transactions (a killed process leaves a
  usable cache), every value carries a checksum over its key, shape and
  bytes, verified on every read (a damaged entry is recomputed, never
  returned), and file locks let only one process compute a missing vector
  (processes take different parts of the missing texts, each under its own
  lock), so concurrent search workers never encode the same text twice.
  A cache is an optimisation: when its storage fails (a full disk, a busy or
  read-only database, a damaged file), ``transform`` still returns correct
  vectors, computing them, and says once what happened and where. A damaged
  database is moved aside and rebuilt. A cache this process may read but not
  write (a read-only folder or file system, another user's cache) is served
  read-only: its vectors are used, new ones are not stored.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .disk import DiskStore
from .keys import entry_prefix, text_key
from .memory import DEFAULT_MEMORY_BYTES, MemoryStore

__all__ = [
    "DiskStore",
    "MemoryStore",
    "cache_info",
    "check_cache",
    "clear_cache",
    "entry_prefix",
    "get_store",
    "set_memory_cache_limit",
    "text_key",
]


_MEMORY = MemoryStore(
    int(os.environ.get("SKBERT_MEMORY_CACHE_BYTES", DEFAULT_MEMORY_BYTES))
)
_DISK: dict[Path, DiskStore] = {}
_DISK_LOCK = threading.Lock()


class LayeredStore:
    """The in-process cache in front of a session's shared disk store
    (``cache="auto"`` in a process tree; see :mod:`skbert._storage.session`)."""

    #: Worker processes write to it too: re-check after taking the lock.
    shared = True

    def __init__(self, memory: MemoryStore, disk: DiskStore) -> None:
        self.memory = memory
        self.disk = disk

    def get_many(
        self, keys: list[bytes], *, count: bool = True
    ) -> dict[bytes, np.ndarray]:
        found = self.memory.get_many(keys, count=count)
        missing = [key for key in keys if key not in found]
        if missing:
            from_disk = self.disk.get_many(missing, count=False)
            if from_disk:
                self.memory.put_many(from_disk)
                found.update(from_disk)
        return found

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        self.memory.put_many(items)
        self.disk.put_many(items)

    def compute_lock(
        self, prefix: bytes, *, wait: bool = True
    ) -> contextlib.AbstractContextManager[bool]:
        return self.disk.compute_lock(prefix, wait=wait)

    def info(self) -> dict[str, Any]:
        """The in-process cache's figures (the session's store is shared)."""
        return self.memory.info()

    def clear(self) -> None:
        self.memory.clear()
        self.disk.clear()


def _disk_store(directory: Path, max_bytes: int | None = None) -> DiskStore:
    with _DISK_LOCK:
        store = _DISK.get(directory)
        if store is None:
            store = _DISK[directory] = DiskStore(directory, max_bytes)
        return store


#: Words a user may mean as a setting, never as a folder name: refused rather
#: than made into a cache folder of that name.
_SETTING_WORDS = frozenset(
    {"", "none", "null", "off", "false", "no", "0", "auto", "on", "true", "yes", "1"}
)


def check_cache(cache: object) -> None:
    """Refuse a ``cache`` value that looks like a setting but is not ``"auto"``
    (``"None"``, ``"off"``, ``"Auto"``, ``""``, ...): it would otherwise name a
    folder. A folder of such a name is still given as a path (``"./none"``)."""
    if isinstance(cache, str) and cache != "auto":
        word = cache.strip()
        if word.lower() in _SETTING_WORDS:
            named = f"; a folder named {word!r} is written './{word}'" if word else ""
            raise ValueError(
                f"cache={cache!r} is neither 'auto' nor a folder skbert would make: "
                "use cache=None to turn caching off, cache='auto' for the "
                "in-process cache, or a folder path (e.g. './skbert-cache'"
                f"{named})."
            )


def get_store(
    cache: str | os.PathLike | None,
) -> MemoryStore | DiskStore | LayeredStore | None:
    """The store a ``cache`` parameter value names (``None``: no caching)."""
    check_cache(cache)
    if cache is None:
        return None
    if isinstance(cache, str) and cache == "auto":
        from . import session as _session

        session = _session.active()
        if session is None:
            return _MEMORY
        return LayeredStore(_MEMORY, _disk_store(session, _MEMORY.max_bytes))
    return _disk_store(Path(cache).expanduser().resolve())


def cache_info(cache: str | os.PathLike = "auto") -> dict[str, Any]:
    """Hits, misses, entries and bytes of an embedding cache.

    Parameters
    ----------
    cache : "auto" or path-like, default="auto"
        The value of a vectorizer's ``cache`` parameter: ``"auto"`` for the
        in-process cache, or a cache directory.

    Returns
    -------
    info : dict
        ``location``, ``entries``, ``bytes`` (vector bytes in memory, or the
        database size on disk), ``hits`` and ``misses`` (counted in this
        process), and ``max_bytes`` for the in-process cache.

    Examples
    --------
    >>> import skbert
    >>> sorted(skbert.cache_info())
    ['bytes', 'entries', 'hits', 'location', 'max_bytes', 'misses']
    """
    store = get_store(cache)
    if store is None:
        raise ValueError("cache=None has no cache to describe.")
    return store.info()


def clear_cache(cache: str | os.PathLike = "auto") -> None:
    """Delete every entry of an embedding cache (and reset its counters).

    Examples
    --------
    >>> import skbert
    >>> skbert.clear_cache()
    >>> skbert.cache_info()["entries"]
    0
    """
    store = get_store(cache)
    if store is not None:
        store.clear()


def set_memory_cache_limit(max_bytes: int) -> None:
    """Set the byte budget of the in-process cache (``cache="auto"``).

    The default is 1 GiB, or the ``SKBERT_MEMORY_CACHE_BYTES`` environment
    variable. Least recently used entries are evicted beyond it.

    Examples
    --------
    >>> import skbert
    >>> skbert.set_memory_cache_limit(256 * 2**20)
    >>> skbert.cache_info()["max_bytes"]
    268435456
    >>> skbert.set_memory_cache_limit(2**30)
    """
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0; got {max_bytes}.")
    _MEMORY.resize(max_bytes)
