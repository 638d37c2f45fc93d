"""What an artefact says about itself: the tokenizer definition and the manifest
the runtime reads and checks (:mod:`skbert._core.artefact` writes and signs it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core import versions as _versions
from .._core.artefact import EXPORT_PACKAGES
from .graph import VECTORS

if TYPE_CHECKING:
    from .._core.plan import EncodingSpec
    from .._model.checkpoint import LoadedModel

__all__ = ["manifest", "tokenizer_definition"]


def tokenizer_definition(loaded: LoadedModel) -> str:
    """The checkpoint's ``tokenizer.json``, without call-time settings."""
    import json

    backend = getattr(loaded.tokenizer.backend, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            "export_onnx needs a fast tokenizer (one with a tokenizer.json); "
            f"{type(loaded.tokenizer.backend).__name__} is not one."
        )
    definition = json.loads(backend.to_str())
    definition["truncation"] = None  # the runtime cuts texts itself
    definition["padding"] = None
    return json.dumps(definition, ensure_ascii=False)


def manifest(
    steps: list[tuple[str, Any]],
    loaded: LoadedModel,
    spec: EncodingSpec,
    head: Any,
    graph: Any,
    quantize: bool,
) -> dict[str, Any]:
    """What the runtime needs and checks (the fingerprints are added when the
    file is written)."""
    import dataclasses
    from importlib.metadata import PackageNotFoundError, version

    versions = _versions.installed_versions()
    for package in EXPORT_PACKAGES:
        if package in versions:
            continue
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    spec_state = dataclasses.asdict(spec)
    spec_state.update(layers=list(spec.layers), modes=list(spec.modes))
    return {
        "kind": head.kind if head else "transformer",
        "outputs": {
            **(head.outputs if head else {"transform": VECTORS}),
            "embed": VECTORS,
        },
        "classes": head.classes if head else None,
        "n_features_out": (head and head.n_features_out) or spec.output_size,
        "inputs": [item.name for item in graph.graph.input],
        "tokenizer": {
            "prefix": list(loaded.tokenizer.prefix),
            "suffix": list(loaded.tokenizer.suffix),
            "pad_id": int(loaded.tokenizer.pad_id),
        },
        "spec": spec_state,
        "model": {
            "name": steps[0][1].model_.source.name,
            "model_type": loaded.info.model_type,
            "identity": loaded.identity.digest,
        },
        "steps": [f"{name}: {type(step).__name__}" for name, step in steps],
        "quantized": quantize,
        "versions": versions,
    }
