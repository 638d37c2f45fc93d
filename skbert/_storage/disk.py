"""The disk store (``cache=<directory>``): one SQLite database shared by
processes and sessions.

Writes are transactions (a killed process leaves a usable cache), every value
carries a checksum over its key, shape and bytes, verified on every read (a
damaged entry is recomputed, never returned), and file locks let only one
process compute a missing vector (processes encode different parts of the
missing texts at once; see :mod:`skbert._encoding.encode`). When storage
fails (a full disk, a busy or read-only database, a damaged file) the caller
still gets correct vectors and one warning; a damaged database is moved
aside and rebuilt; a database this process may read but not write is served
read-only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sqlite3
import threading
import time
import urllib.parse
import warnings
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .._core.filelock import file_lock, open_for_locking
from .._core.report import user_stacklevel

_T = TypeVar("_T")

__all__ = ["BUSY_TIMEOUT", "DiskStore"]

_DB_NAME = "embeddings.sqlite"

_CORRUPT_CODES = {11: "malformed", 26: "not a database"}
#: Result codes of a healthy database that cannot be used right now.
_TROUBLE = {
    5: "busy (another process holds its write lock)",
    6: "locked",
    8: "read-only",
    10: "failing with an I/O error",
    13: "on a full disk",
    14: "impossible to open",
    23: "not permitted",
}
#: SQLite's result codes, and the system's error numbers, that mean this
#: process may not write the cache (its file, its folder or its file system).
_READ_ONLY_CODES = {8, 14, 23}
_READ_ONLY_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}
#: What reading or writing the database can raise: SQLite's errors, the
#: file system's, and damaged text that SQLite hands back undecodable.
_STORAGE_ERRORS = (sqlite3.Error, OSError, UnicodeDecodeError)
#: Seconds skbert waits for another process's write lock before going on
#: without the cache.
BUSY_TIMEOUT = 120.0
#: Seconds one try waits inside SQLite: between tries Python runs, so Ctrl-C
#: is raised within about this long, not after the whole wait.
_POLL_SECONDS = 0.05


def _patiently(action: Callable[[], _T]) -> _T:
    """``action()``, tried again while another process holds the lock it waits
    for, up to :data:`BUSY_TIMEOUT` seconds. Each try waits at most
    :data:`_POLL_SECONDS` inside SQLite, where no signal handler runs: Ctrl-C
    is honoured between tries, at once, not when the lock is released."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            waiting = _problem(exc)[0] in (_TROUBLE[5], _TROUBLE[6])
            if not waiting or time.monotonic() >= deadline:
                raise


def _execute(
    conn: sqlite3.Connection, sql: str, parameters: Any = ()
) -> sqlite3.Cursor:
    """``conn.execute``, patient with another process's lock (and interruptible)."""
    return _patiently(lambda: conn.execute(sql, parameters))


def _problem(exc: BaseException) -> tuple[str, bool]:
    """What a storage error means: a description, and whether the file is damaged."""
    if isinstance(exc, UnicodeDecodeError):  # SQLite handed back damaged text
        return "malformed", True
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        if primary in _CORRUPT_CODES:
            return _CORRUPT_CODES[primary], True
        if primary in _TROUBLE:
            return _TROUBLE[primary], False
    text = str(exc).lower()
    if "malformed" in text or "not a database" in text:
        return "malformed", True
    if "locked" in text or "busy" in text:
        return _TROUBLE[5], False
    if "full" in text:
        return _TROUBLE[13], False
    return f"unusable ({type(exc).__name__}: {exc})", False


