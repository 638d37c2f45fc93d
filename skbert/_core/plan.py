"""What to compute for each text and how to batch it, without torch.

The spec every option resolves to, the plan that groups texts into
length-sorted batches, the padding of a batch, and the texts a model reads
(prompt, lower-casing). The torch encoder (:mod:`skbert._encoding`) and the
torch-free runtime (:mod:`skbert.runtime`) both batch with these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CHUNK_SIZE",
    "EncodingSpec",
    "RunReport",
    "pad_rows",
    "plan_batches",
    "prepare",
]

#: Texts tokenized (and sorted by length) together: bounds the memory a call
#: holds for token ids, whatever the number of texts.
CHUNK_SIZE = 8192


@dataclass(frozen=True)
class EncodingSpec:
    """What to compute for each text and how to batch it (validated against the
    model beforehand)."""

    pooling: str
    layers: tuple[int, ...]  # absolute indices into the hidden states
    normalize: bool
    max_length: int
    batch_size: int
    max_batch_tokens: int | None = None
    #: The poolings whose vectors are concatenated into the output (one,
    #: ``(pooling,)``, except for a sentence-transformers recipe).
    modes: tuple[str, ...] = ()
    #: Put before every text (a model's query/passage prompt).
    prompt: str = ""
    #: Lower-case every text first (a sentence-transformers folder asks for it).
    lowercase: bool = False
    #: Leading tokens (the prompt) left out of the token poolings.
    skip: int = 0
    #: Apply the folder's Dense layers after pooling.
    dense: bool = False
    #: Length of each output vector.
    output_size: int = 0
    #: What happens to texts longer than ``max_length``: "truncate",
    #: "head_tail" or "chunk" (see :mod:`skbert._core.long_texts`).
    long_texts: str = "truncate"
    #: "head_tail": tokens kept from the start (the rest from the end);
    #: ``None``: a quarter of what fits.
    head_tokens: int | None = None
    #: "chunk": tokens shared by consecutive windows.
    stride: int = 0
    #: "chunk": how window vectors are combined, "mean" (weighted by the
    #: windows' token counts) or "max".
    chunk_combine: str = "mean"

    def __post_init__(self) -> None:
        if not self.modes:
            object.__setattr__(self, "modes", (self.pooling,))


@dataclass
class RunReport:
    """What happened during a run, for the warnings shown afterwards."""

    truncated: list[int] = field(default_factory=list)
    out_of_memory_splits: list[int] = field(default_factory=list)
    #: Tokens given to the model (special tokens and every window included).
    tokens: int = 0


def plan_batches(lengths: list[int], plan: EncodingSpec) -> list[list[int]]:
    """Indices into ``lengths`` grouped into batches, longest texts first.

    A batch holds at most ``plan.batch_size`` texts and, when
    ``plan.max_batch_tokens`` is set, at most that many padded tokens (a text
    longer than the budget still gets a batch of its own).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches, start = [], 0
    while start < len(order):
        size = plan.batch_size
        if plan.max_batch_tokens is not None:
            longest = lengths[order[start]]
            size = max(1, min(size, plan.max_batch_tokens // max(longest, 1)))
        batches.append(order[start : start + size])
        start += size
    return batches


def pad_rows(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids right-padded to the longest row, and the attention mask
    (int64 arrays of shape ``(len(rows), longest)``)."""
    width = max(len(row) for row in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return input_ids, mask


def prepare(texts: list[str], spec: EncodingSpec) -> list[str]:
    """The texts the model reads: the prompt before each, lower-cased if the
    model's folder asks for it."""
    if spec.prompt:
        texts = [spec.prompt + text for text in texts]
    if spec.lowercase:
        texts = [text.lower() for text in texts]
    return texts
