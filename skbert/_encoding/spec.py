"""Parameters + the model's description -> what the encoder runs, or a clear error.

Every option of :class:`~skbert.BertCLSVectorizer` that depends on the model
is checked here, once, against what was derived from the checkpoint
(:class:`~skbert._model.identity.ModelInfo`): layer indices, the pooler's status,
the length limit, the backend's limits, and a sentence-transformers folder's
recipe behind ``pooling="auto"`` and ``prompt_name``. The result is one
:class:`~skbert._core.plan.EncodingSpec`.
"""

from __future__ import annotations

import dataclasses
from numbers import Integral
from typing import Any

from .._core.options import POOLINGS, batch_size_for
from .._core.plan import EncodingSpec
from .._model.families import onnx_refusal, pooler_reason
from .._model.identity import ModelInfo

__all__ = [
    "auto_fallback",
    "available_poolings",
    "encoding_spec",
    "pooler_usable",
    "tuning_spec",
]


def auto_fallback(info: ModelInfo) -> str | None:
    """The pooling ``"auto"`` falls back to for a bare transformer (else None)."""
    recipe = info.sentence
    if recipe is not None and recipe.pooling:
        return None
    return "cls" if info.first_token_special else "mean"


def pooler_usable(info: ModelInfo, *, trust_pooler: bool = False) -> bool:
    """Whether ``pooling="pooler"`` may use this model's pooler: a trained one,
    or an untrained one the user vouches for with ``trust_pooler=True``."""
    return info.pooler == "trained" or (info.pooler == "untrained" and trust_pooler)


def available_poolings(info: ModelInfo) -> tuple[str, ...]:
    """The poolings that work on this model with the other parameters' defaults
    (what ``skbert info`` lists and ``skbert demo`` searches over)."""

    def available(pooling: str) -> bool:
        if pooling == "pooler":
            return pooler_usable(info)
        if pooling == "cls":
            return info.first_token_special
        return True

    return tuple(pooling for pooling in POOLINGS if available(pooling))


def _layers(value: Any, n_states: int) -> tuple[int, ...]:
    layers = (value,) if isinstance(value, Integral) else tuple(value)
    if not layers or not all(
        isinstance(layer, Integral) and not isinstance(layer, bool) for layer in layers
    ):
        raise ValueError(
            f"layers must be an int or a non-empty tuple of ints; got {value!r}."
        )
    bad = [layer for layer in layers if not -n_states <= layer < n_states]
    if bad:
        raise ValueError(
            f"layers={value!r}: index {bad[0]} is out of range; this model has "
            f"{n_states} hidden states (0 = embeddings, {n_states - 1} or -1 = last "
            "layer)."
        )
    return tuple(int(layer) % n_states for layer in layers)


def _check_pooler(params: dict[str, Any], info: ModelInfo, name: str) -> None:
    if pooler_usable(info, trust_pooler=params["trust_pooler"]):
        return
    why = pooler_reason(info.model_type, info.model_class, info.pooler)
    if info.pooler == "missing":
        why += f" (missing: {list(info.missing_pooler_keys)})"
    unlock = (
        " If this checkpoint was fine-tuned through its pooler, pass "
        "trust_pooler=True to use it."
        if info.pooler == "untrained"
        else ""
    )
    raise ValueError(
        f"pooling='pooler' is not available for {name!r}: {why}.{unlock} Use "
        "pooling='cls' (the first token's state), pooling='mean' (masked mean of the "
        "token states) or pooling='auto' (the checkpoint's own recipe) instead."
    )


def _prompt(params: dict[str, Any], info: ModelInfo, name: str) -> str:
    recipe = info.sentence
    prompt, prompt_name = params["prompt"], params["prompt_name"]
    if prompt is not None and prompt_name is not None:
        raise ValueError(
            "Pass prompt (the text itself) or prompt_name (a prompt the model "
            f"declares), not both; got prompt={prompt!r}, prompt_name={prompt_name!r}."
        )
    if prompt_name is None and prompt is None and params["pooling"] == "auto":
        if recipe is not None and recipe.default_prompt_name is not None:
            prompt_name = recipe.default_prompt_name
    if prompt_name is None:
        return prompt or ""
    found = recipe.prompt(prompt_name) if recipe is not None else None
    if found is None:
        known = [pair[0] for pair in recipe.prompts] if recipe else []
        raise ValueError(
            f"prompt_name={prompt_name!r}: {name!r} declares "
            + (f"the prompts {known}" if known else "no prompts")
            + " (in config_sentence_transformers.json). Pass one of them, or the "
            "text itself as prompt=."
        )
    return found


def _check_backend(
    params: dict[str, Any], layers: tuple[int, ...], info: ModelInfo
) -> None:
    if params["quantize"] and params["backend"] == "torch":
        raise ValueError(
            "quantize=True needs backend='onnx' (int8 weights on ONNX Runtime) "
            "or backend='openvino' (calibrated int8 on OpenVINO); set one of "
            "them, or quantize=False."
        )
    backend = params["backend"]
    if backend == "torch":
        return
    refusal = onnx_refusal(info.model_type, info.model_class)
    if refusal is not None:
        raise ValueError(refusal)
    if layers != (info.n_hidden_states - 1,):
        raise ValueError(
            f"backend={backend!r} computes the last layer only; got layers="
            f"{params['layers']!r}. Use layers=-1, or backend='torch' for other "
            "layers."
        )
    if backend == "onnx" and params["dtype"] not in ("float32", "auto"):
        raise ValueError(
            f"backend='onnx' runs in float32 (or int8 with quantize=True); got "
            f"dtype={params['dtype']!r}. Use dtype='float32', or backend='torch' "
            "for float16/bfloat16."
        )
    if backend == "openvino" and params["dtype"] == "float16":
        raise ValueError(
            "backend='openvino' runs in float32 or bfloat16 on the CPU; got "
            "dtype='float16'. Use dtype='float32', 'bfloat16' or 'auto', or "
            "backend='torch' on a GPU."
        )
    if params["device"] not in ("auto", "cpu"):
        raise ValueError(
            f"backend={backend!r} runs on the CPU; got device={params['device']!r}. "
            "Use device='cpu' (or 'auto'), or backend='torch' on a GPU."
        )


