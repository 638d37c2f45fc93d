"""Encode texts: deduplicate, serve from the cache, batch the rest, report.

The data flow of ``transform`` after validation: distinct texts -> cached
vectors copied out -> the misses through :mod:`skbert._encoding.batching` (one forward
pass stores every pooling in the cache) -> a preallocated float32 output in
the original order, and an :class:`~skbert._core.report.EncodingReport` of what
happened (truncated texts, out-of-memory retries) for the caller to warn
about. Memory grows with the output only, not with the number of texts:
tokens are made a chunk at a time and each batch is copied to the CPU as
soon as it is pooled.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._core.options import CACHED_POOLINGS
from .._core.plan import CHUNK_SIZE, EncodingSpec, RunReport, prepare
from .._core.report import EncodingReport, TruncationWarning
from .._storage.cache import entry_prefix, text_key
from .batching import iter_pooled
from .finish import dense_layers, finish_numpy, needs_dense

if TYPE_CHECKING:
    from .._storage.cache import DiskStore, LayeredStore, MemoryStore

    Store = MemoryStore | DiskStore | LayeredStore
    from .._model.checkpoint import LoadedModel
    from .._model.identity import ModelInfo

__all__ = ["SHARED_PARTS", "EncodingSpec", "LazyModels", "TruncationWarning", "encode"]

#: How many parts the texts missing from a store that processes share fall
#: into, each encoded under a lock of its own, so that the processes of a
#: parallel search encode different parts at once instead of waiting for one
#: another; a text's part is fixed by its key, so no two encode it. Fewer
#: texts than this many batches are encoded in one batch plan where no other
#: process holds their parts.
SHARED_PARTS = 8
#: How many batches of texts a process sharing a store encodes together (in
#: one batch plan) from the parts it holds.
GROUP_BATCHES = 4


class LazyModels:
    """The models :func:`encode` runs, loaded on first need, and what the cache
    keys of their vectors are made of (known before any model is loaded, so
    that texts all found in the cache need none).

    Parameters
    ----------
    load : callable
        Returns the checkpoint loaded on each device to use.
    digest, compute : str
        The models' identity digest and compute stamp (backend, precision,
        library versions), as :class:`~skbert._model.checkpoint.LoadedModel`
        gives them; the loaded models are checked against both.
    info : ModelInfo
        The checkpoint's description (pooler, Dense layers).
    """

    def __init__(
        self,
        load: Callable[[], Sequence[LoadedModel]],
        digest: str,
        compute: str,
        info: ModelInfo,
    ) -> None:
        self._load = load
        self.digest = digest
        self.compute = compute
        self.info = info

    @classmethod
    def of(cls, models: Sequence[LoadedModel]) -> LazyModels:
        """Models already loaded."""
        first = models[0]
        return cls(lambda: models, first.identity.digest, first.compute, first.info)

    @functools.cached_property
    def loaded(self) -> list[LoadedModel]:
        """The models, loaded now if need be."""
        models = list(self._load())
        first = models[0]
        if (first.identity.digest, first.compute) != (self.digest, self.compute):
            raise RuntimeError(
                "skbert internal error: the model loaded to encode is not the one "
                f"its cache keys name ({first.identity.digest} {first.compute}, "
                f"expected {self.digest} {self.compute}); please report this."
            )
        return models


def _progress(total: int, batch_size: int, show: bool | None | Any) -> Any:
    """The progress bar of one call: ``show`` may be a caller's own bar (which
    the call advances but leaves open), or whether to show one (``None``:
    when the run is long and stderr is a terminal)."""
    from tqdm.auto import tqdm

    if show is not None and not isinstance(show, bool):
        return contextlib.nullcontext(show)
    if show is None:
        show = total > 8 * batch_size and sys.stderr.isatty()
    return tqdm(total=total, desc="skbert: encoding", unit="text", disable=not show)


def _finisher(
    spec: EncodingSpec, poolings: tuple[str, ...], models: LazyModels
) -> Callable[[np.ndarray], np.ndarray]:
    """What turns pooled vectors ``(n, len(poolings), hidden)`` into output
    rows: the chosen poolings concatenated, the folder's Dense layers (the
    models are loaded for them), then unit length if asked."""
    index = [poolings.index(mode) for mode in spec.modes]
    layers = (
        dense_layers(models.loaded[0], spec) if needs_dense(models.info, spec) else []
    )

    def finish(pooled: np.ndarray) -> np.ndarray:
        vectors = pooled[:, index].reshape(len(pooled), -1)
        return finish_numpy(vectors, layers, spec.normalize)

    return finish


def _entry(pooled: np.ndarray, truncated: bool) -> np.ndarray:
    """A cache entry: the pooled vectors, then a row whose first value says
    whether the text was truncated (so that a cache hit warns like a miss)."""
    flags = np.zeros((1, pooled.shape[-1]), dtype=np.float32)
    flags[0, 0] = float(truncated)
    return np.concatenate([pooled, flags])


def _fill_from(
    store: Store,
    keys: list[bytes],
    out: np.ndarray,
    finish: Callable[[np.ndarray], np.ndarray],
    report: RunReport,
    rows: list[int] | None = None,
) -> list[int]:
    """Copy cached vectors into ``out``; return the indices of ``keys`` missed.

    ``rows`` maps ``keys`` to rows of ``out``; given, this is a re-check.
    Rows whose text was truncated are added to ``report.truncated``.
    """
    found = store.get_many(keys, count=rows is None)
    missing, hits, values = [], [], []
    for i, key in enumerate(keys):
        value = found.get(key)
        if value is None:
            missing.append(i)
            continue
        row = i if rows is None else rows[i]
        hits.append(row)
        values.append(value[:-1])
        if value[-1, 0]:
            report.truncated.append(row)
    if hits:
        out[hits] = finish(np.stack(values))
    return missing


def _encode_rows(
    out: np.ndarray,
    texts: list[str],
    rows: list[int],
    models: LazyModels,
    spec: EncodingSpec,
    poolings: tuple[str, ...],
    report: RunReport,
    *,
    show_progress_bar: Any,
    keep: Any = None,
) -> None:
    """Encode ``texts[rows]`` into ``out[rows]``.

    ``keep(rows, pooled, truncated, long)`` receives every batch of completed
    texts with all its poolings, which of them were truncated and which were
    longer than ``max_length`` (the cache stores them). Truncated rows are
    added to ``report.truncated``.
    """
    finish = _finisher(spec, poolings, models)
    local = RunReport()
    with _progress(len(rows), spec.batch_size, show_progress_bar) as bar:
        for positions, pooled, truncated, long in iter_pooled(
            [texts[row] for row in rows],
            models.loaded,
            spec,
            poolings,
            chunk_size=CHUNK_SIZE,
            report=local,
            bar=bar,
        ):
            if not positions:
                continue
            batch_rows = [rows[p] for p in positions]
            if keep is not None:
                keep(batch_rows, pooled, truncated, long)
            out[batch_rows] = finish(pooled)
    report.truncated.extend(rows[p] for p in local.truncated)
    report.out_of_memory_splits.extend(local.out_of_memory_splits)
    report.tokens += local.tokens


def _encode_cached(
    out: np.ndarray,
    texts: list[str],
    models: LazyModels,
    spec: EncodingSpec,
    store: Store,
    report: RunReport,
    **options: Any,
) -> None:
    """Fill ``out`` from the cache, encoding (and storing) only the misses."""
    poolings = tuple(
        p for p in CACHED_POOLINGS if p != "pooler" or models.info.has_pooler
    )
    poolings += tuple(mode for mode in spec.modes if mode not in poolings)
    finish = _finisher(spec, poolings, models)
    prefix = entry_prefix(
        models.digest,
        models.compute,
        spec.max_length,
        spec.layers,
        poolings,
        spec.skip,
    )
    # A text that fits in max_length has the same vectors whatever
    # long_texts says, so it is stored under the prefix alone and shared by
    # every strategy; a longer one under the prefix and the strategy's settings.
    fits = [text_key(prefix, text) for text in texts]
    strategy = _strategy_key(spec).encode()
    longer = [text_key(prefix + strategy, text) for text in texts]
    todo = _fill_from(store, fits, out, finish, report)
    todo = _refill(store, longer, todo, out, finish, report)
    if not todo:
        return

    def keep(
        rows: list[int], pooled: np.ndarray, cut: list[bool], long: list[bool]
    ) -> None:
        store.put_many(
            {
                (longer if long[j] else fits)[row]: _entry(pooled[j], cut[j])
                for j, row in enumerate(rows)
            }
        )

    def compute(part: list[int]) -> None:
        # another thread or process may have computed some meanwhile
        missed = _refill(store, fits, part, out, finish, report)
        missed = _refill(store, longer, missed, out, finish, report)
        bar.update(len(part) - len(missed))
        part = missed
        if part:
            _encode_rows(
                out, texts, part, models, spec, poolings, report, keep=keep, **progress
            )

    show = options["show_progress_bar"]
    with _progress(len(todo), spec.batch_size, show) as bar:
        progress = {"show_progress_bar": bar}
        if not store.shared:  # threads of this process: one computes, the others wait
            with store.compute_lock(prefix):
                compute(todo)
            return
        # Processes sharing the store each take the parts no other holds and
        # encode them together, GROUP_BATCHES batches at a time (fewer texts
        # than SHARED_PARTS batches in one plan, as a process alone makes),
        # then wait for the parts others held, one at a time: they encode at
        # once, never the same text, and none waits while holding a part.
        together = len(todo) < SHARED_PARTS * spec.batch_size
        limit = len(todo) if together else GROUP_BATCHES * spec.batch_size
        waiting = []
        group = contextlib.ExitStack()
        rows: list[int] = []
        try:
            for number, part in _parts(todo, fits):
                lock = store.compute_lock(prefix + number, wait=False)
                if not group.enter_context(lock):
                    waiting.append((number, part))
                    continue
                rows += part
                if len(rows) >= limit:
                    with group:
                        compute(sorted(rows))  # in the order of the texts
                    group, rows = contextlib.ExitStack(), []
            if rows:
                compute(sorted(rows))
        finally:
            group.close()
        for number, part in waiting:
            with store.compute_lock(prefix + number):
                compute(part)


def _parts(todo: list[int], keys: list[bytes]) -> list[tuple[bytes, list[int]]]:
    """``todo`` split into the :data:`SHARED_PARTS` parts its texts' keys
    fall in (the same part in every process), named, non-empty, in an order
    that starts at a part of this process's own."""
    parts: list[list[int]] = [[] for _ in range(SHARED_PARTS)]
    for row in todo:
        parts[keys[row][0] % SHARED_PARTS].append(row)
    start = os.getpid() % SHARED_PARTS
    order = list(range(start, SHARED_PARTS)) + list(range(start))
    return [(b"\x00part%d" % n, parts[n]) for n in order if parts[n]]


