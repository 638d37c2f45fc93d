"""Quiet third-party libraries for the calling thread only, while it loads
or exports.

transformers reports every load (a "LOAD REPORT" table of missing and
unexpected weights, a "Loading weights" progress bar) and ONNX Runtime's
quantizer advises through the root logger. skbert turns every finding of
those reports into its own decision or error, so they would only confuse.

Nothing here changes a library's settings (verbosity, logger levels,
progress-bar switches), which belong to the user: while a :func:`quiet` block
runs, a filter on the named loggers and their handlers drops records
*emitted by this thread* below ``ERROR``, and a transformers progress-bar hook
disables the bars *this thread* creates. Other threads log and show bars as
before, and when the last block ends, the filter and the hook are removed
again. :func:`quiet_warnings` does the same for the ``warnings`` module: it
drops the warnings *this thread* issues (torch's exporter and skl2onnx note
opsets and traces), where ``warnings.catch_warnings`` would silence every
thread of the process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator
from typing import Any

__all__ = ["quiet", "quiet_warnings"]

_LOCK = threading.Lock()
#: Threads inside a ``quiet`` block, with their nesting depth.
_QUIET_THREADS: dict[int, int] = {}
#: Loggers and handlers carrying the filter, with the number of blocks that need it.
_FILTERED: dict[logging.Filterer, int] = {}
#: The progress-bar hook that was installed before ours (restored at the end).
_BAR_STATE: dict[str, Any] = {"depth": 0, "previous": None}


def _enter(threads: dict[int, int], me: int) -> None:
    """Count one more block of thread ``me`` in ``threads`` (under ``_LOCK``)."""
    threads[me] = threads.get(me, 0) + 1


def _leave(threads: dict[int, int], me: int) -> None:
    """Count one block of thread ``me`` less; a thread with none is removed."""
    depth = threads.pop(me) - 1
    if depth:
        threads[me] = depth


class _ThisThreadOnly(logging.Filter):
    """Drop records below ERROR that a quiet thread emits; pass all others."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.thread not in _QUIET_THREADS


_FILTER = _ThisThreadOnly()


def _handlers_reached(names: tuple[str, ...]) -> list[logging.Filterer]:
    """Every handler a record of the loggers ``names`` can reach, and those
    loggers themselves (a handler added during the block, as
    ``logging.warning`` adds one to a root logger without any, is not
    reached through the handlers found now)."""
    found: list[logging.Filterer] = [logging.getLogger(name) for name in names]
    for name in names:
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None:
            found.extend(logger.handlers)
            if not logger.propagate:
                break
            logger = logger.parent  # type: ignore[assignment]
    if logging.lastResort is not None:  # used when no handler is found
        found.append(logging.lastResort)
    return list(dict.fromkeys(found))


def _bar_hook(factory: Any, args: tuple, kwargs: dict) -> Any:
    if threading.get_ident() in _QUIET_THREADS:
        return factory(*args, **{**kwargs, "disable": True})
    previous = _BAR_STATE["previous"]
    if previous is not None:
        return previous(factory, args, kwargs)
    return factory(*args, **kwargs)


def _transformers_logging() -> Any:
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        return None
    return hf_logging if hasattr(hf_logging, "set_tqdm_hook") else None


@contextlib.contextmanager
def quiet(*logger_names: str) -> Iterator[None]:
    """Drop this thread's log records below ERROR from ``logger_names``.

    Parameters
    ----------
    *logger_names : str
        Loggers whose records are dropped (with their children, and every
        handler the records propagate to). ``""`` names the root logger.
        transformers' progress bars created by this thread are disabled too.

    Examples
    --------
    >>> import logging
    >>> with quiet("example"):
    ...     logging.getLogger("example").warning("not shown")
    """
    me = threading.get_ident()
    hf_logging = _transformers_logging()
    with _LOCK:
        handlers = _handlers_reached(logger_names)
        _enter(_QUIET_THREADS, me)
        for handler in handlers:
            if _FILTERED.get(handler, 0) == 0:
                handler.addFilter(_FILTER)
            _FILTERED[handler] = _FILTERED.get(handler, 0) + 1
        if hf_logging is not None:
            if _BAR_STATE["depth"] == 0:
                _BAR_STATE["previous"] = hf_logging.set_tqdm_hook(_bar_hook)
            _BAR_STATE["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _leave(_QUIET_THREADS, me)
            for handler in handlers:
                _FILTERED[handler] -= 1
                if _FILTERED[handler] == 0:
                    del _FILTERED[handler]
                    handler.removeFilter(_FILTER)
            if hf_logging is not None:
                _BAR_STATE["depth"] -= 1
                if _BAR_STATE["depth"] == 0:
                    current = hf_logging.set_tqdm_hook(_BAR_STATE["previous"])
                    if current is not _bar_hook:  # replaced meanwhile: keep theirs
                        hf_logging.set_tqdm_hook(current)
                    _BAR_STATE["previous"] = None


#: Threads inside a ``quiet_warnings`` block, with their nesting depth.
_SILENT_THREADS: dict[int, int] = {}


class _SilentThread:
    """Matches, as a warning filter's module pattern, only in a thread inside
    :func:`quiet_warnings` (the ``warnings`` machinery calls ``.match``)."""

    def match(self, module: str) -> bool:
        return threading.get_ident() in _SILENT_THREADS


#: ``("ignore", message, category, module, lineno)``: ignore any warning issued
#: in a silent thread. Outside every block it matches nothing, so a copy that a
#: ``catch_warnings`` block in another thread restores later does no harm.
_SILENT_FILTER = ("ignore", None, Warning, _SilentThread(), 0)


def _filters_changed() -> None:
    changed = getattr(warnings, "_filters_mutated", None) or getattr(
        warnings, "_filters_mutated_lock_held", None
    )
    if changed is not None:
        changed()


@contextlib.contextmanager
def quiet_warnings() -> Iterator[None]:
    """Ignore the warnings this thread issues inside the block; other threads'
    warnings are filtered and shown as before.

    Examples
    --------
    >>> import warnings
    >>> with quiet_warnings():
    ...     warnings.warn("not shown")
    """
    me = threading.get_ident()
    with _LOCK:
        _enter(_SILENT_THREADS, me)
        if not any(entry is _SILENT_FILTER for entry in warnings.filters):
            warnings.filters.insert(0, _SILENT_FILTER)
            _filters_changed()
    try:
        yield
    finally:
        with _LOCK:
            _leave(_SILENT_THREADS, me)
            if not _SILENT_THREADS:
                kept = [
                    entry for entry in warnings.filters if entry is not _SILENT_FILTER
                ]
                if len(kept) != len(warnings.filters):
                    warnings.filters[:] = kept
                    _filters_changed()
