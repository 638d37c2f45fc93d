"""The batching loop: texts -> tokens -> length-sorted batches -> pooled float32.

Texts are tokenized chunk by chunk, sorted by token count inside the chunk and
cut into batches padded only to their own longest text. Each batch runs under
``torch.inference_mode()`` on the model's device, is pooled in float32, copied
to the CPU and written into a preallocated output at its original positions.
Memory therefore grows with the output only, not with the number of texts.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._pooling import POOLINGS

if TYPE_CHECKING:
    import torch

    from ._loading import LoadedModel

__all__ = ["EncodingSpec", "TruncationWarning", "encode"]

#: Texts tokenized (and length-sorted) at a time; bounds the token-id memory.
CHUNK_SIZE = 8192


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
        truncated = [i for i, enc in enumerate(encoded.encodings) if enc.overflowing]
    else:
        full = tokenizer(texts, truncation=False, return_attention_mask=False)
        truncated = [
            i for i, row in enumerate(full["input_ids"]) if len(row) > max_length
        ]
    return ids, truncated


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
            k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()
        }
    return {k: v.to(device) for k, v in batch.items()}


def _pool_batch(
    loaded: LoadedModel, batch: dict[str, torch.Tensor], spec: EncodingSpec
) -> torch.Tensor:
    """One forward pass and the pooled float32 vectors of the batch."""
    import torch

    last = loaded.n_hidden_states - 1
    need_hidden = any(layer != last for layer in spec.layers)
    output = loaded.model(**batch, output_hidden_states=need_hidden, return_dict=True)
    if spec.pooling == "pooler":
        pooled = output.pooler_output.float()
    else:
        pool = POOLINGS[spec.pooling]
        mask = batch["attention_mask"]
        per_layer = [
            pool(
                (
                    output.hidden_states[layer]
                    if need_hidden
                    else output.last_hidden_state
                ).float(),
                mask,
            )
            for layer in spec.layers
        ]
        pooled = per_layer[0] if len(per_layer) == 1 else torch.stack(per_layer).mean(0)
    if spec.normalize:
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
    return pooled


def _progress(total: int, batch_size: int, show: bool | None) -> Any:
    from tqdm.auto import tqdm

    if show is None:
        show = total > 8 * batch_size and sys.stderr.isatty()
    return tqdm(total=total, desc="skbert: encoding", unit="text", disable=not show)


def encode(
    texts: list[str],
    loaded: LoadedModel,
    spec: EncodingSpec,
    *,
    batch_size: int,
    show_progress_bar: bool | None = None,
) -> np.ndarray:
    """Encode ``texts`` into a ``(len(texts), hidden_size)`` float32 array."""
    import torch

    out = np.empty((len(texts), loaded.hidden_size), dtype=np.float32)
    tokenizer = loaded.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    truncated: list[int] = []
    with (
        _progress(len(texts), batch_size, show_progress_bar) as bar,
        torch.inference_mode(),
    ):
        for start in range(0, len(texts), CHUNK_SIZE):
            ids, cut = _tokenize(
                tokenizer, texts[start : start + CHUNK_SIZE], spec.max_length
            )
            truncated.extend(start + i for i in cut)
            order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
            for b in range(0, len(order), batch_size):
                rows = order[b : b + batch_size]
                batch = _collate(
                    [ids[i] for i in rows], pad_id, with_token_types, loaded.device
                )
                pooled = _pool_batch(loaded, batch, spec)
                out[[start + i for i in rows]] = pooled.to("cpu").numpy()
                bar.update(len(rows))
    if truncated:
        warnings.warn(
            f"{len(truncated)} of {len(texts)} texts were longer than "
            f"max_length={spec.max_length} tokens and were truncated (first at "
            f"position {truncated[0]}). Their vectors describe only the first "
            f"{spec.max_length} tokens.",
            TruncationWarning,
            stacklevel=3,
        )
    return out
