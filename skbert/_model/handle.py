"""Persistence: what a pickle (or skops file) of a fitted vectorizer holds, and
how it is checked when it is read back.

A :class:`ModelHandle` names a checkpoint (:class:`ModelSource`), carries its
:class:`~skbert._model.identity.ModelIdentity` and, in this process, the models
that run it. Pickled, it never holds a torch object:

* ``persist="weights"`` (default): the checkpoint itself travels, as the
  bytes of a Hugging Face folder (config, tokenizer, ``model.safetensors``),
  so the pickle loads on another machine without network or the folder.
* ``persist="reference"``: only the source (an absolute local folder, or a
  hub id and revision) travels; the weights are read again on first use.

State read from a file is input, not truth (skops builds these objects with
``__new__`` and ``__setstate__``, so every field can be anything a file
says): each field is validated, a SHA-256 over the state and another over
the bundled files refuse damage, file names can never leave the temporary
folder they are written to, and nothing read from a file can turn on
``trust_remote_code``: a handle read from a file always loads with remote
code off. Whatever is loaded is compared with the stored identity before it
is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core.options import PERSIST_OPTIONS
from .._core.public import public
from .identity import ModelIdentity, ModelInfo, canonical_digest

if TYPE_CHECKING:
    from .checkpoint import LoadedModel

__all__ = ["FingerprintMismatchError", "ModelHandle", "ModelSource"]

#: The only files a bundle may hold: plain names of config, tokenizer and
#: safetensors files, at the top or in one sentence-transformers module folder
#: (``2_Dense/model.safetensors``). No other path, no code, no pickles.
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_BUNDLE_NAME = re.compile(
    r"(?:[0-9]+_[A-Za-z][A-Za-z0-9_]*/)?"
    r"[A-Za-z0-9][A-Za-z0-9_.-]*\.(json|txt|model|safetensors)"
)
#: Longest name or revision a file may give (hub ids are far shorter).
_MAX_NAME = 4096
#: Version of the state :meth:`ModelHandle.__getstate__` writes.
_STATE_FORMAT = 2
#: The recipe of a handle read from a skbert 0.1.0 pickle, until its model is
#: loaded (those pickles recorded no recipe).
UNKNOWN_RECIPE = "sha256:" + "0" * 64


class FingerprintMismatchError(ValueError):
    """The model found is not the model the estimator was fitted with."""


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
            "never writes (only config, tokenizer and safetensors files, by plain "
            "name or in a sentence-transformers module folder). It was altered "
            "or not written by skbert."
        )


def _text(value: object, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_NAME or "\0" in value:
        raise ValueError(f"Refusing this file: its model {what} is not a valid name.")
    return value


@public
@dataclass(frozen=True)
class ModelSource:
    """Where a checkpoint comes from (the loading parameters of the vectorizer)."""

    #: ``model_name_or_path`` as given to the vectorizer.
    name: str
    revision: str | None = None
    local_files_only: bool = False
    #: As given at fit. A source read from a file never enables remote code.
    trust_remote_code: bool = False
    #: The absolute folder of a local checkpoint (``None`` for a hub id), so
    #: that a relative ``name`` is found again from another directory.
    location: str | None = None
    #: For an encoder fine-tuned by ``fit`` (``fine_tune``): the tuning key
    #: (:func:`skbert._tuning.memo.tuning_key`). Its weights are not in the
    #: folder ``name`` points to, only in the estimator (and its pickles).
    tuning: str | None = None

    def folder(self) -> Path:
        """The local folder holding the checkpoint (downloaded if a hub id)."""
        from .resolve import resolve_model_folder

        if self.tuning is not None:
            raise FileNotFoundError(
                f"The encoder was fine-tuned from {self.name!r} when the estimator "
                "was fitted; its weights exist only in the fitted estimator and in "
                "pickles written with persist='weights'. Refit, or load such a "
                "pickle."
            )
        if self.location is not None:
            if not Path(self.location).is_dir():
                raise FileNotFoundError(
                    f"The model folder {self.location!r} (model_name_or_path="
                    f"{self.name!r} when the estimator was fitted) does not exist "
                    "on this machine. Copy the checkpoint there, or refit; pickles "
                    "written with persist='weights' carry the model with them."
                )
            return resolve_model_folder(self.location)
        return resolve_model_folder(
            self.name, revision=self.revision, local_files_only=self.local_files_only
        )

    def __getstate__(self) -> dict[str, Any]:
        # without a tuning key, the state skbert 0.2 writes (and reads)
        return _source_state(self)

    def __setstate__(self, state: object) -> None:
        names = {f.name for f in fields(self)}
        if not isinstance(state, dict) or not {"name"} <= set(state) <= names:
            raise ValueError("Refusing this file: its model source is not valid.")
        checked = {
            "name": _text(state["name"], "name"),
            "revision": _text(state.get("revision"), "revision", optional=True),
            "location": _text(state.get("location"), "folder", optional=True),
            "tuning": _text(state.get("tuning"), "tuning key", optional=True),
        }
        for flag in ("local_files_only", "trust_remote_code"):
            if type(state.get(flag, False)) is not bool:
                raise ValueError(f"Refusing this file: its model {flag} is not a bool.")
            checked[flag] = state.get(flag, False)
        location = checked["location"]
        if location is not None and not Path(location).is_absolute():
            raise ValueError("Refusing this file: its model folder is not absolute.")
        tuning = checked["tuning"]
        if tuning is not None and not _SHA256.fullmatch(tuning):
            raise ValueError("Refusing this file: its model tuning key is not valid.")
        for name, value in checked.items():
            object.__setattr__(self, name, value)


@public
class ModelHandle:
    """A checkpoint's identity and source, and the models running it here.

    Parameters
    ----------
    source : ModelSource
        Where the checkpoint came from.
    loaded : LoadedModel
        The model as loaded by ``fit``.
    persist : {"weights", "reference"}
        What a pickle of this handle holds (the vectorizer sets it from its
        ``persist`` parameter when it is pickled).
    code_allowed : bool
        Whether loading the source again may run the checkpoint's own code
        (only for a handle made by ``fit`` with ``trust_remote_code=True``).
    """

    def __init__(
        self,
        source: ModelSource,
        loaded: LoadedModel,
        persist: str = "weights",
        *,
        code_allowed: bool = False,
    ) -> None:
        self.source = source
        self.identity = loaded.identity
        self.info = loaded.info
        self.persist = persist
        self._code_allowed = code_allowed
        self._legacy = False
        self._bundle: dict[str, bytes] | None = None
        self._damage: str | None = None
        self._lock = threading.Lock()
        #: Every model this handle runs, by (device, dtype, backend).
        self.models: dict[tuple[str, str, str], LoadedModel] = {}
        self.remember(loaded)

    # -- what the vectorizer reads ---------------------------------------
    @property
    def fingerprint(self) -> str:
        """SHA-256 of the weights."""
        return self.identity.weights

    @property
    def damage(self) -> str | None:
        """Why this handle, read from a file, must not be used (else ``None``)."""
        return self._damage

    def digest_for_estimator(self) -> str:
        """SHA-256 of what this handle says about its model (not the model
        files, which carry their own), for the estimator's state digest."""
        return canonical_digest(
            {
                "source": _source_state(self.source),
                "identity": self.identity.to_state(),
                "info": self.info.to_state(),
                "persist": self.persist,
            }
        )

    def with_persist(self, persist: str) -> ModelHandle:
        """This handle, pickled as ``persist`` says (the same object if equal)."""
        if persist == self.persist:
            return self
        twin = object.__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.persist = persist
        return twin

    # -- the models running it -------------------------------------------
    @property
    def torch_model(self) -> LoadedModel | None:
        """A torch model of this handle, if one is loaded (pickles read it)."""
        for loaded in list(self.models.values()):
            if loaded.backend == "torch":
                return loaded
        return None

    def remember(self, loaded: LoadedModel) -> LoadedModel:
        """Keep ``loaded`` as this handle's model on its device (checked first)."""
        self.check(loaded)
        self.models[(str(loaded.device), str(loaded.dtype), loaded.backend)] = loaded
        if loaded.backend == "torch":
            # A torch model re-creates the bundle when pickled; until one is
            # held (an ONNX model cannot), the bundle bytes stay.
            with self._lock:
                self._bundle = None
        return loaded

    def check(self, loaded: LoadedModel) -> None:
        """Refuse a model whose identity or description is not this handle's."""
        if self._damage:
            raise FingerprintMismatchError(self._damage)
        expected, found = self.identity, loaded.identity
        if self._legacy:  # written before identities had a recipe
            found = ModelIdentity(
                found.weights, found.tokenizer, found.config, expected.recipe
            )
        if found.weights != expected.weights:
            where = (
                "the model stored in the pickle is corrupted"
                if self._bundle is not None
                else f"the weights of {self.source.name!r} changed since fit"
            )
            raise FingerprintMismatchError(
                f"Refusing to use these weights: {where}. Expected fingerprint "
                f"{expected.weights}, found {found.weights}. Refit the vectorizer "
                "on the current weights, or restore the original checkpoint (for a "
                "hub model, pass the revision it was fitted with)."
            )
        parts = {"tokenizer": "tokenizer", "config": "configuration"}
        parts["recipe"] = "recipe (pooler, length limit)"
        for part in expected.differences(found):
            raise FingerprintMismatchError(
                f"Refusing this model: the {parts[part]} of {self.source.name!r} "
                f"changed since fit (expected {getattr(expected, part)}, found "
                f"{getattr(found, part)}), so the same weights would give other "
                "vectors. Refit the vectorizer, or restore the original checkpoint."
            )
        if self._legacy:  # what skbert 0.1.0 stored: sizes and pooler presence
            stored, derived = (
                (info.hidden_size, info.n_hidden_states, info.has_pooler)
                for info in (self.info, loaded.info)
            )
            if stored != derived:
                raise FingerprintMismatchError(self._altered(loaded))
            self.identity, self.info = loaded.identity, loaded.info
            self._legacy = False
        elif loaded.info != self.info:
            raise FingerprintMismatchError(self._altered(loaded))

    def _altered(self, loaded: LoadedModel) -> str:
        return (
            f"Refusing this model: the stored description of {self.source.name!r} "
            f"({self.info}) is not the one derived from its files ({loaded.info}). "
            "The file was altered; re-create it from the fitted estimator."
        )

    @contextlib.contextmanager
    def checkpoint(self) -> Iterator[tuple[Path, bool, str]]:
        """A folder holding the checkpoint files, whether its code may run, and
        how to name it in messages.

        The bundle (or, when a torch model is loaded, the files written from
        it) goes to a new temporary folder; otherwise the source is resolved.
        """
        with self._lock:
            bundle = self._bundle
        loaded = self.torch_model
        if bundle is None and loaded is not None:
            bundle = bundle_from(loaded)
        if bundle is None:  # reference-only: read the source again
            yield self.source.folder(), self._code_allowed, self.source.name
            return
        _check_bundle(bundle)
        with tempfile.TemporaryDirectory(prefix="skbert-") as tmp:
            for name, data in bundle.items():
                target = Path(tmp, name)
                target.parent.mkdir(exist_ok=True)
                target.write_bytes(data)
            # Code never travels in a file.
            yield Path(tmp), False, f"{self.source.name} (from pickle)"

    # -- pickling --------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        if self._damage:  # never launder damaged files
            raise FingerprintMismatchError(self._damage)
        if self.persist == "reference" and self.source.tuning is not None:
            raise ValueError(
                "persist='reference' pickles only where the model is found again, "
                f"but this encoder was fine-tuned from {self.source.name!r} by fit: "
                "that folder does not hold it. Use persist='weights' (the default) "
                "to pickle the tuned weights with the estimator."
            )
        bundle = None
        if self.persist == "weights":
            with self._lock:
                bundle = self._bundle
            loaded = self.torch_model
            if bundle is None and loaded is not None:
                bundle = bundle_from(loaded)
        state: dict[str, Any] = {
            "format": _STATE_FORMAT,
            "source": self.source,
            "identity": self.identity.to_state(),
            "info": self.info.to_state(),
            "persist": self.persist,
            "_bundle": bundle,
            "_bundle_digest": _digest(bundle),
        }
        state["_state_digest"] = _state_digest(state)
        return state

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise ValueError("Refusing this file: its model state is not a mapping.")
        written_by_0_1 = state.get("format") != _STATE_FORMAT
        if written_by_0_1:
            state = _from_legacy(state)
        else:
            expected = {
                "format",
                "source",
                "identity",
                "info",
                "persist",
                "_bundle",
                "_bundle_digest",
                "_state_digest",
            }
            if set(state) != expected:
                raise ValueError(
                    "Refusing this file: its model state has fields skbert never "
                    f"writes or lacks some ({sorted(set(state) ^ expected)})."
                )
        source = state["source"]
        if not isinstance(source, ModelSource):
            raise ValueError("Refusing this file: its model source is not valid.")
        persist = state["persist"]
        if persist not in PERSIST_OPTIONS:
            raise ValueError("Refusing this file: its persist value is not valid.")
        bundle = state["_bundle"]
        if bundle is not None:
            _check_bundle(bundle)  # before anything is written from it
        damage = None
        if not written_by_0_1 and _state_digest(state) != state["_state_digest"]:
            damage = (
                "The description of the model stored in this pickle is corrupted: "
                "its SHA-256 does not match the one written with it. The file was "
                "truncated or altered; re-create it from the fitted estimator."
            )
        try:
            identity = ModelIdentity.from_state(state["identity"])
            info = ModelInfo.from_state(state["info"])
        except ValueError as exc:
            raise ValueError(f"Refusing this file: {exc}.") from None
        found = _digest(bundle)
        if persist == "weights" and (not bundle or found != state["_bundle_digest"]):
            # refused on first use, like weights that changed on disk
            damage = (
                "The model files stored in this pickle are corrupted or missing: "
                f"their SHA-256 is {found}, but {state['_bundle_digest']} was "
                "written with them. The pickle was truncated or altered; re-create "
                "it from the fitted estimator."
            )
        self.source = source
        self.identity = identity
        self.info = info
        self.persist = persist
        self._code_allowed = False  # never from a file
        self._legacy = identity.recipe == UNKNOWN_RECIPE
        self._bundle = bundle or None
        self._damage = damage
        self._lock = threading.Lock()
        self.models = {}

    def __repr__(self) -> str:
        return f"ModelHandle({self.source.name!r}, {self.identity.digest[:19]}...)"


