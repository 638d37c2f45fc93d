"""What a pickle of the estimator holds beyond scikit-learn's state, and the
checks made before a loaded one is used.

Written: the handle as ``persist`` says, the session folder that worker
processes join, the versions of the libraries that computed the vectors, and
a SHA-256 over everything but the model files (which carry their own). Read:
that digest and the fitted attributes are checked against what the file
holds; parameters added since the file was written get their defaults.
"""

from __future__ import annotations

import os
from typing import Any

from .._core import versions as _versions
from .._model.handle import ModelHandle
from .._model.identity import canonical_digest
from .._storage import session as _session

__all__ = ["loaded_state", "pickled_state", "warn_about_versions"]

#: Pickle entries added to scikit-learn's state by skbert.
_VERSIONS_KEY = "_skbert_versions"
_DIGEST_KEY = "_skbert_state_digest"
_SESSION_KEY = "_skbert_session"


def pickled_state(
    state: dict[str, Any], *, persist: str, share_session: bool
) -> dict[str, Any]:
    """scikit-learn's ``state`` with skbert's entries added."""
    state = dict(state)  # scikit-learn may return __dict__
    if "model_" in state:
        state["model_"] = state["model_"].with_persist(persist)
    if share_session:  # worker processes share this process's cache and encoders
        state[_SESSION_KEY] = _session.share()
    state[_VERSIONS_KEY] = _versions.installed_versions()
    state[_DIGEST_KEY] = _state_digest(state)
    return state


def loaded_state(
    state: object, defaults: dict[str, Any]
) -> tuple[dict[str, Any], object]:
    """``state`` checked and completed, and the versions it was written with.

    Raises ValueError when the file was damaged or altered.
    """
    if not isinstance(state, dict):
        raise ValueError("Refusing this file: the estimator state is not a dict.")
    state = dict(state)
    handle = state.get("model_")
    if handle is not None and not isinstance(handle, ModelHandle):
        raise ValueError("Refusing this file: its model_ is not a ModelHandle.")
    digest = state.pop(_DIGEST_KEY, None)
    versions = state.pop(_VERSIONS_KEY, None)
    if digest is not None or versions is not None:  # skbert 0.1.0 wrote none
        if digest != _state_digest({**state, _VERSIONS_KEY: versions}):
            raise ValueError(
                "Refusing this file: the state of its BertCLSVectorizer "
                "(parameters and fitted attributes) does not match the SHA-256 "
                "written with it. The file was damaged or altered; re-create "
                "it from the fitted estimator."
            )
    if handle is not None:
        _check_fitted_attributes(state, handle)
    for name, default in defaults.items():  # added since it was written
        state.setdefault(name, default)
    _session.join(state.pop(_SESSION_KEY, None))
    return state, versions


def _state_digest(state: dict[str, Any]) -> str:
    """SHA-256 over an estimator state, the handle by its own state digest."""
    covered = {}
    for key, value in state.items():
        if key == _DIGEST_KEY:
            continue
        if key == "model_":
            value = value.digest_for_estimator()
        elif isinstance(value, os.PathLike):
            value = ["path", os.fspath(value)]
        covered[key] = value
    return canonical_digest(covered)


def _check_fitted_attributes(state: dict[str, Any], handle: ModelHandle) -> None:
    """Fitted attributes are what the handle describes (derived, never trusted)."""
    expected = {
        "hidden_size_": handle.info.hidden_size,
        "n_layers_": handle.info.n_hidden_states,
        "has_pooler_": handle.info.has_pooler,
        "fingerprint_": handle.fingerprint,
    }
    for name, value in expected.items():
        if state.get(name) != value:
            raise ValueError(
                f"Refusing this file: its fitted attribute {name}="
                f"{state.get(name)!r} contradicts the model it holds ({value!r}). "
                "The file was damaged or altered; re-create it."
            )


def warn_about_versions(versions: object, *, backend: object) -> None:
    """Warn, naming both versions, for each library that changed since pickling."""
    if isinstance(versions, dict):
        _versions.warn_about_changes(
            versions,
            _versions.relevant_packages(str(backend)),
            _versions.InconsistentVersionWarning,
        )
