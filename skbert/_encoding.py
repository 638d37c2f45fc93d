"""The batching loop: texts -> tokens -> length-sorted batches -> pooled float32.

Texts are tokenized chunk by chunk, sorted by token count inside the chunk and
cut into batches padded only to their own longest text. Each batch runs under
``torch.inference_mode()`` on the model's device, is pooled in float32, copied
to the CPU and written into a preallocated output at its original positions.
Memory therefore grows with the output only, not with the number of texts.
Duplicate texts are encoded once; with an embedding cache, only texts whose
vectors are not cached reach the model, and each forward pass stores every
pooling at once.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._pooling import POOLINGS

if TYPE_CHECKING:
    import torch

    from ._cache import DiskStore, MemoryStore
    from ._loading import LoadedModel

__all__ = ["EncodingSpec", "TruncationWarning", "encode"]

#: Texts tokenized (and length-sorted) at a time; bounds the token-id memory.
CHUNK_SIZE = 8192
#: Order of the poolings stored together in one cache entry.
CACHED_POOLINGS = ("cls", "mean", "max", "pooler")


class TruncationWarning(UserWarning):
    """Some texts were longer than ``max_length`` tokens and were cut."""


@dataclass(frozen=True)
class EncodingSpec:
    """What to compute for each text (validated against the model beforehand)."""

    pooling: str
    layers: tuple[int, ...]  # absolute indices into the hidden states
    normalize: bool
    max_length: int


def _tokenize(
    tokenizer: Any, texts: list[str], max_length: int
) -> tuple[list[list[int]], list[int]]:
    """Token ids per text, and the positions (in ``texts``) that were truncated."""
    encoded = tokenizer(
        texts,
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    ids = encoded["input_ids"]
    if getattr(encoded, "encodings", None):  # fast tokenizer: Rust reports overflow
        cut = [i for i, enc in enumerate(encoded.encodings) if enc.overflowing]
    else:
        full = tokenizer(texts, truncation=False, return_attention_mask=False)
        cut = [i for i, row in enumerate(full["input_ids"]) if len(row) > max_length]
    return ids, cut


def _collate(
    rows: list[list[int]], pad_id: int, with_token_types: bool, device: torch.device
) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest row and move it to ``device``."""
    import torch

    width = max(len(row) for row in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    batch = {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(mask),
    }
    if with_token_types:
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    if device.type == "cuda":
        return {
            name: tensor.pin_memory().to(device, non_blocking=True)
            for name, tensor in batch.items()
        }
    return {name: tensor.to(device) for name, tensor in batch.items()}


def _pool_batch(
    loaded: LoadedModel,
    batch: dict[str, torch.Tensor],
    layers: tuple[int, ...],
    poolings: tuple[str, ...],
) -> torch.Tensor:
    """One forward pass; float32 vectors of shape ``(batch, poolings, hidden)``."""
    import torch

    last = loaded.n_hidden_states - 1
    need_hidden = any(layer != last for layer in layers)
    output = loaded.model(**batch, output_hidden_states=need_hidden, return_dict=True)
    states = [
        (
            output.hidden_states[layer] if need_hidden else output.last_hidden_state
        ).float()
        for layer in layers
    ]
    mask = batch["attention_mask"]
    pooled = []
    for name in poolings:
        if name == "pooler":
            pooled.append(output.pooler_output.float())
            continue
        per_layer = [POOLINGS[name](state, mask) for state in states]
        pooled.append(
            per_layer[0] if len(per_layer) == 1 else torch.stack(per_layer).mean(0)
        )
    return torch.stack(pooled, dim=1)


def _iter_pooled(
    texts: list[str],
    loaded: LoadedModel,
    spec: EncodingSpec,
    poolings: tuple[str, ...],
    *,
    batch_size: int,
    bar: Any,
    truncated: list[int],
) -> Iterator[tuple[list[int], np.ndarray]]:
    """Yield ``(positions in texts, pooled vectors)`` batch by batch."""
    import torch

    tokenizer = loaded.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    with torch.inference_mode():
        for start in range(0, len(texts), CHUNK_SIZE):
            chunk = texts[start : start + CHUNK_SIZE]
            ids, cut = _tokenize(tokenizer, chunk, spec.max_length)
            truncated.extend(start + i for i in cut)
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
            for b in range(0, len(order), batch_size):
                rows = order[b : b + batch_size]
                batch = _collate(
                    [ids[i] for i in rows], pad_id, with_token_types, loaded.device
                )
                pooled = _pool_batch(loaded, batch, spec.layers, poolings)
                yield [start + i for i in rows], pooled.to("cpu").numpy()
                bar.update(len(rows))


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


def _fill_from(
    store: MemoryStore | DiskStore,
    keys: list[bytes],
    out: np.ndarray,
    which: int,
    normalize: bool,
    rows: list[int] | None = None,
) -> list[int]:
    """Copy cached vectors into ``out``; return the indices of ``keys`` missed.

    ``rows`` maps ``keys`` to rows of ``out``; given, this is a re-check.
    """
    found = store.get_many(keys, count=rows is None)
    missing = []
    for i, key in enumerate(keys):
        value = found.get(key)
        if value is None:
            missing.append(i)
        else:
            out[i if rows is None else rows[i]] = _finish(value[which], normalize)
    return missing


def _encode_rows(
    out: np.ndarray,
    texts: list[str],
    rows: list[int],
    loaded: LoadedModel,
    spec: EncodingSpec,
    poolings: tuple[str, ...],
    *,
    batch_size: int,
    show_progress_bar: bool | None,
    keep: Any = None,
) -> set[int]:
    """Encode ``texts[rows]`` into ``out[rows]``; return the truncated rows.

    ``keep(rows, pooled)`` receives every batch with all its poolings (the
    cache stores them).
    """
    which = poolings.index(spec.pooling)
    truncated: list[int] = []
    with _progress(len(rows), batch_size, show_progress_bar) as bar:
        for positions, pooled in _iter_pooled(
            [texts[row] for row in rows],
            loaded,
            spec,
            poolings,
            batch_size=batch_size,
            bar=bar,
            truncated=truncated,
        ):
            batch_rows = [rows[p] for p in positions]
            if keep is not None:
                keep(batch_rows, pooled)
            out[batch_rows] = _finish(pooled[:, which], spec.normalize)
    return {rows[p] for p in truncated}


def _encode_cached(
    out: np.ndarray,
    texts: list[str],
    loaded: LoadedModel,
    spec: EncodingSpec,
    store: MemoryStore | DiskStore,
    **options: Any,
) -> set[int]:
    """Fill ``out`` from the cache, encoding (and storing) only the misses."""
    from ._cache import entry_prefix, text_key

    poolings = tuple(p for p in CACHED_POOLINGS if p != "pooler" or loaded.has_pooler)
    which = poolings.index(spec.pooling)
    prefix = entry_prefix(
        loaded.fingerprint,
        loaded.tokenizer_fingerprint,
        loaded.compute,
        spec.max_length,
        spec.layers,
        poolings,
    )
    keys = [text_key(prefix, text) for text in texts]
    todo = _fill_from(store, keys, out, which, spec.normalize)
    if not todo:
        return set()
    with store.compute_lock(prefix):
        if store.shared:  # another process may have computed some meanwhile
            again = _fill_from(
                store, [keys[i] for i in todo], out, which, spec.normalize, todo
            )
            todo = [todo[i] for i in again]

        def keep(rows: list[int], pooled: np.ndarray) -> None:
            store.put_many({keys[row]: pooled[j] for j, row in enumerate(rows)})

        return _encode_rows(
            out, texts, todo, loaded, spec, poolings, keep=keep, **options
        )


def encode(
    texts: list[str],
    loaded: LoadedModel,
    spec: EncodingSpec,
    *,
    batch_size: int,
    show_progress_bar: bool | None = None,
    store: MemoryStore | DiskStore | None = None,
) -> np.ndarray:
    """Encode ``texts`` into a ``(len(texts), hidden_size)`` float32 array."""
    unique = list(dict.fromkeys(texts))  # duplicates are encoded once
    out = np.empty((len(unique), loaded.hidden_size), dtype=np.float32)
    options = {"batch_size": batch_size, "show_progress_bar": show_progress_bar}
    if store is None:
        rows = list(range(len(unique)))
        cut = _encode_rows(out, unique, rows, loaded, spec, (spec.pooling,), **options)
    else:
        cut = _encode_cached(out, unique, loaded, spec, store, **options)
    if len(unique) == len(texts):
        inverse = None
    else:
        index = {text: i for i, text in enumerate(unique)}
        inverse = [index[text] for text in texts]
    if cut:
        positions = (
            sorted(cut)
            if inverse is None
            else [p for p, row in enumerate(inverse) if row in cut]
        )
        warnings.warn(
            f"{len(positions)} of {len(texts)} texts were longer than max_length="
            f"{spec.max_length} tokens and were truncated (first at position "
            f"{positions[0]}). Their vectors describe only the first "
            f"{spec.max_length} tokens.",
            TruncationWarning,
            stacklevel=4,
        )
    return out if inverse is None else out[inverse]
