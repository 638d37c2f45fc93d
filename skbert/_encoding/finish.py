"""The last steps of every sentence vector, written once: a
sentence-transformers folder's Dense layers, then unit length if asked.

``transform`` (through :func:`finish_numpy`), the tuning loop (on the
gradient path) and the exported ONNX graph (traced) all call
:func:`finish`, so the three cannot drift apart; without Dense layers,
:func:`finish_numpy` scales to unit length in numpy (equal within one float32
rounding), so that rows served from a cache need no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import torch

    from .._core.plan import EncodingSpec
    from .._model.checkpoint import LoadedModel
    from .._model.identity import ModelInfo

__all__ = ["dense_layers", "finish", "finish_numpy", "needs_dense"]

#: The smallest norm a vector is divided by (a zero vector stays zero).
_MIN_NORM = 1e-12


def needs_dense(info: ModelInfo, spec: EncodingSpec) -> bool:
    """Whether ``spec`` applies Dense layers of the model ``info`` describes
    (``spec.dense`` and a folder that declares some)."""
    return bool(spec.dense and info.sentence is not None and info.sentence.dense)


def dense_layers(
    loaded: LoadedModel, spec: EncodingSpec, device: Any = None
) -> list[tuple[torch.Tensor, torch.Tensor | None, Any]]:
    """``(weight, bias, activation)`` of each Dense layer ``spec`` applies
    (none unless :func:`needs_dense`), on ``device``."""
    import torch

    if not needs_dense(loaded.info, spec):
        return []
    layers = []
    for (weight, bias), declared in zip(
        loaded.dense, loaded.info.sentence.dense, strict=True
    ):
        layers.append(
            (
                torch.as_tensor(weight, device=device),
                None if bias is None else torch.as_tensor(bias, device=device),
                getattr(torch.nn, declared.activation)(),
            )
        )
    return layers


def finish(
    vectors: torch.Tensor,
    layers: list[tuple[torch.Tensor, torch.Tensor | None, Any]],
    normalize: bool,
) -> torch.Tensor:
    """``vectors`` (the modes concatenated) through ``layers``, then scaled to
    unit length if ``normalize``."""
    import torch

    for weight, bias, activation in layers:
        vectors = activation(torch.nn.functional.linear(vectors, weight, bias))
    if normalize:
        norms = vectors.norm(dim=-1, keepdim=True).clamp(min=_MIN_NORM)
        vectors = vectors / norms
    return vectors


def finish_numpy(
    vectors: np.ndarray,
    layers: list[tuple[torch.Tensor, torch.Tensor | None, Any]],
    normalize: bool,
) -> np.ndarray:
    """:func:`finish` for numpy rows (no gradient; torch is imported only for
    Dense layers, so that rows served from a cache need none)."""
    import numpy as np

    if not layers:
        if not normalize:
            return vectors
        norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
        return vectors / np.maximum(norms, np.float32(_MIN_NORM))
    import torch

    with torch.inference_mode():
        tensor = torch.from_numpy(np.ascontiguousarray(vectors))
        return finish(tensor, layers, normalize).numpy()
