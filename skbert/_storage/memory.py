"""The in-process store (``cache="auto"``): least recently used entries
evicted beyond a byte budget (default 1 GiB)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["DEFAULT_MEMORY_BYTES", "MemoryStore"]

#: The in-process store's budget unless ``SKBERT_MEMORY_CACHE_BYTES`` says.
DEFAULT_MEMORY_BYTES = 1 << 30


class MemoryStore:
    """In-process LRU store bounded by ``max_bytes`` of vector data."""

    #: Seen by this process only: no other writer to wait for.
    shared = False

    def __init__(self, max_bytes: int = DEFAULT_MEMORY_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        self._compute_locks: dict[bytes, threading.Lock] = {}
        self.hits = 0
        self.misses = 0

    def get_many(
        self, keys: list[bytes], *, count: bool = True
    ) -> dict[bytes, np.ndarray]:
        found = {}
        with self._lock:
            for key in keys:
                value = self._entries.get(key)
                if value is not None:
                    self._entries.move_to_end(key)
                    found[key] = value
            if count:
                self.hits += len(found)
                self.misses += len(keys) - len(found)
        return found

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        with self._lock:
            for key, value in items.items():
                if value.nbytes > self.max_bytes:
                    continue
                old = self._entries.pop(key, None)
                if old is not None:
                    self._nbytes -= old.nbytes
                value = np.array(value, dtype=np.float32, copy=True)
                value.flags.writeable = False
                self._entries[key] = value
                self._nbytes += value.nbytes
            self._evict()

    def _evict(self) -> None:
        while self._nbytes > self.max_bytes and self._entries:
            _, value = self._entries.popitem(last=False)
            self._nbytes -= value.nbytes

    def compute_lock(self, prefix: bytes) -> threading.Lock:
        """Threads computing the vectors of ``prefix`` take turns, so that a
        text two threads both miss is encoded once."""
        with self._lock:
            return self._compute_locks.setdefault(prefix, threading.Lock())

    def info(self) -> dict[str, Any]:
        with self._lock:
            return {
                "location": "memory",
                "entries": len(self._entries),
                "bytes": self._nbytes,
                "max_bytes": self.max_bytes,
                "hits": self.hits,
                "misses": self.misses,
            }

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._nbytes = 0
            self.hits = self.misses = 0

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = int(max_bytes)
            self._evict()


#: SQLite's primary result codes that mean the file itself is damaged.