class DiskStore:
    """SQLite store in ``directory``, safe for concurrent processes."""

    #: Other processes write to it too: re-check after taking the lock.
    shared = True

    def __init__(
        self, directory: str | os.PathLike, max_bytes: int | None = None
    ) -> None:
        self.directory = Path(directory).expanduser().resolve()
        #: Writes stop once the database is this large (``None``: no limit).
        self.max_bytes = max_bytes
        self.path = self.directory / _DB_NAME
        self._local = threading.local()
        self.hits = 0
        self.misses = 0
        self._stats_lock = threading.Lock()
        #: Problems already warned about in this process (each is said once).
        self._warned: set[str] = set()
        self._presence: Any = None
        #: Set once writing is known to be impossible; reads go on.
        self.read_only = False

    # -- connection -------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            return conn
        self.directory.mkdir(parents=True, exist_ok=True)
        self._check_after_unclean_exit()
        try:
            conn = self._open()
        except _STORAGE_ERRORS as exc:
            if not _problem(exc)[1]:
                raise
            conn = self._recover(exc)
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            return self._open_writable()
        except _STORAGE_ERRORS as exc:
            if _problem(exc)[1] or not _means_read_only(exc) or not self.path.exists():
                raise
            first = exc
        # Not writable here. A WAL database opened read-only still needs its
        # shared-memory file; where that cannot be made either, it is read as
        # immutable (each value's checksum still guards what is served).
        for options in ("mode=ro", "mode=ro&immutable=1"):
            try:
                conn = self._connect_uri(options)
            except _STORAGE_ERRORS:
                continue
            self._now_read_only(first)
            return conn
        raise first

    def _connect_uri(self, options: str) -> sqlite3.Connection:
        uri = f"file:{urllib.parse.quote(str(self.path))}?{options}"
        conn = sqlite3.connect(
            uri, uri=True, timeout=_POLL_SECONDS, isolation_level=None
        )
        try:
            _execute(conn, "SELECT count(*) FROM vectors").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _now_read_only(self, exc: BaseException) -> None:
        """From now on this process only reads the cache; said once."""
        self.read_only = True
        self._warn(
            "read-only",
            f"The embedding cache {self.directory} is read-only for this process "
            f"({type(exc).__name__}: {exc}): its vectors are served, new vectors "
            "are computed but not stored.",
        )

    def _open_writable(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=_POLL_SECONDS, isolation_level=None)
        try:
            _execute(conn, "PRAGMA journal_mode=WAL")
            _execute(conn, "PRAGMA synchronous=NORMAL")
            _execute(
                conn,
                "CREATE TABLE IF NOT EXISTS vectors ("
                "key BLOB PRIMARY KEY, shape TEXT NOT NULL, data BLOB NOT NULL, "
                "checksum BLOB NOT NULL)",
            )
            _execute(conn, "SELECT count(*) FROM vectors").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_after_unclean_exit(self) -> None:
        """The first process to open the cache checks it if the last one died.

        Every process holds a shared lock on a presence file while it uses the
        cache; one that gets the lock exclusively is alone, and a write-ahead
        log left behind then means the last user did not close cleanly.
        """
        import fcntl

        if self._presence is not None and self._presence[0] == os.getpid():
            return
        try:
            handle = open_for_locking(self.directory / "presence.lock")
        except OSError:  # a cache this process cannot write: nothing to check
            self._presence = (os.getpid(), None)
            return
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # others use the cache: it was not left unclean
            fcntl.flock(handle, fcntl.LOCK_SH)
        else:
            wal = Path(f"{self.path}-wal")
            if wal.exists() and wal.stat().st_size > 0 and self.path.exists():
                self._verify_database("quick_check")
            fcntl.flock(handle, fcntl.LOCK_SH)
        # held while this process uses the store; closed (the lock released)
        # when the store is collected or, at the latest, when Python exits
        self._presence = (os.getpid(), handle)
        weakref.finalize(self, handle.close)

    def _verify_database(self, check: str = "integrity_check") -> bool:
        """Run SQLite's own check; move a damaged database aside. True if sound."""
        conn = getattr(self._local, "conn", None)
        try:
            probe = sqlite3.connect(self.path, timeout=_POLL_SECONDS)
            try:
                verdict = _execute(probe, f"PRAGMA {check}").fetchone()[0]
            finally:
                probe.close()
        except _STORAGE_ERRORS as exc:
            description, damaged = _problem(exc)
            if not damaged:
                return True  # cannot check now; the entries' checksums still hold
            verdict = description
        if verdict == "ok":
            return True
        if conn is not None:
            conn.close()
            self._local.conn = None
        self._move_aside(f"its {check} failed: {verdict}")
        return False

    def _move_aside(self, why: str) -> Path:
        aside = self.path.with_name(f"{_DB_NAME}.corrupt-{int(time.time())}")
        self._warn(
            "corrupt",
            f"The embedding cache {self.path} is unreadable ({why}); moved it to "
            f"{aside.name} and starting an empty cache. Vectors will be recomputed.",
        )
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{self.path}{suffix}")
            if old.exists():
                old.replace(Path(f"{aside}{suffix}"))
        return aside

    def _recover(self, exc: BaseException) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self._local.conn = None
        self._move_aside(str(exc))
        self._warned.discard("corrupt")  # a later damage is news again
        return self._open()

    def _warn(self, kind: str, message: str) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)

        warnings.warn(message, RuntimeWarning, stacklevel=user_stacklevel())

    def _trouble(self, exc: BaseException, doing: str) -> None:
        """React to a storage error: a damaged file is moved aside (and a new
        one started), anything else is said once; the caller goes on without."""
        description, damaged = _problem(exc)
        if not damaged and _means_read_only(exc):
            self._now_read_only(exc)
            return
        if damaged:
            try:
                self._local.conn = self._recover(exc)
                self._local.pid = os.getpid()
            except _STORAGE_ERRORS as again:
                self._warn("bypass", self._bypass_message(again, "rebuilding it"))
            return
        self._warn(
            description,
            f"The embedding cache {self.path} is {description} while {doing}; "
            "vectors are computed without it (they are correct, only not "
            "cached).",
        )

    def _bypass_message(self, exc: BaseException, doing: str) -> str:
        return (
            f"The embedding cache {self.path} could not be used while {doing} "
            f"({type(exc).__name__}: {exc}); vectors are computed without it."
        )

    # -- interface --------------------------------------------------------
    def get_many(
        self, keys: list[bytes], *, count: bool = True
    ) -> dict[bytes, np.ndarray]:
        """Cached values of ``keys``; ``count=False`` for a re-check (no stats)."""
        found: dict[bytes, np.ndarray] = {}
        damaged = 0
        try:
            conn = self._connect()
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = (
                    "SELECT key, shape, data, checksum FROM vectors "
                    f"WHERE key IN ({marks})"
                )
                for key, shape, data, checksum in _execute(conn, query, chunk):
                    value = _decode(bytes(key), shape, data, checksum)
                    if value is None:  # a damaged entry is a miss, recomputed
                        damaged += 1
                    else:
                        found[bytes(key)] = value
        except _STORAGE_ERRORS as exc:
            self._trouble(exc, "reading")
            found = {}
        if damaged:
            self._warn(
                "checksum",
                f"{damaged} entries of the embedding cache {self.path} failed their "
                "checksum; they are recomputed and overwritten.",
            )
            self._verify_database()
        if count:
            with self._stats_lock:
                self.hits += len(found)
                self.misses += len(keys) - len(found)
        else:  # a re-check: what another process filled meanwhile is a hit
            with self._stats_lock:
                self.hits += len(found)
                self.misses -= len(found)
        return found

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        if self.read_only:
            return
        if self.max_bytes is not None and self._size() > self.max_bytes:
            return  # full: what it holds is still served
        rows = []
        for key, value in items.items():
            data = np.ascontiguousarray(value, dtype="<f4").tobytes()
            shape = ",".join(map(str, value.shape))
            rows.append((key, shape, data, _checksum(key, shape, data)))
        try:
            conn = self._connect()
            if conn.in_transaction:  # left open by an interrupted earlier write
                conn.execute("ROLLBACK")
        except _STORAGE_ERRORS as exc:
            self._trouble(exc, "writing")
            return
        if self.read_only:  # found out while connecting
            return
        try:
            # Inside the try: Ctrl-C pressed while BEGIN waits for another
            # writer's lock is raised as soon as BEGIN returns.
            _execute(conn, "BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except _STORAGE_ERRORS as exc:
            self._rollback(conn)
            self._trouble(exc, "writing")
        except BaseException:
            self._rollback(conn)
            raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def compute_lock(
        self, prefix: bytes, *, wait: bool = True
    ) -> contextlib.AbstractContextManager[bool]:
        """Only one process at a time computes the vectors of ``prefix``; the
        block is told whether it may (``False`` only with ``wait=False``, where
        another process holds the lock). Without a lock (none for a read-only
        cache, where nothing is written, or where the lock file cannot be made
        or opened) every process may: vectors are still correct."""
        if self.read_only:
            return contextlib.nullcontext(True)
        name = hashlib.sha256(prefix).hexdigest()[:16]
        return self._lock_if_possible(self.directory / f"lock-{name}", wait)

    @contextlib.contextmanager
    def _lock_if_possible(self, path: Path, wait: bool) -> Iterator[bool]:
        with contextlib.ExitStack() as held:
            try:
                holds = held.enter_context(file_lock(path, wait=wait))
            except OSError as exc:
                holds = True
                if _means_read_only(exc):
                    self._now_read_only(exc)
                else:
                    self._warn("lock", self._bypass_message(exc, "taking its lock"))
            yield holds

    def _size(self) -> int:
        """Bytes of the database and its write-ahead log."""
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += Path(f"{self.path}{suffix}").stat().st_size
        return size

    def info(self) -> dict[str, Any]:
        conn = self._connect()
        entries = _execute(conn, "SELECT count(*) FROM vectors").fetchone()[0]
        size = self._size()
        return {
            "location": str(self.directory),
            "entries": entries,
            "bytes": size,
            "hits": self.hits,
            "misses": self.misses,
        }

    def clear(self) -> None:
        conn = self._connect()
        _execute(conn, "DELETE FROM vectors")
        _execute(conn, "VACUUM")
        _execute(conn, "PRAGMA wal_checkpoint(TRUNCATE)")
        self.hits = self.misses = 0


def _means_read_only(exc: BaseException) -> bool:
    """Whether a storage error says this process may not write the cache."""
    if isinstance(exc, OSError):
        return exc.errno in _READ_ONLY_ERRNOS
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _READ_ONLY_CODES


def _checksum(key: bytes, shape: str, data: bytes) -> bytes:
    """Binds a value to its key and layout: a row read under another key (a
    damaged index), with another shape or other bytes fails the check."""
    return hashlib.blake2b(
        key + b"|" + shape.encode() + b"|" + data, digest_size=16
    ).digest()


def _decode(key: bytes, shape: str, data: bytes, checksum: bytes) -> np.ndarray | None:
    if not isinstance(shape, str) or not isinstance(data, bytes):
        return None
    if _checksum(key, shape, bytes(data)) != bytes(checksum):
        return None
    try:
        dims = tuple(int(part) for part in shape.split(","))
    except ValueError:
        return None
    if len(data) != 4 * int(np.prod(dims)):
        return None
    return np.frombuffer(data, dtype="<f4").reshape(dims).astype(np.float32)
