"""Describe a checkpoint: architecture, sizes, tokenizer, weights and pooler.

``skbert info MODEL`` loads MODEL the way :class:`~skbert.BertCLSVectorizer`
does (safetensors weights, no remote code unless allowed, the pooler checked)
and prints what a user needs before a search: the number of layers (the valid
``layers`` values), the vector size, the longest input, the tokenizer, the
weight files and their fingerprint, and whether the checkpoint carries trained
pooler weights, i.e. whether ``pooling="pooler"`` is allowed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .._core.options import BACKENDS
from .._encoding.models import running_model
from .._encoding.spec import auto_fallback, available_poolings, pooler_usable
from .._model.device import resolve_device, resolve_dtype
from .._model.families import onnx_refusal, pooler_reason
from .options import add_source_arguments

__all__ = ["add_arguments", "describe", "run"]

_WEIGHT_PATTERNS = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.*")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``skbert info`` options to ``parser``."""
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="a folder written by save_pretrained() or a Hugging Face Hub id",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the description as one JSON object instead of text",
    )
    add_source_arguments(parser)


def _weight_files(folder: Path) -> list[dict[str, Any]]:
    files = {path for pattern in _WEIGHT_PATTERNS for path in folder.glob(pattern)}
    return [
        {
            "name": path.name,
            "format": "safetensors" if ".safetensors" in path.name else "pickle",
            "bytes": path.stat().st_size,
        }
        for path in sorted(files)
        if path.is_file()
    ]