def _state_digest(state: dict[str, Any]) -> str:
    """SHA-256 over every field but the bundle bytes (their own digest covers them)."""
    covered = {
        key: value
        for key, value in state.items()
        if key not in {"_bundle", "_state_digest", "source"}
    }
    covered["source"] = _source_state(state["source"])
    return canonical_digest(covered)


def _source_state(source: ModelSource) -> dict[str, Any]:
    state = {f.name: getattr(source, f.name, None) for f in fields(ModelSource)}
    if state["tuning"] is None:  # as digested before fine-tuning existed
        del state["tuning"]
    return state


def _from_legacy(state: dict[str, Any]) -> dict[str, Any]:
    """A handle state written by skbert 0.1.0 (before identities), converted."""
    needed = {
        "source",
        "persist",
        "fingerprint",
        "tokenizer_fingerprint",
        "config_fingerprint",
        "has_pooler",
        "missing_pooler_keys",
        "hidden_size",
        "n_hidden_states",
        "model_max_length",
        "_bundle",
    }
    if not needed <= set(state):
        raise ValueError("Refusing this file: its model state is not one skbert wrote.")
    identity = {
        "weights": state["fingerprint"],
        "tokenizer": state["tokenizer_fingerprint"],
        "config": state["config_fingerprint"],
        "recipe": UNKNOWN_RECIPE,  # replaced by the loaded model's recipe
    }
    missing = tuple(state["missing_pooler_keys"] or ())
    info = {
        "model_type": "bert",
        "model_class": "BertModel",
        "hidden_size": state["hidden_size"],
        "n_hidden_states": state["n_hidden_states"],
        "model_max_length": state["model_max_length"],
        "pooler": (
            "missing" if missing else "trained" if state["has_pooler"] else "absent"
        ),
        "missing_pooler_keys": list(missing),
        "first_token_special": True,
        "sentence": None,
    }
    return {
        "source": state["source"],
        "identity": identity,
        "info": info,
        "persist": state["persist"],
        "_bundle": state["_bundle"],
        "_bundle_digest": state.get("_bundle_digest"),
    }


def bundle_from(loaded: LoadedModel) -> dict[str, bytes]:
    """The checkpoint as the files of a Hugging Face folder, in memory."""
    from safetensors.torch import save

    from .checkpoint import weights_fingerprint

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


def _digest(bundle: dict[str, bytes] | None) -> str | None:
    """SHA-256 over the bundled files' names and contents."""
    if not bundle:
        return None
    hasher = hashlib.sha256()
    for name in sorted(bundle):
        hasher.update(name.encode() + b"\0" + len(bundle[name]).to_bytes(8, "little"))
        hasher.update(bundle[name])
    return hasher.hexdigest()
