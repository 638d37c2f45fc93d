"""A sentence-transformers folder's own recipe: pooling, Dense, Normalize, prompts.

A folder written by sentence-transformers (``modules.json``) declares how its
model turns token states into a sentence vector: which pooling
(``1_Pooling/config.json``), then any ``Dense`` projections and a
``Normalize`` step, the longest input it was trained with
(``sentence_bert_config.json``: ``max_seq_length``, ``do_lower_case``) and
named prompts (``config_sentence_transformers.json``). :func:`read_recipe`
reads them into a :class:`SentenceRecipe` (validated, never executing
anything the folder names: activations come from a fixed list, Dense weights
only from safetensors), and finds the transformer itself, at the top of the
folder or in an older ``0_Transformer/`` subfolder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DenseLayer", "SentenceRecipe", "read_recipe", "transformer_folder"]

#: sentence-transformers' pooling modes -> skbert's pooling names.
_MODES = {
    "cls": "cls",
    "cls_token": "cls",
    "mean": "mean",
    "mean_tokens": "mean",
    "max": "max",
    "max_tokens": "max",
    "mean_sqrt_len_tokens": "mean_sqrt_len",
    "weightedmean": "weightedmean",
    "weightedmean_tokens": "weightedmean",
    "lasttoken": "lasttoken",
}
#: The order of the legacy ``pooling_mode_*`` flags (the order of concatenation).
_LEGACY_FLAGS = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
    ("pooling_mode_weightedmean_tokens", "weightedmean"),
    ("pooling_mode_lasttoken", "lasttoken"),
)
#: Dense activations skbert runs (by the class name sentence-transformers saves).
ACTIVATIONS = ("Identity", "Tanh", "ReLU", "GELU", "Sigmoid", "SiLU")
_MAX_PROMPT = 10_000


def _module_type(entry: dict[str, Any]) -> str:
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


@dataclass(frozen=True)
class DenseLayer:
    """One ``Dense`` module: ``activation(x @ weight.T + bias)``."""

    path: str
    in_features: int
    out_features: int
    bias: bool
    activation: str


@dataclass(frozen=True)
class SentenceRecipe:
    """What a sentence-transformers folder declares (everything optional)."""

    #: Pooling modes, concatenated in this order; empty without a Pooling module.
    pooling: tuple[str, ...] = ()
    include_prompt: bool = True
    dense: tuple[DenseLayer, ...] = ()
    normalize: bool = False
    max_seq_length: int | None = None
    do_lower_case: bool = False
    prompts: tuple[tuple[str, str], ...] = ()
    default_prompt_name: str | None = None
    #: Modules skbert cannot run (pooling="auto" is refused while any is listed).
    unsupported: tuple[str, ...] = field(default=())

    def prompt(self, name: str) -> str | None:
        return dict(self.prompts).get(name)

    def to_state(self) -> dict[str, Any]:
        return {
            "pooling": list(self.pooling),
            "include_prompt": self.include_prompt,
            "dense": [
                [d.path, d.in_features, d.out_features, d.bias, d.activation]
                for d in self.dense
            ],
            "normalize": self.normalize,
            "max_seq_length": self.max_seq_length,
            "do_lower_case": self.do_lower_case,
            "prompts": [list(pair) for pair in self.prompts],
            "default_prompt_name": self.default_prompt_name,
            "unsupported": list(self.unsupported),
        }

    @classmethod
    def from_state(cls, state: object) -> SentenceRecipe:
        """Rebuild from :meth:`to_state`, refusing anything else."""
        try:
            recipe = cls(
                pooling=tuple(_mode(m) for m in state["pooling"]),
                include_prompt=_flag(state["include_prompt"]),
                dense=tuple(_dense(*entry) for entry in state["dense"]),
                normalize=_flag(state["normalize"]),
                max_seq_length=_length(state["max_seq_length"]),
                do_lower_case=_flag(state["do_lower_case"]),
                prompts=tuple((_name(n), _prompt_text(t)) for n, t in state["prompts"]),
                default_prompt_name=None
                if state["default_prompt_name"] is None
                else _name(state["default_prompt_name"]),
                unsupported=tuple(_name(u) for u in state["unsupported"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"the sentence-transformers recipe is invalid ({exc})"
            ) from None
        if set(state) != set(recipe.to_state()):  # type: ignore[arg-type]
            raise ValueError("the sentence-transformers recipe has unknown fields")
        return recipe


def _flag(value: object) -> bool:
    if type(value) is not bool:
        raise ValueError(f"{value!r} is not a bool")
    return value


def _length(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 < value <= 10_000_000:
        raise ValueError(f"{value!r} is not a length")
    return value


def _name(value: object, *, allow_empty: bool = False) -> str:
    if (
        not isinstance(value, str)
        or len(value) > 200
        or (not value and not allow_empty)
        or any(bad in value for bad in ("\0", "..", "\\"))
        or value.startswith("/")
    ):
        raise ValueError(f"{value!r} is not a valid name")
    return value


def _prompt_text(value: object) -> str:
    if not isinstance(value, str) or len(value) > _MAX_PROMPT:
        raise ValueError("a prompt is not a string of reasonable length")
    return value


def _mode(value: object) -> str:
    if value not in _MODES.values():
        raise ValueError(f"{value!r} is not a pooling mode")
    return str(value)


def _dense(path, in_features, out_features, bias, activation) -> DenseLayer:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} is not one skbert runs")
    return DenseLayer(
        _name(path),
        _length(in_features),
        _length(out_features),
        _flag(bias),
        activation,
    )  # type: ignore[arg-type]


def _read_json(path: Path, description: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"The sentence-transformers file {path.name} of {description!r} could "
            f"not be read ({type(exc).__name__}: {exc})."
        ) from exc


def _pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    declared = config.get("pooling_mode")
    if isinstance(declared, str):
        declared = [declared]
    if isinstance(declared, list):
        modes = [_MODES.get(str(mode)) for mode in declared]
        if None in modes or not modes:
            raise ValueError(f"pooling modes {declared!r} are not ones skbert knows")
        return tuple(modes)  # type: ignore[arg-type]
    modes = tuple(mode for flag, mode in _LEGACY_FLAGS if config.get(flag) is True)
    return modes or ("mean",)


def _activation(config: dict[str, Any], description: str) -> str:
    name = config.get("activation_function", "torch.nn.modules.activation.Tanh")
    short = str(name).rsplit(".", 1)[-1] if name else "Identity"
    if not str(name).startswith("torch.") or short not in ACTIVATIONS:
        raise ValueError(
            f"The Dense module of {description!r} uses the activation {name!r}; "
            f"skbert runs only {', '.join(ACTIVATIONS)} from torch.nn (it never "
            "imports what a folder names). Use pooling='mean' or 'cls' to use the "
            "transformer alone."
        )
    return short


def transformer_folder(folder: Path) -> Path:
    """Where the transformer (config.json, weights, tokenizer) lies in ``folder``."""
    modules = folder / "modules.json"
    if (folder / "config.json").is_file() or not modules.is_file():
        return folder
    try:
        entries = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return folder
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and _module_type(entry) == "Transformer":
            path = _name(str(entry.get("path", "")), allow_empty=True)
            return folder / path
    return folder


def read_recipe(folder: Path, description: str) -> SentenceRecipe | None:
    """The recipe a sentence-transformers ``folder`` declares (``None`` if it is
    a bare transformers folder)."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    entries = _read_json(modules_file, description)
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"modules.json of {description!r} is not a list of modules.")
    parts: dict[str, Any] = {"dense": [], "unsupported": []}
    base = transformer_folder(folder)
    config_file = base / "sentence_bert_config.json"
    if not config_file.is_file():
        config_file = folder / "sentence_bert_config.json"
    settings = _read_json(config_file, description) if config_file.is_file() else {}
    for entry in sorted(entries, key=lambda e: int(e.get("idx", 0))):
        kind = _module_type(entry)
        path = _name(str(entry.get("path", "")), allow_empty=True)
        if kind == "Transformer":
            continue
        if kind == "Pooling":
            config = _read_json(folder / path / "config.json", description)
            parts["pooling"] = _pooling_modes(config)
            parts["include_prompt"] = bool(config.get("include_prompt", True))
        elif kind == "Dense":
            config = _read_json(folder / path / "config.json", description)
            parts["dense"].append(
                DenseLayer(
                    path=path,
                    in_features=int(config["in_features"]),
                    out_features=int(config["out_features"]),
                    bias=bool(config.get("bias", True)),
                    activation=_activation(config, description),
                )
            )
        elif kind == "Normalize":
            parts["normalize"] = True
        else:
            parts["unsupported"].append(kind or "unnamed")
    extra_file = folder / "config_sentence_transformers.json"
    extra = _read_json(extra_file, description) if extra_file.is_file() else {}
    prompts = extra.get("prompts") or {}
    if not isinstance(prompts, dict):
        prompts = {}
    default = extra.get("default_prompt_name")
    max_seq_length = settings.get("max_seq_length")
    return SentenceRecipe(
        pooling=parts.get("pooling", ()),
        include_prompt=parts.get("include_prompt", True),
        dense=tuple(parts["dense"]),
        normalize=parts.get("normalize", False),
        max_seq_length=max_seq_length if isinstance(max_seq_length, int) else None,
        do_lower_case=bool(settings.get("do_lower_case", False)),
        prompts=tuple(
            (str(name), str(text))
            for name, text in prompts.items()
            if isinstance(text, str)
        ),
        default_prompt_name=default if isinstance(default, str) else None,
        unsupported=tuple(parts["unsupported"]),
    )


