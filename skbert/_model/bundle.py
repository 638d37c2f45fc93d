"""A checkpoint as the files of a Hugging Face folder, in memory: what a pickle
with ``persist="weights"`` carries, and the checks on what a file says it is."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

from .checkpoint import weights_fingerprint

if TYPE_CHECKING:
    from .checkpoint import LoadedModel

__all__ = ["bundle_digest", "bundle_from", "check_bundle"]

#: The only files a bundle may hold: plain names of config, tokenizer and
#: safetensors files, at the top or in one sentence-transformers module folder
#: (``2_Dense/model.safetensors``). No other path, no code, no pickles.
_BUNDLE_NAME = re.compile(
    r"(?:[0-9]+_[A-Za-z][A-Za-z0-9_]*/)?"
    r"[A-Za-z0-9][A-Za-z0-9_.-]*\.(json|txt|model|safetensors)"
)


def check_bundle(bundle: object) -> None:
    """Refuse model files that skbert never writes (a crafted pickle or skops file)."""
    if not isinstance(bundle, dict):
        raise ValueError("This file's model files are not a mapping of names to bytes.")
    bad = [
        name
        for name, data in bundle.items()
        if not (isinstance(name, str) and _BUNDLE_NAME.fullmatch(name))
        or not isinstance(data, bytes)
    ]
    if bad:
        raise ValueError(
            f"Refusing this file: its model files include {bad[:3]!r}, which skbert "
            "never writes (only config, tokenizer and safetensors files, by plain "
            "name or in a sentence-transformers module folder). It was altered "
            "or not written by skbert."
        )


def bundle_from(loaded: LoadedModel) -> dict[str, bytes]:
    """The checkpoint as the files of a Hugging Face folder, in memory."""
    from safetensors.torch import save

    state = loaded.float32_state
    if state is None:
        state = loaded.model.state_dict()
    tensors = {
        name: tensor.detach().to("cpu").contiguous().clone()
        for name, tensor in state.items()
    }
    if weights_fingerprint(tensors, loaded.dense) != loaded.identity.weights:
        raise RuntimeError("The in-memory weights no longer match their fingerprint.")
    files = {"model.safetensors": save(tensors, metadata={"format": "pt"})}
    files.update(loaded.recipe_files)
    # the configuration and tokenizer files as loaded (read then: no folder is
    # written here); never code that a custom configuration names
    files.update(
        (name, data)
        for name, data in loaded.definition_files.items()
        if _BUNDLE_NAME.fullmatch(name) and name != "model.safetensors"
    )
    return files


def bundle_digest(bundle: dict[str, bytes] | None) -> str | None:
    """SHA-256 over the bundled files' names and contents."""
    if not bundle:
        return None
    hasher = hashlib.sha256()
    for name in sorted(bundle):
        hasher.update(name.encode() + b"\0" + len(bundle[name]).to_bytes(8, "little"))
        hasher.update(bundle[name])
    return hasher.hexdigest()
