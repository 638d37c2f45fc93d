"""Pooling: token states -> one vector per text, as small pure functions.

Every function takes ``hidden`` of shape ``(batch, tokens, width)`` and
``attention_mask`` of shape ``(batch, tokens)`` (1 for real tokens, 0 for
padding) and returns ``(batch, width)``. Padding never reaches the result:
``cls`` reads position 0 (padding is on the right), ``mean`` divides by the
number of real tokens, ``max`` replaces padded positions with ``-inf``. Inputs
are never modified in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["POOLINGS", "cls_pooling", "max_pooling", "mean_pooling"]


def cls_pooling(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The state of the first token, ``hidden[:, 0]`` ([CLS] for BERT)."""
    return hidden[:, 0]


def mean_pooling(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real (unmasked) token states."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return (hidden * mask).sum(dim=1) / counts


def max_pooling(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over the real (unmasked) token states."""
    padded = attention_mask.unsqueeze(-1) == 0
    return hidden.masked_fill(padded, float("-inf")).amax(dim=1)


#: Poolings computed from hidden states. ``"pooler"`` is not here: it is the
#: model's own trained layer and is read from the model output.
POOLINGS = {"cls": cls_pooling, "mean": mean_pooling, "max": max_pooling}
