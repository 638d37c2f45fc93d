"""Texts longer than ``max_length``: truncate, keep head and tail, or cover them
with windows.

Every text's tokens (without special tokens) become one or more model inputs
of at most ``max_length`` tokens, each framed by the checkpoint's own special
tokens:

* ``"truncate"``: the first tokens only (the classic behaviour);
* ``"head_tail"``: the first ``head_tokens`` and the last tokens, which Sun et
  al. (2019) found best for fine-tuned BERT on IMDB reviews;
* ``"chunk"``: windows of ``max_length`` tokens that overlap by ``stride``
  tokens and cover the whole text; each window is pooled alone and the pooled
  vectors are combined (mean weighted by each window's token count, or
  element-wise max) by :class:`Combiner`, so every token is seen.

Windows of all texts are batched together by token count, as short texts are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .options import LONG_TEXTS

__all__ = ["Combiner", "Inputs", "model_inputs"]


@dataclass
class Inputs:
    """Model inputs for a chunk of texts."""

    #: Token ids of each model input, special tokens included.
    rows: list[list[int]] = field(default_factory=list)
    #: The text (index in the chunk) each input belongs to.
    owner: list[int] = field(default_factory=list)
    #: Per text: whether tokens were left out (truncate, head_tail).
    cut: list[bool] = field(default_factory=list)
    #: Per text: whether it was longer than one input.
    long: list[bool] = field(default_factory=list)
    #: Per text: how many inputs it became.
    count: list[int] = field(default_factory=list)


def _starts(length: int, budget: int, stride: int) -> list[int]:
    """Where the windows of a ``length``-token text start."""
    starts = [0]
    step = budget - stride
    while starts[-1] + budget < length:
        starts.append(starts[-1] + step)
    return starts


def model_inputs(
    contents: list[list[int]],
    prefix: list[int],
    suffix: list[int],
    *,
    max_length: int,
    strategy: str,
    head_tokens: int | None,
    stride: int,
) -> Inputs:
    """Frame ``contents`` (token ids without special tokens) as model inputs.

    Raises
    ------
    ValueError
        If ``strategy`` is not one of :data:`~skbert._core.options.LONG_TEXTS`.
    """
    if strategy not in LONG_TEXTS:
        raise ValueError(
            f"long_texts={strategy!r} is not a strategy for long texts; use one of "
            f"{', '.join(map(repr, LONG_TEXTS))}."
        )
    budget = max(max_length - len(prefix) - len(suffix), 0)
    out = Inputs()
    for index, content in enumerate(contents):
        long = len(content) > budget
        out.long.append(long)
        if not long or strategy == "truncate":
            pieces = [content[:budget]]
        elif strategy == "head_tail":
            head = budget // 4 if head_tokens is None else min(head_tokens, budget)
            tail = budget - head
            pieces = [content[:head] + (content[-tail:] if tail else [])]
        else:  # "chunk", the one strategy left
            pieces = [
                content[s : s + budget] for s in _starts(len(content), budget, stride)
            ]
        out.cut.append(long and strategy != "chunk")
        out.count.append(len(pieces))
        for piece in pieces:
            out.rows.append([*prefix, *piece, *suffix])
            out.owner.append(index)
    return out


class Combiner:
    """Collects pooled windows per text and hands back texts once complete.

    ``combine="mean"`` weights each window by its token count; ``"max"``
    takes the element-wise maximum. A text of one input is complete at once.
    """

    def __init__(self, inputs: Inputs, combine: str) -> None:
        self.inputs = inputs
        self.combine = combine
        self.remaining = list(inputs.count)
        self.sums: dict[int, np.ndarray] = {}
        self.weights: dict[int, float] = {}

    def add(
        self, indices: list[int], pooled: np.ndarray
    ) -> tuple[list[int], np.ndarray]:
        """Add the pooled vectors of inputs ``indices``; return the texts that
        are now complete and their combined vectors."""
        done, vectors = [], []
        for row, index in enumerate(indices):
            text = self.inputs.owner[index]
            if self.inputs.count[text] == 1:
                done.append(text)
                vectors.append(pooled[row])
                continue
            value = pooled[row].astype(np.float64)
            if self.combine == "mean":
                weight = float(len(self.inputs.rows[index]))
                value = value * weight
                self.weights[text] = self.weights.get(text, 0.0) + weight
            if text not in self.sums:
                self.sums[text] = value
            elif self.combine == "mean":
                self.sums[text] += value
            else:
                np.maximum(self.sums[text], value, out=self.sums[text])
            self.remaining[text] -= 1
            if self.remaining[text] == 0:
                total = self.sums.pop(text)
                if self.combine == "mean":
                    total = total / self.weights.pop(text)
                done.append(text)
                vectors.append(total.astype(np.float32))
        if not done:
            return [], np.empty((0, *pooled.shape[1:]), dtype=np.float32)
        return done, np.stack(vectors)