def recipe_files(folder: Path, recipe: SentenceRecipe) -> dict[str, bytes]:
    """The sentence-transformers files of ``folder`` as a bundle holds them: the
    transformer at the top (``modules.json`` rewritten to say so), each module
    folder's config and Dense weights under ``<module>/<file>``."""
    files: dict[str, bytes] = {}
    entries = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    for entry in entries:
        if _module_type(entry) == "Transformer":
            entry["path"] = ""
    files["modules.json"] = json.dumps(entries, indent=2).encode()
    base = transformer_folder(folder)
    for name in ("sentence_bert_config.json", "config_sentence_transformers.json"):
        for where in (base, folder):
            if (where / name).is_file():
                files[name] = (where / name).read_bytes()
                break
    for entry in entries:
        path = str(entry.get("path", ""))
        if _module_type(entry) in ("Pooling", "Dense") and path:
            for name in ("config.json", "model.safetensors"):
                if (folder / path / name).is_file():
                    files[f"{path}/{name}"] = (folder / path / name).read_bytes()
    return files


def load_dense(folder: Path, recipe: SentenceRecipe, description: str) -> list[Any]:
    """The Dense layers' tensors (``linear.weight``, ``linear.bias``), from
    safetensors only: a pickled ``pytorch_model.bin`` is refused."""
    from safetensors.torch import load_file

    layers = []
    for dense in recipe.dense:
        weights = folder / dense.path / "model.safetensors"
        if not weights.is_file():
            raise ValueError(
                f"The Dense module {dense.path!r} of {description!r} has no "
                "model.safetensors (a pytorch_model.bin is a pickle, which skbert "
                "does not read). Convert it with safetensors, or use "
                "pooling='mean' to use the transformer alone."
            )
        tensors = load_file(weights)
        weight = tensors.get("linear.weight")
        if weight is None or tuple(weight.shape) != (
            dense.out_features,
            dense.in_features,
        ):
            raise ValueError(
                f"The Dense module {dense.path!r} of {description!r} has no "
                f"linear.weight of shape ({dense.out_features}, {dense.in_features})."
            )
        bias = tensors.get("linear.bias") if dense.bias else None
        layers.append((weight.float(), None if bias is None else bias.float()))
    return layers
