"""The check an artefact passes before it replaces its path: loaded by the
runtime and compared with the Python pipeline (float32, CPU), token ids first,
then every output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._core.inputs import check_texts
from .._core.plan import prepare
from ..runtime import ExportedPipeline

if TYPE_CHECKING:
    from .._core.plan import EncodingSpec
    from .._model.checkpoint import LoadedModel

__all__ = ["CHECK_TEXTS", "Comparison", "compare", "texts_to_check"]

#: Texts every export is checked on (with one longer than ``max_length``).
CHECK_TEXTS = (
    "The food was delicious and the staff were friendly.",
    "Cold soup, a rude waiter and a long wait.",
    "Not bad at all!",
    "I would never go back.",
    "ok",
    "",
    "A great film. Dull and far too long, though?",
    "café naïve 😀 我爱电影 שלום",
    "actors acting badly: 3/10 ...",
    "   spaces   around   ",
)


def texts_to_check(texts: Any, spec: EncodingSpec) -> list[str]:
    """The texts to compare the artefact with Python on."""
    if texts is not None:
        texts = check_texts(texts)
        if not texts:
            raise ValueError("check_texts must hold at least one text.")
        return texts
    sentence = "The story went on and on, and nothing happened at all. "
    return [*CHECK_TEXTS, sentence * (spec.max_length // 8 + 1)]


def _python_outputs(
    loaded: LoadedModel,
    spec: EncodingSpec,
    steps: list[tuple[str, Any]],
    texts: list[str],
    methods: list[str],
) -> dict[str, np.ndarray]:
    """What the pipeline computes in Python (float32 on the CPU), by method."""
    from .._encoding.encode import encode

    vectors, _ = encode(texts, [loaded], spec)
    outputs = {"embed": vectors}
    if not steps:
        return {method: vectors for method in methods}
    X = vectors
    for _, step in steps[:-1]:
        X = step.transform(X)
    final = steps[-1][1]
    outputs.update(
        (method, getattr(final, method)(X)) for method in methods if method != "embed"
    )
    return outputs


@dataclass(frozen=True)
class Comparison:
    agreement: float | None = None
    max_difference: float | None = None
    vector_difference: float = 0.0


def compare(
    path: Path,
    loaded: LoadedModel,
    spec: EncodingSpec,
    steps: list[tuple[str, Any]],
    texts: list[str],
) -> Comparison:
    """Load ``path`` with the runtime and compare it with Python on ``texts``:
    the token ids, then every output."""
    runtime = ExportedPipeline(path)
    expected_ids, _ = loaded.tokenizer.encode(
        prepare(texts, spec),
        spec.max_length,
        long_texts=spec.long_texts,
        head_tokens=spec.head_tokens,
    )
    found_ids, _ = runtime._token_ids(texts)
    for i, (found, expected) in enumerate(zip(found_ids, expected_ids, strict=True)):
        if found != expected:
            raise RuntimeError(
                f"The tokenizer.json of this checkpoint, read by the tokenizers "
                f"library, tokenizes check text {i} ({texts[i][:40]!r}) as "
                f"{found[:12]} instead of {expected[:12]}; refusing to export a "
                "runtime that reads texts differently."
            )
    figures: dict[str, Any] = {}
    methods = list(runtime.manifest["outputs"])
    for method, expected in _python_outputs(
        loaded, spec, steps, texts, methods
    ).items():
        found, _ = runtime._outputs(texts, runtime._output(method))
        if method == "predict":
            same = np.asarray(found).astype(expected.dtype) == expected
            figures["agreement"] = float(np.mean(same))
            continue
        gap = float(np.max(np.abs(found - expected), initial=0.0))
        if method == "embed":
            figures["vector_difference"] = gap
        else:
            figures["max_difference"] = gap
    return Comparison(**figures)
