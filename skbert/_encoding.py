"""Encode texts: deduplicate, serve from the cache, batch the rest, report.

The data flow of ``transform`` after validation: distinct texts -> cached
vectors copied out -> the misses through :mod:`skbert._batching` (one forward
pass stores every pooling in the cache) -> a preallocated float32 output in
the original order, and an :class:`~skbert._report.EncodingReport` of what
happened (truncated texts, out-of-memory retries) for the caller to warn
about. Memory grows with the output only, not with the number of texts:
tokens are made a chunk at a time and each batch is copied to the CPU as
soon as it is pooled.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from ._batching import EncodingSpec, RunReport, iter_pooled
from ._options import CACHED_POOLINGS
from ._report import EncodingReport, TruncationWarning

if TYPE_CHECKING:
    from ._cache import DiskStore, MemoryStore
    from ._checkpoint import LoadedModel

__all__ = ["EncodingSpec", "TruncationWarning", "encode"]

#: Texts tokenized (and length-sorted) at a time; bounds the token-id memory.
CHUNK_SIZE = 8192


def _progress(total: int, batch_size: int, show: bool | None) -> Any:
    from tqdm.auto import tqdm

    if show is None:
        show = total > 8 * batch_size and sys.stderr.isatty()
    return tqdm(total=total, desc="skbert: encoding", unit="text", disable=not show)


def _finish(vectors: np.ndarray, normalize: bool) -> np.ndarray:
    if not normalize:
        return vectors
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _entry(pooled: np.ndarray, truncated: bool) -> np.ndarray:
    """A cache entry: the pooled vectors, then a row whose first value says
    whether the text was truncated (so that a cache hit warns like a miss)."""
    flags = np.zeros((1, pooled.shape[-1]), dtype=np.float32)
    flags[0, 0] = float(truncated)
    return np.concatenate([pooled, flags])


def _fill_from(
    store: MemoryStore | DiskStore,
    keys: list[bytes],
    out: np.ndarray,
    which: int,
    normalize: bool,
    report: RunReport,
    rows: list[int] | None = None,
) -> list[int]:
    """Copy cached vectors into ``out``; return the indices of ``keys`` missed.

    ``rows`` maps ``keys`` to rows of ``out``; given, this is a re-check.
    Rows whose text was truncated are added to ``report.truncated``.
    """
    found = store.get_many(keys, count=rows is None)
    missing = []
    for i, key in enumerate(keys):
        value = found.get(key)
        if value is None:
            missing.append(i)
            continue
        row = i if rows is None else rows[i]
        out[row] = _finish(value[which], normalize)
        if value[-1, 0]:
            report.truncated.append(row)
    return missing


def _encode_rows(
    out: np.ndarray,
    texts: list[str],
    rows: list[int],
    models: list[LoadedModel],
    spec: EncodingSpec,
    poolings: tuple[str, ...],
    report: RunReport,
    *,
    show_progress_bar: bool | None,
    keep: Any = None,
) -> None:
    """Encode ``texts[rows]`` into ``out[rows]``.

    ``keep(rows, pooled, truncated)`` receives every batch with all its
    poolings and which of its rows were truncated (the cache stores them).
    Truncated rows are added to ``report.truncated``.
    """
    which = poolings.index(spec.pooling)
    local = RunReport()
    with _progress(len(rows), spec.batch_size, show_progress_bar) as bar:
        for positions, pooled, truncated in iter_pooled(
            [texts[row] for row in rows],
            models,
            spec,
            poolings,
            chunk_size=CHUNK_SIZE,
            report=local,
            bar=bar,
        ):
            batch_rows = [rows[p] for p in positions]
            if keep is not None:
                keep(batch_rows, pooled, truncated)
            out[batch_rows] = _finish(pooled[:, which], spec.normalize)
    report.truncated.extend(rows[p] for p in local.truncated)
    report.out_of_memory_splits.extend(local.out_of_memory_splits)


def _encode_cached(
    out: np.ndarray,
    texts: list[str],
    models: list[LoadedModel],
    spec: EncodingSpec,
    store: MemoryStore | DiskStore,
    report: RunReport,
    **options: Any,
) -> None:
    """Fill ``out`` from the cache, encoding (and storing) only the misses."""
    from ._cache import entry_prefix, text_key

    loaded = models[0]
    poolings = tuple(
        p for p in CACHED_POOLINGS if p != "pooler" or loaded.info.has_pooler
    )
    which = poolings.index(spec.pooling)
    prefix = entry_prefix(
        loaded.identity.digest,
        loaded.compute,
        spec.max_length,
        spec.layers,
        poolings,
    )
    keys = [text_key(prefix, text) for text in texts]
    todo = _fill_from(store, keys, out, which, spec.normalize, report)
    if not todo:
        return
    with store.compute_lock(prefix):
        if store.shared:  # another process may have computed some meanwhile
            again = [keys[i] for i in todo]
            missed = _fill_from(store, again, out, which, spec.normalize, report, todo)
            todo = [todo[i] for i in missed]

        def keep(rows: list[int], pooled: np.ndarray, cut: list[bool]) -> None:
            store.put_many(
                {keys[row]: _entry(pooled[j], cut[j]) for j, row in enumerate(rows)}
            )

        _encode_rows(
            out, texts, todo, models, spec, poolings, report, keep=keep, **options
        )


def encode(
    texts: list[str],
    models: list[LoadedModel],
    spec: EncodingSpec,
    *,
    show_progress_bar: bool | None = None,
    store: MemoryStore | DiskStore | None = None,
) -> tuple[np.ndarray, EncodingReport]:
    """Encode ``texts`` into a ``(len(texts), hidden_size)`` float32 array.

    ``models`` holds the same checkpoint loaded on each device to use.
    Returns the vectors and what happened (nothing is warned here).
    """
    unique = list(dict.fromkeys(texts))  # duplicates are encoded once
    out = np.empty((len(unique), models[0].info.hidden_size), dtype=np.float32)
    run = RunReport()
    options = {"show_progress_bar": show_progress_bar}
    if store is None:
        rows = list(range(len(unique)))
        poolings = (spec.pooling,)
        _encode_rows(out, unique, rows, models, spec, poolings, run, **options)
    else:
        _encode_cached(out, unique, models, spec, store, run, **options)
    if len(unique) == len(texts):
        inverse = None
        truncated = sorted(set(run.truncated))
    else:
        index = {text: i for i, text in enumerate(unique)}
        inverse = [index[text] for text in texts]
        cut = set(run.truncated)
        truncated = [p for p, row in enumerate(inverse) if row in cut]
    report = EncodingReport(
        n_texts=len(texts),
        max_length=spec.max_length,
        truncated=truncated,
        out_of_memory_splits=list(run.out_of_memory_splits),
    )
    return (out if inverse is None else out[inverse]), report
