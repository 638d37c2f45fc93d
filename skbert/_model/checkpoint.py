"""Read a checkpoint folder safely into a model ready to run.

Data flow: a folder (see :mod:`skbert._model.resolve`) -> the weight-format policy
(:func:`choose_weight_format`: safetensors, pickles only on request) -> the
tokenizer files checked -> config, tokenizer and weights read by transformers
with remote code off unless asked, its load report quieted for this thread
and turned into skbert's own decisions (a missing pooler is removed, any other
missing weight is an error) -> a :class:`LoadedModel` with the model's
:class:`~skbert._model.identity.ModelIdentity` computed once.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core import versions as _versions
from .._core.tokenize import TextTokenizer
from .families import encoder_class_name, model_kind, pooler_status, position_offset
from .identity import (
    ModelIdentity,
    ModelInfo,
    fingerprint_config,
    fingerprint_state_dict,
    fingerprint_tokenizer,
)
from .quiet import quiet
from .recipe import load_dense, read_recipe, recipe_files, transformer_folder

if TYPE_CHECKING:
    import torch

__all__ = [
    "ALLOW_PICKLE_WEIGHTS_ENV",
    "LoadedModel",
    "choose_weight_format",
    "load_folder",
    "pickle_weights_allowed",
]

#: Weight files transformers reads without unpickling, and the pickle-based ones.
_SAFE_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
#: Environment variable that lets skbert load pickle-based weight files.
ALLOW_PICKLE_WEIGHTS_ENV = "SKBERT_ALLOW_PICKLE_WEIGHTS"
#: Files of which a checkpoint's tokenizer needs at least one (or any
#: ``*.model`` SentencePiece file): without them transformers 5 builds a
#: 5-token vocabulary and every word becomes [UNK].
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")


@dataclass
class LoadedModel:
    """A model ready to run on one device, with what skbert knows about it."""

    model: Any
    tokenizer: TextTokenizer
    identity: ModelIdentity
    info: ModelInfo
    device: torch.device
    dtype: torch.dtype
    #: What runs the model: one of :data:`skbert._core.options.RUNNERS`.
    backend: str = "torch"
    #: float32 CPU copy of the weights, kept only when the running copy is in
    #: another dtype, so that a pickle always holds the weights as loaded.
    float32_state: dict[str, Any] | None = None
    #: A sentence-transformers folder's Dense layers (weight, bias) as float32.
    dense: list[tuple[Any, Any]] = field(default_factory=list)
    #: That folder's own files (modules.json, module configs, Dense weights),
    #: as a pickle's bundle carries them.
    recipe_files: dict[str, bytes] = field(default_factory=dict)
    #: The configuration and tokenizer files it was loaded from, read then, so
    #: that a pickle's bundle needs no folder (no temporary one either).
    definition_files: dict[str, bytes] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the weights (``identity.weights``)."""
        return self.identity.weights

    @property
    def compute(self) -> str:
        """How vectors are computed (part of every embedding-cache key): the
        backend, the precision and the versions of the libraries involved."""
        return _versions.compute_stamp(self.backend, str(self.dtype))


def pickle_weights_allowed() -> bool:
    """Whether ``SKBERT_ALLOW_PICKLE_WEIGHTS`` opts in to pickle-based weights."""
    value = os.environ.get(ALLOW_PICKLE_WEIGHTS_ENV, "")
    return value.strip().lower() in {"1", "true", "yes"}


def _read_config(folder: Path, description: str) -> dict[str, Any]:
    """``config.json`` as a dict, or a clear error if it is not a model config."""
    import json

    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        config, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = "it is not a JSON object with a 'model_type'"
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ValueError(
            f"The checkpoint {description!r} has no usable config.json ({why}). "
            f'It must be the file save_pretrained() writes, e.g. {{"model_type": '
            f'"bert", ...}}; copy or download the checkpoint again.'
        )
    return config


def _declared_weight_file(config: dict[str, Any]) -> str | None:
    """The weight file ``config.json`` names (``transformers_weights``), if any.

    transformers loads that file in preference to everything else, so the
    policy below must judge it rather than the files it happens to find.
    """
    name = config.get("transformers_weights")
    return name if isinstance(name, str) else None


