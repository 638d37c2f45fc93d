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
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core.options import PERSIST_OPTIONS
from .._core.public import public
from . import registry
from .bundle import bundle_digest, bundle_from, check_bundle
from .checkpoint import load_folder
from .identity import ModelIdentity, ModelInfo, canonical_digest
from .legacy import UNKNOWN_RECIPE, from_legacy
from .source import ModelSource, source_state

if TYPE_CHECKING:
    import torch

    from .checkpoint import LoadedModel

__all__ = ["FingerprintMismatchError", "ModelHandle", "ModelSource"]

#: Version of the state :meth:`ModelHandle.__getstate__` writes.
_STATE_FORMAT = 2


class FingerprintMismatchError(ValueError):
    """The model found is not the model the estimator was fitted with."""


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
        self._start(
            source, loaded.identity, loaded.info, persist, code_allowed=code_allowed
        )
        self.remember(loaded)

    def _start(
        self,
        source: ModelSource,
        identity: ModelIdentity,
        info: ModelInfo,
        persist: str,
        *,
        code_allowed: bool,
        legacy: bool = False,
        bundle: dict[str, bytes] | None = None,
        damage: str | None = None,
        deferred: bool = False,
    ) -> None:
        """Set every field (``__init__``, :meth:`known` and ``__setstate__``)."""
        self.source = source
        self.identity = identity
        self.info = info
        self.persist = persist
        self._code_allowed = code_allowed
        self._legacy = legacy
        self._bundle = bundle
        self._damage = damage
        self._lock = threading.Lock()
        #: Made by :meth:`known`: the weights are read on first need only.
        self.deferred = deferred
        #: Every model this handle runs, by (device, dtype, backend).
        self.models: dict[tuple[str, str, str], LoadedModel] = {}

    @classmethod
    def known(
        cls,
        source: ModelSource,
        identity: ModelIdentity,
        info: ModelInfo,
        *,
        code_allowed: bool = False,
    ) -> ModelHandle:
        """A handle of a checkpoint whose identity and description are known
        (another process of the session loaded the folder as it is now) and
        that nothing has loaded here yet: its models are read on first need,
        and compared with ``identity`` then, as a pickled reference's are."""
        handle = object.__new__(cls)
        handle._start(
            source, identity, info, "weights", code_allowed=code_allowed, deferred=True
        )
        return handle

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
                "source": source_state(self.source),
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

    def read_checked(self, device: torch.device, dtype: torch.dtype) -> LoadedModel:
        """Read this handle's checkpoint again (its bundle, or its source);
        refuse it unless it is the same model, before anyone registers or
        uses it (damaged weights are never kept under the expected identity)."""
        with self.checkpoint() as (folder, code_allowed, description):
            loaded = load_folder(
                folder,
                device=device,
                dtype=dtype,
                trust_remote_code=code_allowed,
                description=description,
            )
        self.check(loaded)
        return loaded

    def torch_model_on(self, device: torch.device, dtype: torch.dtype) -> LoadedModel:
        """This handle's torch model on ``device`` in ``dtype``: the one it
        holds, else the one this process registered under its identity, else
        its checkpoint read again and checked (:meth:`read_checked`)."""
        kept = self.models.get((str(device), str(dtype), "torch"))
        if kept is not None:
            return kept
        return self.remember(
            registry.obtain(
                digest=self.identity.digest,
                folder=None,
                device=device,
                dtype=dtype,
                load=lambda: self.read_checked(device, dtype),
            )
        )

    def _pickled_model(self) -> LoadedModel:
        """A torch model of this handle to bundle: the one held, else its
        float32 CPU model (loaded now if need be: a handle made by
        :meth:`known` has read no weights yet)."""
        import torch

        held = self.torch_model
        return held or self.torch_model_on(torch.device("cpu"), torch.float32)

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
        check_bundle(bundle)
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
            if bundle is None:
                bundle = bundle_from(self._pickled_model())
        state: dict[str, Any] = {
            "format": _STATE_FORMAT,
            "source": self.source,
            "identity": self.identity.to_state(),
            "info": self.info.to_state(),
            "persist": self.persist,
            "_bundle": bundle,
            "_bundle_digest": bundle_digest(bundle),
        }
        state["_state_digest"] = _state_digest(state)
        return state

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise ValueError("Refusing this file: its model state is not a mapping.")
        written_by_0_1 = state.get("format") != _STATE_FORMAT
        if written_by_0_1:
            state = from_legacy(state)
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
            check_bundle(bundle)  # before anything is written from it
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
        found = bundle_digest(bundle)
        if persist == "weights" and (not bundle or found != state["_bundle_digest"]):
            # refused on first use, like weights that changed on disk
            damage = (
                "The model files stored in this pickle are corrupted or missing: "
                f"their SHA-256 is {found}, but {state['_bundle_digest']} was "
                "written with them. The pickle was truncated or altered; re-create "
                "it from the fitted estimator."
            )
        self._start(
            source,
            identity,
            info,
            persist,
            code_allowed=False,  # never from a file
            legacy=identity.recipe == UNKNOWN_RECIPE,
            bundle=bundle or None,
            damage=damage,
        )

    def __repr__(self) -> str:
        return f"ModelHandle({self.source.name!r}, {self.identity.digest[:19]}...)"


def _state_digest(state: dict[str, Any]) -> str:
    """SHA-256 over every field but the bundle bytes (their own digest covers them)."""
    covered = {
        key: value
        for key, value in state.items()
        if key not in {"_bundle", "_state_digest", "source"}
    }
    covered["source"] = source_state(state["source"])
    return canonical_digest(covered)
