"""The scikit-learn steps after the vectorizer -> ONNX, appended to the encoder.

skl2onnx converts the fitted steps (``StandardScaler``, ``PCA``,
``LogisticRegression``, ``LinearSVC``, ``SGDClassifier`` and the rest of its
registry) into a graph that reads the vectors; ``onnx.compose`` joins it to
the encoder graph, so that one graph goes from token ids to the pipeline's
outputs. A step skl2onnx has no converter for is refused up front, by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._model.quiet import quiet_warnings
from .graph import VECTORS

__all__ = ["Head", "append_head", "convert_steps"]

#: The input of the converted steps (renamed to the encoder's output on merge).
_FEATURES = "features"
#: The opset of skl2onnx's ML operators (LinearClassifier, Normalizer, ...).
_ML_OPSET = 3


@dataclass(frozen=True)
class Head:
    """The converted steps and what the runtime reads from them."""

    model: Any  # onnx.ModelProto
    kind: str  # "classifier" or "transformer"
    #: Runtime method -> graph output.
    outputs: dict[str, str]
    classes: list[Any] | None
    #: Width of the ``transform`` output (``None`` for a classifier).
    n_features_out: int | None


def _import_skl2onnx() -> Any:
    try:
        import skl2onnx
    except ImportError as exc:
        raise ImportError(
            'Exporting scikit-learn steps needs skl2onnx: pip install "skbert[export]".'
        ) from exc
    return skl2onnx


def _check_convertible(steps: list[tuple[str, Any]]) -> None:
    """Refuse, by name, a step that skl2onnx cannot convert."""
    skl2onnx = _import_skl2onnx()
    for name, step in steps:
        try:
            skl2onnx.get_model_alias(type(step))
        except (KeyError, RuntimeError):  # RuntimeError: "Unable to find alias"
            raise ValueError(
                f"The pipeline step {name!r} ({type(step).__name__}) cannot be "
                "exported to ONNX: skl2onnx has no converter for it. Export the "
                "steps skl2onnx supports (e.g. StandardScaler, PCA, "
                "LogisticRegression, LinearSVC, SGDClassifier), or register a "
                "converter with skl2onnx.update_registered_converter."
            ) from None


def _kind(name: str, final: Any) -> str:
    from sklearn.base import is_classifier

    if is_classifier(final):
        return "classifier"
    if hasattr(final, "transform"):
        return "transformer"
    raise ValueError(
        f"The last pipeline step {name!r} ({type(final).__name__}) is neither a "
        "classifier nor a transformer; export_onnx writes classifiers (label and "
        "probabilities) and transformers (vectors)."
    )


def _options(final: Any) -> dict[int, dict[str, Any]]:
    """Classifier outputs as plain tensors (no ZipMap of dictionaries)."""
    from skl2onnx.common._registration import get_converter

    allowed = get_converter(_import_skl2onnx().get_model_alias(type(final)))
    if "zipmap" in allowed.get_allowed_options():
        return {id(final): {"zipmap": False}}
    # skl2onnx adds zipmap to a classifier inside a Pipeline unless the
    # classifier has options of its own, even to one that refuses it (LinearSVC)
    return {id(final): {"nocl": False}}


def convert_steps(steps: list[tuple[str, Any]], n_features: int, opset: int) -> Head:
    """Convert fitted scikit-learn ``steps`` that read ``n_features`` floats."""

    from onnx import version_converter
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.pipeline import Pipeline

    _check_convertible(steps)
    name, final = steps[-1]
    kind = _kind(name, final)
    skl2onnx = _import_skl2onnx()
    with quiet_warnings():  # skl2onnx's notes on opsets and dtypes
        model = skl2onnx.convert_sklearn(
            Pipeline(steps),
            initial_types=[(_FEATURES, FloatTensorType([None, n_features]))],
            target_opset={"": opset, "ai.onnx.ml": _ML_OPSET},
            options=_options(final) if kind == "classifier" else None,
        )
    # skl2onnx declares the lowest opset its operators need; one graph has one
    model = version_converter.convert_version(model, opset)
    names = [output.name for output in model.graph.output]
    if kind == "classifier":
        outputs = {"predict": names[0]}
        if hasattr(final, "predict_proba"):
            outputs["predict_proba"] = names[1]
        return Head(model, kind, outputs, final.classes_.tolist(), None)
    return Head(model, kind, {"transform": names[0]}, None, _width(steps, n_features))


def _width(steps: list[tuple[str, Any]], n_features: int) -> int:
    """How many features the fitted ``steps`` turn ``n_features`` into."""
    import numpy as np

    X = np.zeros((1, n_features), dtype=np.float32)
    for _, step in steps:
        X = step.transform(X)
    return int(np.shape(X)[1])


def append_head(encoder: Any, head: Any) -> Any:
    """One model: ``encoder``'s vectors fed to ``head``'s input, and kept as
    an output (the runtime's ``embed``)."""
    import onnx
    from onnx import compose

    encoder = _used_opsets_only(encoder)
    head = compose.add_prefix(head, "head/", rename_inputs=False, rename_outputs=False)
    version = max(encoder.ir_version, head.ir_version)
    encoder.ir_version = head.ir_version = version
    merged = compose.merge_models(
        encoder,
        head,
        io_map=[(VECTORS, _FEATURES)],
        outputs=[VECTORS, *(output.name for output in head.graph.output)],
    )
    opsets = {entry.domain: entry.version for entry in merged.opset_import}
    del merged.opset_import[:]
    merged.opset_import.extend(
        onnx.helper.make_opsetid(domain, version) for domain, version in opsets.items()
    )
    return merged


def _used_opsets_only(model: Any) -> Any:
    """``model`` declaring only the operator domains its nodes use (ONNX
    Runtime's optimizer declares every domain it knows)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    used = {node.domain for node in copy.graph.node} | {""}
    kept = [entry for entry in copy.opset_import if entry.domain in used]
    del copy.opset_import[:]
    copy.opset_import.extend(kept)
    return copy