def choose_weight_format(folder: Path, description: str) -> bool:
    """Decide which weight file is read: the ``use_safetensors`` to load with.

    safetensors files hold only tensor data, so reading one cannot run code;
    they are used whenever the checkpoint has them. ``pytorch_model.bin`` is a
    pickle: transformers (5.x) reads it with ``torch.load(weights_only=True)``,
    a restricted unpickler that refuses arbitrary objects but has had
    escapes (CVE-2025-32434, torch < 2.6). skbert therefore refuses a
    checkpoint whose only weights are pickle-based unless the environment
    variable ``SKBERT_ALLOW_PICKLE_WEIGHTS=1`` opts in.

    Parameters
    ----------
    folder : Path
        A checkpoint folder with a ``config.json``.
    description : str
        How to name the checkpoint in error messages.

    Returns
    -------
    use_safetensors : bool
        ``True`` to read safetensors only, ``False`` to read the (allowed)
        pickle-based weights.

    Raises
    ------
    ValueError
        If ``config.json`` is unusable, or the only weights are pickle-based
        and not allowed.
    FileNotFoundError
        If the folder has no weight file at all.
    """
    declared = _declared_weight_file(_read_config(folder, description))
    if declared is not None:
        if declared.endswith((".safetensors", ".safetensors.index.json")):
            return True
        pickles = [declared]
    elif any((folder / name).is_file() for name in _SAFE_WEIGHT_FILES):
        return True
    else:
        pickles = [name for name in _PICKLE_WEIGHT_FILES if (folder / name).is_file()]
    if pickles and pickle_weights_allowed():
        return False
    if pickles:
        source = folder / pickles[0]
        raise ValueError(
            f"Refusing to load the weights of {description!r}: they exist only as "
            f"{pickles[0]}, a pickle, and unpickling a file can run code hidden in "
            "it (transformers reads it with torch.load(weights_only=True), which "
            "narrows but has not always closed that hole). model.safetensors "
            "holds plain tensor data and cannot run code. Convert the checkpoint "
            "once, on a machine where you trust it:\n"
            "    import torch\n"
            "    from safetensors.torch import save_file\n"
            f"    state = torch.load({str(source)!r}, map_location='cpu', "
            "weights_only=True)\n"
            "    save_file({k: v.contiguous().clone() for k, v in state.items()}, "
            f"{str(folder / 'model.safetensors')!r}, metadata={{'format': 'pt'}})\n"
            f"or, if you trust its source, set the environment variable "
            f"{ALLOW_PICKLE_WEIGHTS_ENV}=1 to load it as it is."
        )
    raise FileNotFoundError(
        f"The checkpoint {description!r} has no weights: no model.safetensors in "
        f"{str(folder)!r}. A folder written by save_pretrained() has one. (A Hugging "
        "Face Hub model that ships only pickle-based pytorch_model.bin weights is "
        f"downloaded and loaded only with {ALLOW_PICKLE_WEIGHTS_ENV}=1.)"
    )


def _check_tokenizer_files(folder: Path, description: str) -> None:
    if any((folder / name).is_file() for name in _TOKENIZER_FILES):
        return
    if any(folder.glob("*.model")):
        return
    raise FileNotFoundError(
        f"The checkpoint {description!r} has no tokenizer files (tokenizer.json, "
        f"vocab.txt, ...) in {str(folder)!r}. Without them transformers builds an "
        "empty vocabulary and every word would become [UNK]. Save the tokenizer "
        "next to the weights: tokenizer.save_pretrained(folder)."
    )


def _damaged(what: str, description: str, exc: BaseException) -> ValueError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ValueError(
        f"The {what} of the checkpoint {description!r} could not be read "
        f"({type(exc).__name__}: {detail}). The files are damaged or were not "
        "written by save_pretrained(); copy or download the checkpoint again."
    )


def _remote_code_message(folder: Path, description: str) -> str:
    code = sorted(entry.name for entry in folder.glob("*.py"))
    what = ", ".join(code) if code else "classes named in its auto_map"
    return (
        f"The checkpoint {description!r} needs its own Python code to load "
        f"({what}). skbert never runs code shipped with a checkpoint unless you "
        "pass trust_remote_code=True; do that only if you trust its author and "
        "have read that code, or use a checkpoint of an architecture transformers "
        "knows (BERT, RoBERTa, ...)."
    )


