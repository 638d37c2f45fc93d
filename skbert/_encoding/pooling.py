"""Pooling: token states -> one vector per text, as small pure functions.

Every function takes ``hidden`` of shape ``(batch, tokens, width)`` and
``attention_mask`` of shape ``(batch, tokens)`` (1 for real tokens, 0 for
padding) and returns ``(batch, width)``. Padding never reaches the result:
``cls`` reads the first counted position (0: padding is on the right),
``mean`` divides by the number of real tokens, ``max`` replaces padded
positions with ``-inf``. Inputs are never modified in place. The names are
skbert's; ``mean_sqrt_len``, ``weightedmean`` and ``lasttoken`` follow
sentence-transformers' modes of the same names (a folder's declared recipe).

:data:`NUMPY_POOLINGS` are the same functions over numpy arrays, for the ONNX
Runtime backend, whose outputs are numpy arrays: torch's kernels would
parallelize there, and the OpenMP threads they wake keep spinning while ONNX
Runtime's own threads want the cores (on the 2-core benchmark machine the
float32 backend took 1.4 times the CPU time, the int8 one 1.75 times). Both
registries are tested against one numpy oracle and against each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "NUMPY_POOLINGS",
    "TORCH_POOLINGS",
    "cls_pooling",
    "lasttoken_pooling",
    "max_pooling",
    "mean_pooling",
    "mean_sqrt_len_pooling",
    "weightedmean_pooling",
]


def cls_pooling(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The state of the first counted token: ``hidden[:, 0]`` ([CLS] for BERT),
    or the first token after a prompt that the mask leaves out."""
    first = attention_mask.long().argmax(dim=1)
    return hidden[_rows(hidden), first]


def _rows(hidden: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.arange(hidden.shape[0], device=hidden.device)


def mean_pooling(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real (unmasked) token states."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return (hidden * mask).sum(dim=1) / counts


def mean_sqrt_len_pooling(
    hidden: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Sum of the real token states divided by the square root of their count."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return (hidden * mask).sum(dim=1) / counts.sqrt()


def weightedmean_pooling(
    hidden: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Mean of the real token states weighted by position (1 for the first token,
    2 for the second, ...), as sentence-transformers' ``weightedmean``."""
    import torch

    positions = torch.arange(
        1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype
    ).view(1, -1, 1)
    weights = attention_mask.unsqueeze(-1).to(hidden.dtype) * positions
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def lasttoken_pooling(
    hidden: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """The state of the last counted token (padding is on the right; a prompt
    that the mask leaves out is before it), as sentence-transformers'
    ``lasttoken``: zeros for a text without any counted token."""
    import torch

    counted = attention_mask != 0
    last = hidden.shape[1] - 1 - counted.flip(1).long().argmax(dim=1)
    picked = hidden[_rows(hidden), last]
    return torch.where(counted.any(dim=1, keepdim=True), picked, 0.0)


def max_pooling(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over the real (unmasked) token states."""
    padded = attention_mask.unsqueeze(-1) == 0
    return hidden.masked_fill(padded, float("-inf")).amax(dim=1)


#: Poolings computed from hidden states, by their names in
#: :data:`skbert._core.options.VECTOR_MODES`. ``"pooler"`` is not here: it is the
#: model's own trained layer and is read from the model output.
TORCH_POOLINGS = {
    "cls": cls_pooling,
    "mean": mean_pooling,
    "max": max_pooling,
    "mean_sqrt_len": mean_sqrt_len_pooling,
    "weightedmean": weightedmean_pooling,
    "lasttoken": lasttoken_pooling,
}


def _np_counts(mask: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.maximum(mask.sum(axis=1, dtype=dtype), 1e-9)


def _np_cls(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return hidden[np.arange(len(hidden)), mask.argmax(axis=1)]


def _np_mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(hidden.dtype)
    return (hidden * weights).sum(axis=1) / _np_counts(weights, hidden.dtype)


def _np_mean_sqrt_len(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(hidden.dtype)
    return (hidden * weights).sum(axis=1) / np.sqrt(_np_counts(weights, hidden.dtype))


def _np_weightedmean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    positions = np.arange(1, hidden.shape[1] + 1, dtype=hidden.dtype)[None, :, None]
    weights = mask[..., None].astype(hidden.dtype) * positions
    return (hidden * weights).sum(axis=1) / _np_counts(weights, hidden.dtype)


def _np_lasttoken(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    counted = mask != 0
    last = hidden.shape[1] - 1 - counted[:, ::-1].argmax(axis=1)
    picked = hidden[np.arange(len(hidden)), last]
    return np.where(counted.any(axis=1, keepdims=True), picked, 0).astype(
        hidden.dtype, copy=False
    )


def _np_max(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (
        np.where(mask[..., None] == 0, -np.inf, hidden)
        .max(axis=1)
        .astype(hidden.dtype, copy=False)
    )


#: :data:`TORCH_POOLINGS` over numpy arrays (same names, same results).
NUMPY_POOLINGS = {
    "cls": _np_cls,
    "mean": _np_mean,
    "max": _np_max,
    "mean_sqrt_len": _np_mean_sqrt_len,
    "weightedmean": _np_weightedmean,
    "lasttoken": _np_lasttoken,
}