def _strategy_key(spec: EncodingSpec) -> str:
    """What decides the vectors of a text longer than ``max_length``."""
    if spec.long_texts == "head_tail":
        return f"head_tail:{spec.head_tokens}\x00"
    if spec.long_texts == "chunk":
        return f"chunk:{spec.stride}:{spec.chunk_combine}\x00"
    return "truncate\x00"


def _refill(
    store: Store,
    keys: list[bytes],
    todo: list[int],
    out: np.ndarray,
    finish: Callable[[np.ndarray], np.ndarray],
    report: RunReport,
) -> list[int]:
    """Look the rows ``todo`` up again under ``keys``; the rows still missing."""
    if not todo:
        return todo
    missed = _fill_from(store, [keys[i] for i in todo], out, finish, report, todo)
    return [todo[i] for i in missed]


def encode(
    texts: list[str],
    models: Sequence[LoadedModel] | LazyModels,
    spec: EncodingSpec,
    *,
    show_progress_bar: Any = None,
    store: Store | None = None,
) -> tuple[np.ndarray, EncodingReport]:
    """Encode ``texts`` into a ``(len(texts), hidden_size)`` float32 array.

    ``models`` holds the same checkpoint loaded on each device to use (or
    :class:`LazyModels` that load it only if a text is not in ``store``);
    ``show_progress_bar`` is ``True``, ``False``, ``None`` (when long and on a
    terminal) or a caller's open progress bar, advanced per batch of texts
    completed. Returns the vectors and what happened (nothing is warned here).
    """
    if not isinstance(models, LazyModels):
        models = LazyModels.of(models)
    texts = prepare(texts, spec)
    unique = list(dict.fromkeys(texts))  # duplicates are encoded once
    out = np.empty((len(unique), spec.output_size), dtype=np.float32)
    run = RunReport()
    options = {"show_progress_bar": show_progress_bar}
    if store is None:
        rows = list(range(len(unique)))
        poolings = spec.modes
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
        long_texts=spec.long_texts,
        truncated=truncated,
        out_of_memory_splits=list(run.out_of_memory_splits),
        tokens=run.tokens,
    )
    return (out if inverse is None else out[inverse]), report
