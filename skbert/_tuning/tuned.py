"""``fit(X, y)`` with ``fine_tune``: the base model's handle -> a tuned handle.

The tuned encoder is a model of its own: its identity is the base model's
with the tuned weights' fingerprint, so the embedding cache, the ONNX export
folder and pickles can never mix base and tuned vectors; its source is the
base model's with the tuning key added, so that a pickle cannot name the base
folder as if it held the model (``persist="reference"`` is refused). A run
whose tuning key was tuned before in this session is read back from
:mod:`skbert._tuning.memo` instead of tuned again.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from .._encoding.models import running_model
from .._model import registry as _registry
from .._model.checkpoint import weights_fingerprint
from .._model.handle import ModelHandle
from . import memo as _tune_memo

if TYPE_CHECKING:
    import torch

    from .._core.plan import EncodingSpec
    from .._model.checkpoint import LoadedModel
    from .loop import TuningPlan

__all__ = ["tuned_handle"]

#: Tuning key -> the tuned model's identity digest (for the registry) and the
#: run's report, for the runs of this process (the most recent only).
_TUNED: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
_TUNED_SIZE = 64


def _as_loaded(base: LoadedModel, model: Any) -> LoadedModel:
    """The trained ``model`` as a model of its own (new weights fingerprint)."""
    import torch

    fingerprint = weights_fingerprint(model.state_dict(), base.dense)
    return dataclasses.replace(
        base,
        model=model,
        identity=dataclasses.replace(base.identity, weights=fingerprint),
        dtype=torch.float32,
        backend="torch",
        float32_state=None,
    )


def tuned_handle(
    handle: ModelHandle,
    spec: EncodingSpec,
    texts: list[str],
    codes: np.ndarray,
    classes: np.ndarray,
    plan: TuningPlan,
    *,
    device: torch.device,
    show_progress_bar: bool | None,
) -> tuple[ModelHandle, dict[str, Any]]:
    """``handle``'s encoder tuned on ``texts`` and ``codes`` (or the same run
    read back from this session); the tuned handle and the run's report."""
    import torch

    from .loop import tune

    # every field of the spec but the inference-only batch size: a field added
    # later changes the key (a run tuned again) rather than being ignored
    encoding = dataclasses.asdict(spec)
    del encoding["batch_size"]
    settings = {"plan": plan.to_state(), "spec": encoding, "device": device.type}
    key = _tune_memo.tuning_key(handle.identity.digest, texts, codes, classes, settings)
    source = dataclasses.replace(handle.source, tuning=key)
    description = f"{handle.source.name} (fine-tuned)"
    known = _TUNED.get(key)
    if known is not None:
        loaded = _registry.lookup(known[0], device, torch.float32)
        if loaded is not None:
            return ModelHandle(source, loaded), known[1]
    with _tune_memo.claim(key) as entry:
        found = _tune_memo.read_entry(entry, device, description)
        if found is not None and not found[0].identity.differences(
            dataclasses.replace(handle.identity, weights=found[0].fingerprint)
        ):
            loaded, report = found
        else:
            base = running_model(handle, device, torch.float32)
            model, run = tune(
                base,
                spec,
                texts,
                codes,
                plan,
                max_batch_tokens=spec.max_batch_tokens,
                show_progress_bar=show_progress_bar,
                description=repr(handle.source.name),
            )
            loaded = _as_loaded(base, model)
            report = {"objective": plan.objective, **run.to_state()}
            if entry is not None:
                from .._model.handle import bundle_from

                record = {"weights": loaded.fingerprint, "report": report}
                _tune_memo.write_entry(entry, bundle_from(loaded), record)
    loaded = _registry.obtain(
        digest=loaded.identity.digest,
        folder=None,
        device=device,
        dtype=torch.float32,
        load=lambda: loaded,
    )
    _TUNED[key] = (loaded.identity.digest, report)
    _TUNED.move_to_end(key)
    while len(_TUNED) > _TUNED_SIZE:
        _TUNED.popitem(last=False)
    return ModelHandle(source, loaded), report