def tuning_spec(
    spec: EncodingSpec, tune_max_length: int | None, suffix: int
) -> EncodingSpec:
    """How fine-tuning reads the texts: as ``spec`` (transform's) says, or,
    with ``tune_max_length``, one input of at most that many tokens per text
    (the first tokens where ``spec`` truncates, else the head and tail; a
    ``head_tokens`` set for ``"head_tail"`` shrinks in proportion, so that the
    tail stays). ``suffix``: the special tokens the tokenizer puts after a
    text.

    The options tuning then does not read (the windows' stride and
    combination) take their defaults, so that the tuning inputs, and the memo
    of tuned encoders, do not depend on how ``transform`` reads long texts: a
    search over ``long_texts`` or ``max_length`` tunes once per fold.

    Raises
    ------
    ValueError
        When ``tune_max_length`` exceeds the ``max_length`` transform reads,
        or leaves no room for the text after a prompt left out of the pooling.
    """
    if tune_max_length is None:
        return spec
    if tune_max_length > spec.max_length:
        raise ValueError(
            f"tune_max_length={tune_max_length} exceeds max_length="
            f"{spec.max_length} (the tokens transform reads of each input): tuning "
            "would read more of each text than transform does. Use tune_max_length "
            f"<= {spec.max_length}, or None to tune on the texts as transform reads "
            "them."
        )
    if spec.skip and tune_max_length <= spec.skip + suffix:
        raise ValueError(
            f"tune_max_length={tune_max_length} leaves no room for the text: the "
            f"prompt left out of the pooling and the special tokens take "
            f"{spec.skip + suffix}; use a larger tune_max_length."
        )
    head = None
    if spec.long_texts == "head_tail" and spec.head_tokens is not None:
        head = spec.head_tokens * tune_max_length // spec.max_length
    truncate = spec.long_texts == "truncate"
    return dataclasses.replace(
        spec,
        max_length=tune_max_length,
        long_texts="truncate" if truncate else "head_tail",
        head_tokens=head,
        stride=0,
        chunk_combine="mean",
    )


def encoding_spec(
    params: dict[str, Any], info: ModelInfo, name: str, device_type: str = "cpu"
) -> EncodingSpec:
    """Check ``params`` (the estimator's) against the model; what to run on a
    device of ``device_type`` (which decides ``batch_size="auto"``).

    Raises
    ------
    ValueError
        Naming the parameter and what to use instead.
    """
    last = info.n_hidden_states - 1
    layers = _layers(params["layers"], info.n_hidden_states)
    pooling, recipe = params["pooling"], info.sentence
    modes, dense, normalize = (pooling,), False, bool(params["normalize"])
    if pooling == "auto":
        fallback = auto_fallback(info)
        if fallback is not None:
            modes = (fallback,)
        else:
            if recipe.unsupported:
                raise ValueError(
                    f"pooling='auto': {name!r} declares sentence-transformers modules "
                    f"skbert does not run ({', '.join(recipe.unsupported)}). Use "
                    "pooling='mean' or 'cls' to use the transformer alone."
                )
            modes, dense = recipe.pooling, bool(recipe.dense)
            normalize = normalize or recipe.normalize
    if pooling == "cls" and not info.first_token_special:
        raise ValueError(
            f"pooling='cls' reads the first token's state, but {name!r} "
            f"({info.model_class}) puts no special token before the text, so that "
            "is the state of its first word. Use pooling='mean' (or 'auto')."
        )
    if pooling == "pooler":
        _check_pooler(params, info, name)
        if layers != (last,):
            raise ValueError(
                "pooling='pooler' reads the model's pooler, which only exists for "
                f"the last layer; got layers={params['layers']!r}. Use layers=-1, or "
                "pooling='cls' or 'mean' to pool other layers."
            )
    max_length, limit = params["max_length"], info.model_max_length
    if max_length is None:
        max_length = info.max_length
    elif max_length > limit:
        raise ValueError(
            f"max_length={max_length} exceeds this model's limit of {limit} tokens; "
            f"use max_length=None or a value <= {limit}."
        )
    _check_backend(params, layers, info)
    if params["long_texts"] == "chunk" and params["stride"] >= max_length // 2:
        raise ValueError(
            f"stride={params['stride']}: consecutive windows may share fewer than "
            f"half of max_length={max_length} tokens; use a smaller stride."
        )
    size = recipe.dense[-1].out_features if dense else len(modes) * info.hidden_size
    return EncodingSpec(
        pooling=pooling,
        layers=layers,
        normalize=normalize,
        max_length=int(max_length),
        batch_size=batch_size_for(params["batch_size"], device_type),
        max_batch_tokens=params["max_batch_tokens"],
        modes=modes,
        prompt=_prompt(params, info, name),
        lowercase=bool(recipe and recipe.do_lower_case),
        dense=dense,
        output_size=size,
        long_texts=params["long_texts"],
        head_tokens=params["head_tokens"],
        stride=params["stride"],
        chunk_combine=params["chunk_combine"],
    )
