"""A fitted vectorizer as the thing that runs: one object every front-end asks.

:func:`fitted_encoder` reads a fitted ``BertCLSVectorizer``'s parameters and
fitted model (public state only), checks that they still describe one model,
and gives a :class:`FittedEncoder`: the model handle, the spec every option
resolves to on the device that runs it (batch size, prompt tokens left out of
the pooling), the loaded models and the embedding store. ``transform``,
``skbert embed`` and the ONNX export all encode through it, so none of them
works out a limit, a width or a prompt skip for itself.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from numbers import Integral
from typing import TYPE_CHECKING, Any

import numpy as np

from .._core.options import TUNING_DEFAULTS
from .._core.report import EncodingReport
from .._encoding import encode as _encode
from .._encoding.models import compute_stamp, running_model
from .._encoding.spec import encoding_spec
from .._model.device import place_names, resolve_devices, resolve_dtype
from .._storage.cache import get_store
from .parameters import MODEL_PARAMETERS, TUNING_PARAMETERS

if TYPE_CHECKING:
    import torch

    from .._core.plan import EncodingSpec
    from .._core.report import EncodingReport
    from .._model.checkpoint import LoadedModel
    from .._model.handle import ModelHandle

__all__ = [
    "FittedEncoder",
    "check_model_parameters",
    "devices",
    "first_place",
    "fitted_encoder",
    "spec_for",
    "tuning_params",
    "with_prompt_skip",
]

#: What the exported graph computes, whatever runs the model in Python.
_EXPORT = {"backend": "torch", "quantize": False, "dtype": "float32", "device": "cpu"}


def devices(params: dict[str, Any]) -> list[torch.device]:
    """The torch devices the parameters run on: the CPU for ONNX Runtime and
    OpenVINO."""
    import torch

    if params["backend"] != "torch":  # device options are checked with the spec
        return [torch.device("cpu")]
    return resolve_devices(params["device"])


def first_place(params: dict[str, Any]) -> tuple[str, str]:
    """``str()`` of the first torch device of :func:`devices` and of the
    precision asked for there, without importing torch where that is the CPU
    for certain (:func:`~skbert._model.device.place_names`)."""
    device = params["device"] if params["backend"] == "torch" else "cpu"
    return place_names(device, params["dtype"])


def spec_for(params: dict[str, Any], handle: ModelHandle) -> EncodingSpec:
    """Check the parameters against the model; the spec the encoder runs."""
    return encoding_spec(
        params,
        handle.info,
        os.fspath(params["model_name_or_path"]),
        first_place(params)[0].partition(":")[0],
    )


def skips_prompt(spec: EncodingSpec, info: Any) -> bool:
    """Whether the model's recipe asks to leave ``spec``'s prompt out of the
    pooling (sentence-transformers' include_prompt=false, and a prompt)."""
    recipe = info.sentence
    return bool(
        spec.prompt and spec.pooling == "auto" and recipe and not recipe.include_prompt
    )


def with_prompt_skip(spec: EncodingSpec, loaded: Any) -> EncodingSpec:
    """``spec`` with the prompt's tokens left out of the pooling where the
    model's recipe asks for it (sentence-transformers' include_prompt)."""
    if skips_prompt(spec, loaded.info):
        skip = loaded.tokenizer.prompt_length(spec.prompt, spec.lowercase)
        if skip and spec.long_texts == "chunk":
            raise ValueError(
                "long_texts='chunk' cannot leave the prompt out of each "
                "window's pooling, as this model's recipe asks "
                "(include_prompt=false); use long_texts='truncate' or "
                "'head_tail'."
            )
        spec = dataclasses.replace(spec, skip=skip)
    return spec


def tuning_params(params: dict[str, Any]) -> dict[str, Any] | None:
    """The tuning parameters as set (``None`` without ``fine_tune``), as a
    fitted vectorizer records them."""

    if params["fine_tune"] is None:
        return None
    tuning = {name: params[name] for name in TUNING_PARAMETERS}
    seed = tuning["random_state"]
    if isinstance(seed, Integral):
        tuning["random_state"] = int(seed)
    elif seed is not None:  # its repr names its address: not kept across pickles
        tuning["random_state"] = type(seed).__name__
    return tuning


def check_model_parameters(vectorizer: Any) -> None:
    """Refuse to encode with a model other than the parameters now name."""

    params = vectorizer.get_params(deep=False)
    report = getattr(vectorizer, "fine_tune_report_", None)
    fitted = None if report is None else report.get("params")
    now = tuning_params(params)
    if fitted is not None:
        if not isinstance(fitted, dict):
            raise ValueError(
                "Refusing this estimator: its fine_tune_report_['params'] is not a "
                "dict of the tuning parameters it was fitted with; fit it again."
            )
        # tuning parameters added since that fit read as their defaults
        fitted = {**{k: v[0] for k, v in TUNING_DEFAULTS.items()}, **fitted}
    if now != fitted:
        changed = (
            [name for name in TUNING_PARAMETERS if now[name] != fitted[name]]
            if now and fitted
            else ["fine_tune"]
        )
        raise ValueError(
            f"{', '.join(changed)} changed after fit (the encoder was "
            + ("fine-tuned with other settings" if fitted else "not fine-tuned")
            + "); call fit again to tune it as the parameters now say."
        )
    source = vectorizer.model_.source
    loaded_with = {
        "model_name_or_path": source.name,
        "revision": source.revision,
        "local_files_only": source.local_files_only,
        "trust_remote_code": source.trust_remote_code,
    }
    for name in MODEL_PARAMETERS:
        value = params[name]
        if name == "model_name_or_path":
            value = os.fspath(value)
        if value != loaded_with[name]:
            raise ValueError(
                f"{name}={value!r} was set after fit (the fitted model was "
                f"loaded with {name}={loaded_with[name]!r}); call fit again to load "
                "the model it names."
            )


class FittedEncoder:
    """What a fitted vectorizer runs (made by :func:`fitted_encoder`)."""

    def __init__(self, handle: ModelHandle, params: dict[str, Any]) -> None:
        self.handle = handle
        self.params = params
        #: The spec before the models are loaded (no prompt skip yet): enough
        #: for the output width and the length limit.
        self.declared_spec = spec_for(params, handle)

    @property
    def output_size(self) -> int:
        """Length of each output vector (a Dense layer included)."""
        return self.declared_spec.output_size

    @property
    def max_length(self) -> int:
        """The token limit texts are cut at."""
        return self.declared_spec.max_length

    @functools.cached_property
    def _places(self) -> list[tuple[torch.device, torch.dtype]]:
        """The device to run on, and the precision there, for each model."""
        params = self.params
        return [
            (device, resolve_dtype(params["dtype"], device))
            for device in devices(params)
        ]

    @functools.cached_property
    def models(self) -> list[LoadedModel]:
        """The checkpoint loaded on every device to run on."""
        params = self.params
        return [
            running_model(
                self.handle, device, dtype, params["backend"], params["quantize"]
            )
            for device, dtype in self._places
        ]

    @functools.cached_property
    def spec(self) -> EncodingSpec:
        """The spec the encoder runs, the prompt skip included (the models are
        loaded only where the model's recipe leaves the prompt out)."""
        if not skips_prompt(self.declared_spec, self.handle.info):
            return self.declared_spec
        return with_prompt_skip(self.declared_spec, self.models[0])

    def _lazy_models(self) -> _encode.LazyModels:
        """:attr:`models`; for a handle made from a session's note (which
        was checked against the folder's stamp when it was fitted), loaded
        only for a text the cache does not hold. Any other handle is checked
        against its source before the cache is read, as it always was."""
        if not self.handle.deferred:
            return _encode.LazyModels.of(self.models)
        device, dtype = first_place(self.params)
        params = self.params
        return _encode.LazyModels(
            lambda: self.models,
            self.handle.identity.digest,
            compute_stamp(device, dtype, params["backend"], params["quantize"]),
            self.handle.info,
        )

    def encode(
        self, texts: list[str], progress: Any = None
    ) -> tuple[np.ndarray, EncodingReport]:
        """The vectors of ``texts`` (validated) and the call's
        :class:`~skbert._core.report.EncodingReport`, nothing warned; ``progress``,
        a caller's open progress bar, is advanced per batch."""
        if not texts:
            empty = np.empty((0, self.output_size), dtype=np.float32)
            return empty, EncodingReport(max_length=self.max_length)
        show = self.params["show_progress_bar"] if progress is None else progress
        return _encode.encode(
            texts,
            self._lazy_models(),
            self.spec,
            show_progress_bar=show,
            store=get_store(self.params["cache"]),
        )


def fitted_encoder(vectorizer: Any, *, export: bool = False) -> FittedEncoder:
    """The encoder a fitted vectorizer runs, its parameters checked against
    its fitted model; ``export``: the float32 CPU torch computation that the
    ONNX export traces, whatever runs the model in Python."""
    check_model_parameters(vectorizer)
    params = vectorizer.get_params(deep=False)
    if export:
        params = {**params, **_EXPORT}
    return FittedEncoder(vectorizer.model_, params)