def describe(
    model: str,
    *,
    revision: str | None = None,
    local_files_only: bool = False,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """What ``skbert info`` reports about ``model``, as a dict.

    Parameters
    ----------
    model : str
        A folder written by ``save_pretrained()`` or a Hugging Face Hub id.
    revision, local_files_only, trust_remote_code
        As for :class:`~skbert.BertCLSVectorizer`.

    Returns
    -------
    info : dict
        JSON-serialisable description; ``info["has_pooler"]`` says whether
        ``pooling="pooler"`` is allowed.
    """
    from .._estimator.vectorizer import BertCLSVectorizer

    vectorizer = BertCLSVectorizer(
        model_name_or_path=model,
        device="cpu",
        revision=revision,
        local_files_only=local_files_only,
        trust_remote_code=trust_remote_code,
        cache=None,
    ).fit(["probe"])
    handle = vectorizer.model_
    device = resolve_device("cpu")
    loaded = running_model(handle, device, resolve_dtype("float32", device))
    config = loaded.model.config
    folder = handle.source.folder()
    n_layers = vectorizer.n_layers_ - 1
    return {
        "model": model,
        "folder": str(folder),
        "model_type": config.model_type,
        "architectures": list(getattr(config, "architectures", None) or []),
        "n_layers": n_layers,
        "hidden_size": vectorizer.hidden_size_,
        "attention_heads": getattr(config, "num_attention_heads", None),
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "max_length": handle.info.max_length,
        "model_max_length": handle.info.model_max_length,
        "max_position_embeddings": getattr(config, "max_position_embeddings", None),
        "tokenizer": type(loaded.tokenizer.backend).__name__,
        "vocab_size": len(loaded.tokenizer),
        "weight_files": _weight_files(folder),
        "fingerprint": vectorizer.fingerprint_,
        "family": handle.info.model_type,
        "model_class": handle.info.model_class,
        "has_pooler": pooler_usable(handle.info),
        "missing_pooler_keys": list(handle.info.missing_pooler_keys),
        "pooler": {
            "status": handle.info.pooler,
            "reason": pooler_reason(
                handle.info.model_type, handle.info.model_class, handle.info.pooler
            ),
        },
        "poolings": list(available_poolings(handle.info)),
        "recipe": _recipe(handle.info),
        "backends": ["torch"]
        if onnx_refusal(handle.info.model_type, handle.info.model_class)
        else list(BACKENDS),  # the others run the ONNX export
        "layers": f"0..{n_layers} or -{n_layers + 1}..-1 (0 = embeddings, "
        f"{n_layers} or -1 = last layer)",
    }


def _recipe(info: Any) -> dict[str, Any]:
    """What ``pooling="auto"`` does, and what a sentence-transformers folder
    declares."""
    recipe = info.sentence
    fallback = auto_fallback(info)
    if recipe is None or fallback is not None:
        return {"auto": f"{fallback} (a bare transformer declares no pooling)"}
    steps = ["+".join(recipe.pooling) + " pooling"]
    steps += [
        f"Dense {d.in_features}->{d.out_features} ({d.activation})"
        for d in recipe.dense
    ]
    if recipe.normalize:
        steps.append("Normalize")
    return {
        "auto": ", then ".join(steps),
        "pooling": list(recipe.pooling),
        "include_prompt": recipe.include_prompt,
        "dense": [
            {"in": d.in_features, "out": d.out_features, "activation": d.activation}
            for d in recipe.dense
        ],
        "normalize": recipe.normalize,
        "max_seq_length": recipe.max_seq_length,
        "do_lower_case": recipe.do_lower_case,
        "prompts": dict(recipe.prompts),
        "default_prompt_name": recipe.default_prompt_name,
        "unsupported": list(recipe.unsupported),
    }


def _size(n_bytes: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")


def format_text(info: dict[str, Any]) -> str:
    """The human-readable form of :func:`describe`'s result."""
    status, reason = info["pooler"]["status"], info["pooler"]["reason"]
    if status == "trained":
        pooler = f"yes: pooling='pooler' is available ({reason})"
    elif status == "untrained":
        pooler = (
            f"no, untrained ({reason}): pooling='pooler' is refused unless "
            "trust_pooler=True"
        )
    elif status == "missing":
        missing = ", ".join(info["missing_pooler_keys"])
        pooler = f"no, missing {missing} ({reason}): pooling='pooler' is refused"
    else:
        pooler = f"no ({reason}): pooling='pooler' is refused"
    recipe = info["recipe"]
    declared = [f"pooling='auto' = {recipe['auto']}"]
    if "prompts" in recipe:
        declared.append(f"max_seq_length {recipe['max_seq_length']}")
        if recipe["prompts"]:
            declared.append("prompts " + ", ".join(recipe["prompts"]))
    weights = "; ".join(
        f"{entry['name']} ({entry['format']}, {_size(entry['bytes'])})"
        for entry in info["weight_files"]
    )
    architecture = ", ".join(info["architectures"]) or "not recorded"
    rows = [
        ("model", info["model"]),
        ("folder", info["folder"]),
        ("architecture", f"{info['model_type']} ({architecture})"),
        ("family", f"{info['family']} (loaded as {info['model_class']})"),
        ("layers", f"{info['n_layers']} (valid layers: {info['layers']})"),
        ("hidden size", f"{info['hidden_size']} (length of each vector)"),
        ("attention heads", info["attention_heads"]),
        ("parameters", f"{info['parameters']:,}"),
        (
            "max length",
            f"{info['max_length']} tokens (model limit {info['model_max_length']})",
        ),
        ("tokenizer", f"{info['tokenizer']}, vocabulary of {info['vocab_size']:,}"),
        ("weights", weights or "none found"),
        ("fingerprint", info["fingerprint"]),
        ("trained pooler", pooler),
        ("poolings", ", ".join(info["poolings"])),
        ("recipe", "; ".join(declared)),
        ("backends", ", ".join(info["backends"])),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name + ':':<{width + 1}} {value}" for name, value in rows)


def run(args: argparse.Namespace) -> int:
    """Run ``skbert info`` with parsed ``args``; returns the exit code."""
    info = describe(
        args.model,
        revision=args.revision,
        local_files_only=args.local_files_only,
        trust_remote_code=args.trust_remote_code,
    )
    print(json.dumps(info, indent=2) if args.json else format_text(info))
    return 0