def _model_max_length(tokenizer: Any, model: Any) -> int:
    """The longest input the model takes: the tokenizer's declared limit and
    the position table (less a RoBERTa-style offset), whichever is smaller."""
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        positions -= position_offset(model)
    limits = [
        value
        for value in (getattr(tokenizer, "model_max_length", None), positions)
        if isinstance(value, int) and 0 < value < 1_000_000
    ]
    if not limits:
        raise ValueError(
            "The checkpoint declares no maximum sequence length; set max_length."
        )
    return min(limits)


def _model_class(config: Any, description: str) -> Any:
    """The transformers class that gives this checkpoint's token states: the
    encoder itself, or the encoder of an encoder-decoder (T5 -> T5EncoderModel);
    a decoder-only model is refused."""
    import transformers

    kind = model_kind(config)
    if kind == "encoder":
        return transformers.AutoModel
    if kind == "encoder-decoder":
        name = encoder_class_name(config)
        if name is not None and hasattr(transformers, name):
            return getattr(transformers, name)
        raise ValueError(
            f"The checkpoint {description!r} is an encoder-decoder model "
            f"({config.model_type}) whose encoder transformers cannot load alone; "
            "skbert uses encoders only. Use an encoder checkpoint (BERT, RoBERTa, "
            "...) or a T5-style model (T5EncoderModel)."
        )
    raise ValueError(
        f"The checkpoint {description!r} is a decoder-only model "
        f"({config.model_type}): each token's state sees only the tokens before "
        "it, so its first token or the mean of its states do not describe the "
        "text, and skbert does not compute last-token vectors. Use an encoder "
        "checkpoint (BERT, RoBERTa, sentence-transformers models, ...)."
    )


