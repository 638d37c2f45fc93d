"""The fitted model reference: what a pickle of the vectorizer carries.

A :class:`ModelHandle` knows where the model came from and its weights'
fingerprint, and holds the loaded model while the process runs. Pickled, it
never holds a torch object or a device tensor:

* ``persist="weights"`` (default): the checkpoint itself travels, as the bytes
  of a Hugging Face folder (config, tokenizer, ``model.safetensors``), so the
  pickle loads on another machine without network or the original folder.
* ``persist="reference"``: only the source (local folder or hub id and
  revision) and the fingerprint travel; the weights are read again on first
  use and refused unless their fingerprint matches.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._loading import (
    LoadedModel,
    fingerprint_state_dict,
    folder_key,
    get_or_load,
    load_folder,
    lookup_fingerprint,
    resolve_model_folder,
)

if TYPE_CHECKING:
    import torch

__all__ = ["FingerprintMismatchError", "ModelHandle", "ModelSource"]


#: The only files a bundle may hold: plain names of config, tokenizer and
#: safetensors files. No folders (a name is never a path), no code, no pickles.
_BUNDLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\.(json|txt|model|safetensors)")


def _check_bundle(bundle: object) -> None:
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
            "never writes (only config, tokenizer and model.safetensors files, by "
            "plain name). It was altered or not written by skbert."
        )


class FingerprintMismatchError(ValueError):
    """The weights found are not the weights the estimator was fitted with."""


@dataclass(frozen=True)
class ModelSource:
    """Where a checkpoint comes from (the loading parameters of the vectorizer)."""

    name: str
    revision: str | None = None
    local_files_only: bool = False
    trust_remote_code: bool = False

    def folder(self) -> Path:
        return resolve_model_folder(
            self.name, revision=self.revision, local_files_only=self.local_files_only
        )


class ModelHandle:
    """A loaded checkpoint plus what is needed to get it back after pickling."""

    def __init__(self, source: ModelSource, loaded: LoadedModel, persist: str) -> None:
        self.source = source
        self.persist = persist
        self.fingerprint = loaded.fingerprint
        self.tokenizer_fingerprint = loaded.tokenizer_fingerprint
        self.config_fingerprint = loaded.config_fingerprint
        self.has_pooler = loaded.has_pooler
        self.missing_pooler_keys = loaded.missing_pooler_keys
        self.hidden_size = loaded.hidden_size
        self.n_hidden_states = loaded.n_hidden_states
        self.model_max_length = loaded.model_max_length
        # every model this handle runs, by (device, dtype, backend); pickles
        # never hold them
        self._models: dict[tuple[str, str, str], LoadedModel] = {}
        self._remember(loaded)
        self._bundle: dict[str, bytes] | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        source: ModelSource,
        *,
        device: torch.device,
        dtype: torch.dtype,
        persist: str,
    ) -> ModelHandle:
        """Resolve ``source`` and load it (or reuse it from the registry)."""
        folder = source.folder()
        loaded = get_or_load(
            folder_key(folder, source.trust_remote_code),
            device,
            dtype,
            lambda: load_folder(
                folder,
                device=device,
                dtype=dtype,
                trust_remote_code=source.trust_remote_code,
                description=source.name,
            ),
        )
        return cls(source, loaded, persist)

    @property
    def _loaded(self) -> LoadedModel | None:
        """A torch model of this handle, if one is loaded (pickles read it)."""
        for loaded in self._models.values():
            if loaded.backend == "torch":
                return loaded
        return None

    def _remember(self, loaded: LoadedModel) -> LoadedModel:
        self._check_fingerprint(loaded)
        key = (str(loaded.device), str(loaded.dtype), loaded.backend)
        self._models[key] = loaded
        return loaded

    def get(
        self,
        device: torch.device,
        dtype: torch.dtype,
        backend: str = "torch",
        quantize: bool = False,
    ) -> LoadedModel:
        """The model on ``device`` in ``dtype`` (or its ONNX twin), loading it once."""
        import torch

        if getattr(self, "_damage", None):
            raise FingerprintMismatchError(self._damage)
        if backend == "onnx":
            backend = "onnx-int8" if quantize else "onnx"
            device, dtype = torch.device("cpu"), torch.float32
        with self._lock:
            loaded = self._models.get((str(device), str(dtype), backend))
            if loaded is not None:
                return loaded
            loaded = lookup_fingerprint(self.fingerprint, device, dtype, backend)
            if loaded is None:
                if backend == "torch":
                    loaded = self._load_again(device, dtype)
                else:
                    loaded = self._load_onnx(backend)
            self._remember(loaded)
            if self._loaded is not None:
                # A torch model re-creates the bundle when pickled. An ONNX
                # model cannot: until a torch model is held, the bundle stays.
                self._bundle = None
            return loaded

    def _load_onnx(self, backend: str) -> LoadedModel:
        import torch

        from ._onnx import load_onnx

        cpu, float32 = torch.device("cpu"), torch.float32
        base = self._models.get((str(cpu), str(float32), "torch"))
        if base is None:
            base = lookup_fingerprint(self.fingerprint, cpu, float32)
        if base is None:
            base = self._remember(self._load_again(cpu, float32))
        return get_or_load(
            ("fingerprint", self.fingerprint, backend),
            cpu,
            float32,
            lambda: load_onnx(base, quantize=backend == "onnx-int8"),
        )

    def _load_again(self, device: torch.device, dtype: torch.dtype) -> LoadedModel:
        bundle = self._bundle
        if bundle is None and self._loaded is not None:
            bundle = self._bundle_from(self._loaded)
        if bundle is None:  # reference-only: read the source again
            folder = self.source.folder()
            return get_or_load(
                folder_key(folder, self.source.trust_remote_code),
                device,
                dtype,
                lambda: load_folder(
                    folder,
                    device=device,
                    dtype=dtype,
                    trust_remote_code=self.source.trust_remote_code,
                    description=self.source.name,
                ),
            )
        _check_bundle(bundle)
        with tempfile.TemporaryDirectory(prefix="skbert-") as tmp:
            for name, data in bundle.items():
                Path(tmp, name).write_bytes(data)
            # Code never travels in a file: a model that needs its own code
            # is persisted with persist="reference".
            loaded = load_folder(
                Path(tmp),
                device=device,
                dtype=dtype,
                trust_remote_code=False,
                description=f"{self.source.name} (from pickle)",
            )
        # Registered under the fingerprint actually found, so that corrupted
        # weights can never be served under the expected fingerprint.
        self._check_fingerprint(loaded)
        return get_or_load(
            ("fingerprint", loaded.fingerprint, loaded.backend),
            device,
            dtype,
            lambda: loaded,
        )

    def _check_fingerprint(self, loaded: LoadedModel) -> None:
        found = loaded.fingerprint
        if found != self.fingerprint:
            where = (
                "the model stored in the pickle is corrupted"
                if self._bundle is not None
                else f"the weights of {self.source.name!r} changed since fit"
            )
            raise FingerprintMismatchError(
                f"Refusing to use these weights: {where}. Expected fingerprint "
                f"{self.fingerprint}, found {found}. Refit the vectorizer on the "
                "current weights, or restore the original checkpoint (for a hub "
                "model, pass the revision it was fitted with)."
            )
        for part, attribute, found in (
            ("tokenizer", "tokenizer_fingerprint", loaded.tokenizer_fingerprint),
            ("configuration", "config_fingerprint", loaded.config_fingerprint),
        ):
            expected = getattr(self, attribute, None)  # absent in older pickles
            if expected and found and expected != found:
                raise FingerprintMismatchError(
                    f"Refusing this model: the {part} of {self.source.name!r} "
                    f"changed since fit (expected {expected}, found {found}), so "
                    "the same weights would give other vectors. Refit the "
                    "vectorizer, or restore the original checkpoint."
                )

    @staticmethod
    def _bundle_from(loaded: LoadedModel) -> dict[str, bytes]:
        """The checkpoint as the files of a Hugging Face folder, in memory."""
        from safetensors.torch import save

        state = loaded.float32_state
        if state is None:
            state = loaded.model.state_dict()
        tensors = {
            name: tensor.detach().to("cpu").contiguous().clone()
            for name, tensor in state.items()
        }
        if fingerprint_state_dict(tensors) != loaded.fingerprint:
            raise RuntimeError(
                "The in-memory weights no longer match their fingerprint."
            )
        files = {"model.safetensors": save(tensors, metadata={"format": "pt"})}
        with tempfile.TemporaryDirectory(prefix="skbert-") as tmp:
            loaded.model.config.save_pretrained(tmp)
            loaded.tokenizer.save_pretrained(tmp)
            for entry in Path(tmp).iterdir():
                # config and tokenizer files; never code that a custom config
                # copies next to itself
                name = entry.name
                if entry.is_file() and name != "model.safetensors":
                    if _BUNDLE_NAME.fullmatch(name):
                        files[name] = entry.read_bytes()
        return files

    def __getstate__(self) -> dict[str, Any]:
        if getattr(self, "_damage", None):  # never launder damaged files
            raise FingerprintMismatchError(self._damage)
        state = {
            key: value
            for key, value in self.__dict__.items()
            if key not in {"_models", "_lock", "_bundle", "_damage"}
        }
        state["_bundle"] = None
        if self.persist == "weights":
            with self._lock:
                bundle = self._bundle
                if bundle is None and self._loaded is not None:
                    bundle = self._bundle_from(self._loaded)
            state["_bundle"] = bundle
            state["_bundle_digest"] = _digest(bundle)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._models = {}
        self._lock = threading.Lock()
        expected = self.__dict__.pop("_bundle_digest", None)
        self._damage = None
        if self.persist == "weights":
            if self._bundle:
                _check_bundle(self._bundle)  # before anything is written from it
            found = _digest(self._bundle)
            if not self._bundle or found != expected:
                # refused on first use, like weights that changed on disk
                self._damage = (
                    "The model files stored in this pickle are corrupted or "
                    f"missing: their SHA-256 is {found}, but {expected} was written "
                    "with them. The pickle was truncated or altered; re-create it "
                    "from the fitted estimator."
                )

    def __repr__(self) -> str:
        return f"ModelHandle({self.source.name!r}, {self.fingerprint[:19]}...)"


def _digest(bundle: dict[str, bytes] | None) -> str | None:
    """SHA-256 over the bundled files' names and contents."""
    if not bundle:
        return None
    hasher = hashlib.sha256()
    for name in sorted(bundle):
        hasher.update(name.encode() + b"\0" + len(bundle[name]).to_bytes(8, "little"))
        hasher.update(bundle[name])
    return hasher.hexdigest()
