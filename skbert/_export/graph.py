"""A fitted vectorizer -> one ONNX graph from token ids to its output vectors.

The graph is the checkpoint's encoder, exported by the recipe of
:mod:`skbert._encoding.onnx` (explicit additive mask, fused by ONNX Runtime's
transformer optimizer), with everything ``transform`` does after the forward
pass traced into it: the hidden states of the chosen ``layers``, each pooling
of the spec by :func:`skbert._encoding.batching.pool_batch` itself (so the prompt
tokens a recipe leaves out, the layer average and the pooler are the main
path's code), the modes concatenated, a sentence-transformers folder's Dense
layers and the normalization. Inputs are ``input_ids``, ``attention_mask``
and ``token_type_ids`` (zeros); the output is ``vectors``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from .._encoding.finish import dense_layers, finish
from .._encoding.onnx import _quantize, export_graph

if TYPE_CHECKING:
    from .._core.plan import EncodingSpec
    from .._model.checkpoint import LoadedModel

__all__ = ["VECTORS", "export_vectors_graph", "vectorizer_recipe"]

#: The name of the graph's output.
VECTORS = "vectors"


def vectorizer_recipe(vectorizer: Any) -> tuple[LoadedModel, EncodingSpec]:
    """The float32 CPU torch model of a fitted vectorizer and the spec its
    ``transform`` runs (every parameter checked against the model, as there)."""
    from .._estimator.fitted import fitted_encoder

    encoder = fitted_encoder(vectorizer, export=True)
    return encoder.models[0], encoder.spec


class _EncoderOutputs:
    """The export encoder called like a transformers model, as
    :func:`~skbert._encoding.batching.pool_batch` calls one."""

    def __init__(self, encoder: Any, layers: tuple[int, ...], n_states: int) -> None:
        self.encoder = encoder
        self.layers = layers
        self.n_states = n_states

    def __call__(self, *, input_ids, attention_mask, token_type_ids, **_: Any) -> Any:
        outputs = self.encoder(input_ids, attention_mask, token_type_ids)
        states: list[Any] = [None] * self.n_states
        for layer, state in zip(self.layers, outputs, strict=False):
            states[layer] = state
        pooler = outputs[len(self.layers)] if len(outputs) > len(self.layers) else None
        return SimpleNamespace(
            hidden_states=states,
            last_hidden_state=states[-1],
            pooler_output=pooler,
        )


def _vectors_module(model: Any, loaded: LoadedModel, spec: EncodingSpec) -> Any:
    """A torch module: token ids -> the vectors ``transform`` returns."""
    import torch

    from .._encoding.batching import pool_batch
    from .._encoding.onnx import _export_module

    dense = dense_layers(loaded, spec)

    class SentenceVectors(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = _export_module(model, spec.layers)
            self.runs = dataclasses.replace(
                loaded,
                model=_EncoderOutputs(
                    self.encoder, spec.layers, loaded.info.n_hidden_states
                ),
            )

        def forward(self, input_ids, attention_mask, token_type_ids):
            batch = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": token_type_ids,
            }
            pooled = pool_batch(self.runs, batch, spec.layers, spec.modes, spec.skip)
            vectors = pooled.reshape(pooled.shape[0], -1)
            return finish(vectors, dense, spec.normalize)

    return SentenceVectors()


def export_vectors_graph(
    loaded: LoadedModel, spec: EncodingSpec, target: Path, *, quantize: bool
) -> None:
    """Write the fused float32 (or int8) graph of ``spec`` on ``loaded`` to
    ``target``."""
    float32 = target.with_name(target.name + ".float32")
    try:
        export_graph(
            loaded,
            float32 if quantize else target,
            lambda model: _vectors_module(model, loaded, spec),
            {VECTORS: {0: "batch"}},
        )
        if quantize:
            _quantize(float32, target)
    finally:
        float32.unlink(missing_ok=True)