def load_folder(
    folder: Path,
    *,
    device: torch.device,
    dtype: torch.dtype,
    trust_remote_code: bool = False,
    description: str | None = None,
) -> LoadedModel:
    """Load config, tokenizer and weights from ``folder`` onto ``device``.

    Loading never runs with a weight the checkpoint did not contain: a missing
    pooler is removed from the model (and recorded), any other missing or
    shape-mismatched weight is an error. Nor does it run code the checkpoint
    ships unless ``trust_remote_code``, or read pickle-based weights unless
    allowed (:func:`choose_weight_format`). A sentence-transformers folder's
    recipe (pooling, Dense, Normalize, limits, prompts) is read with it.
    """
    import torch
    from transformers import AutoConfig, AutoTokenizer

    folder = Path(folder)
    description = description or str(folder)
    recipe = read_recipe(folder, description)
    base = transformer_folder(folder)
    use_safetensors = choose_weight_format(base, description)
    _check_tokenizer_files(base, description)
    dense = load_dense(folder, recipe, description) if recipe else []
    part = "configuration"
    try:
        with quiet("transformers"):
            config = AutoConfig.from_pretrained(
                base, trust_remote_code=trust_remote_code
            )
            model_class = _model_class(config, description)
            part = "tokenizer"
            tokenizer = AutoTokenizer.from_pretrained(
                base, trust_remote_code=trust_remote_code
            )
            part = "weights"
            model, info = model_class.from_pretrained(
                base,
                output_loading_info=True,
                trust_remote_code=trust_remote_code,
                use_safetensors=use_safetensors,
                # reported in info["mismatched_keys"] and refused below, by name
                ignore_mismatched_sizes=True,
                dtype=torch.float32,
            )
    except ValueError as exc:
        if not trust_remote_code and "trust_remote_code" in str(exc):
            raise ValueError(_remote_code_message(base, description)) from exc
        if part == "configuration" and str(exc).startswith("The checkpoint"):
            raise
        raise _damaged(part, description, exc) from exc
    except (OSError, TypeError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise _damaged(part, description, exc) from exc
    except Exception as exc:
        # safetensors' and tokenizers' own errors, without importing them here
        if type(exc).__module__.split(".")[0] in {"safetensors", "tokenizers"}:
            raise _damaged(part, description, exc) from exc
        raise
    missing = sorted(info.get("missing_keys", ()))
    missing_pooler = tuple(key for key in missing if key.split(".")[0] == "pooler")
    others = [key for key in missing if key not in missing_pooler]
    if others or info.get("mismatched_keys"):
        bad = others + [str(key) for key in info.get("mismatched_keys", ())]
        raise ValueError(
            f"The checkpoint {description!r} lacks weights the model needs, or has "
            f"them with the wrong shape: {bad[:8]}{' ...' if len(bad) > 8 else ''}. "
            "skbert never fills missing weights with random values; check that the "
            "folder holds a complete encoder checkpoint."
        )
    if missing_pooler:
        model.pooler = None  # randomly initialized by transformers: never used
    vocab_size = getattr(model.config, "vocab_size", None)
    if isinstance(vocab_size, int) and len(tokenizer) > vocab_size:
        raise ValueError(
            f"The tokenizer of {description!r} has {len(tokenizer)} tokens but the "
            f"model has embeddings for only {vocab_size}: the tokenizer files do not "
            "belong to these weights. Save the tokenizer the model was trained with "
            "next to its weights."
        )
    model.eval()
    model.requires_grad_(False)
    state = model.state_dict()
    text_tokenizer = TextTokenizer(tokenizer)
    model_info = describe_model(
        model, tokenizer, missing_pooler, text_tokenizer, recipe, description
    )
    identity = ModelIdentity.of(
        weights=weights_fingerprint(state, dense),
        tokenizer=fingerprint_tokenizer(tokenizer),
        config=fingerprint_config(model.config),
        info=model_info,
    )
    float32_state = None
    if dtype != torch.float32:
        float32_state = {name: tensor.clone() for name, tensor in state.items()}
    model.to(device=device, dtype=dtype)
    return LoadedModel(
        model=model,
        tokenizer=text_tokenizer,
        identity=identity,
        info=model_info,
        device=device,
        dtype=dtype,
        float32_state=float32_state,
        dense=[(w.numpy(), None if b is None else b.numpy()) for w, b in dense],
        recipe_files=recipe_files(folder, recipe) if recipe else {},
        definition_files=definition_files(base, tokenizer),
    )


#: Files that configure a model and its tokenizer besides the tokenizer class's
#: own vocabulary files (as ``from_pretrained`` looks for them in a folder).
_DEFINITION_FILES = (
    "config.json",
    "tokenizer_config.json",
    "tokenizer.json",
    "special_tokens_map.json",
    "added_tokens.json",
)


def definition_files(folder: Path, tokenizer: Any) -> dict[str, bytes]:
    """The configuration and tokenizer files in ``folder`` that ``tokenizer``
    and the configuration were loaded from, by name."""
    names = {*_DEFINITION_FILES, *getattr(tokenizer, "vocab_files_names", {}).values()}
    return {
        name: (folder / name).read_bytes()
        for name in sorted(names)
        if isinstance(name, str) and (folder / name).is_file()
    }


def weights_fingerprint(state: dict[str, Any], dense: list[tuple[Any, Any]]) -> str:
    """SHA-256 of the transformer's weights and a folder's Dense layers."""
    import torch

    tensors = dict(state)
    for index, (weight, bias) in enumerate(dense):
        tensors[f"sentence_transformers.dense.{index}.weight"] = torch.as_tensor(weight)
        if bias is not None:
            tensors[f"sentence_transformers.dense.{index}.bias"] = torch.as_tensor(bias)
    return fingerprint_state_dict(tensors)


def describe_model(
    model: Any,
    tokenizer: Any,
    missing_pooler: tuple[str, ...],
    text_tokenizer: TextTokenizer,
    recipe: Any,
    description: str,
) -> ModelInfo:
    """What skbert needs to know about a loaded model, derived from it."""
    config = model.config
    hidden_size = int(config.hidden_size)
    if (
        recipe is not None
        and recipe.dense
        and recipe.dense[0].in_features
        != (len(recipe.pooling or ("cls",)) * hidden_size)
    ):
        raise ValueError(
            f"The first Dense module of {description!r} takes "
            f"{recipe.dense[0].in_features} inputs, but its pooling gives "
            f"{len(recipe.pooling or ('cls',)) * hidden_size}."
        )
    return ModelInfo(
        model_type=str(config.model_type),
        model_class=type(model).__name__,
        hidden_size=hidden_size,
        n_hidden_states=int(config.num_hidden_layers) + 1,
        model_max_length=_model_max_length(tokenizer, model),
        pooler=pooler_status(model, missing_pooler),
        missing_pooler_keys=missing_pooler,
        first_token_special=bool(text_tokenizer.prefix),
        sentence=recipe,
    )
