"""Where a checkpoint comes from: a vectorizer's loading parameters, as a
pickle holds them, each field checked when a file is read."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .._core.public import public
from .resolve import resolve_model_folder

__all__ = ["ModelSource", "source_state"]

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")

#: Longest name or revision a file may give (hub ids are far shorter).
_MAX_NAME = 4096


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
        return source_state(self)

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


def source_state(source: ModelSource) -> dict[str, Any]:
    state = {f.name: getattr(source, f.name, None) for f in fields(ModelSource)}
    if state["tuning"] is None:  # as digested before fine-tuning existed
        del state["tuning"]
    return state
