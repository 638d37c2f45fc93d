"""Model name -> local folder: a folder on disk, or a Hugging Face Hub snapshot.

Nothing is loaded here; :mod:`skbert._model.checkpoint` reads the folder. A hub
snapshot fetches only configuration, tokenizer and safetensors files (never
code); pickle-based weights only when ``SKBERT_ALLOW_PICKLE_WEIGHTS=1`` opts
in (see :func:`skbert._model.checkpoint.pickle_weights_allowed`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .checkpoint import pickle_weights_allowed

__all__ = ["local_folder", "local_model_folder", "resolve_model_folder"]

#: Files fetched for a hub model: config, tokenizer and safetensors weights
#: (fnmatch's ``*`` also matches ``/``: module subfolders are included).
_HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]
_HUB_FALLBACK_PATTERNS = ["pytorch_model*.bin"]


def _looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or "\\" in name
        or os.path.exists(name)
    )


def local_folder(name: str | os.PathLike) -> Path | None:
    """The absolute folder ``name`` names on this machine, or ``None`` for a hub id.

    A reference pickle stores this path, so that a relative ``name`` (such as
    ``"models/minilm"``) is found again from another working directory.
    """
    path = Path(os.fspath(name)).expanduser()
    return path.resolve() if path.is_dir() else None


def resolve_model_folder(
    name: str | os.PathLike,
    *,
    revision: str | None = None,
    local_files_only: bool = False,
) -> Path:
    """Return a local folder holding the checkpoint ``name``.

    A local folder is used as it is. Anything else is taken as a Hugging Face
    Hub id and its config, tokenizer and weight files are fetched (or found in
    the local hub cache) with ``huggingface_hub.snapshot_download``.

    Raises
    ------
    FileNotFoundError
        If ``name`` looks like a path and does not exist.
    ValueError
        If ``name`` is a file, or a folder without ``config.json``.
    OSError
        If the hub id cannot be fetched (offline, unreachable, unknown id).
    """
    folder = local_model_folder(name)
    if folder is not None:
        return folder
    return _download(
        os.fspath(name), revision=revision, local_files_only=local_files_only
    )


def local_model_folder(name: str | os.PathLike) -> Path | None:
    """The model folder ``name`` names on this machine, ``None`` for a hub id;
    raises as :func:`resolve_model_folder` does for a path that is no model
    folder. Nothing is read but the folder's listing."""
    text = os.fspath(name)
    path = Path(text).expanduser()
    if path.is_dir():
        if not any((path / name).is_file() for name in ("config.json", "modules.json")):
            raise ValueError(
                f"{text!r} is a folder but not a Hugging Face model folder: it has no "
                "config.json (nor a sentence-transformers modules.json). Point "
                "model_name_or_path at the folder written by save_pretrained() "
                "(config.json, model.safetensors, tokenizer files)."
            )
        return path.resolve()
    if path.exists():
        raise ValueError(
            f"{text!r} is a file, not a model folder. Pass the folder that holds it "
            f"({str(path.resolve().parent)!r}), as written by save_pretrained()."
        )
    if _looks_like_path(text):
        raise FileNotFoundError(
            f"Model folder {text!r} does not exist. Pass the path of a folder written "
            "by save_pretrained(), or a Hugging Face Hub id such as "
            "'bert-base-uncased'."
        )
    return None


def _download(repo_id: str, *, revision: str | None, local_files_only: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    def fetch(patterns: list[str]) -> Path:
        return Path(
            snapshot_download(
                repo_id,
                revision=revision,
                allow_patterns=patterns,
                local_files_only=local_files_only,
            )
        )

    try:
        folder = fetch(_HUB_PATTERNS)
        # Pickle weights are only worth downloading when they may be loaded;
        # otherwise load_folder explains why the checkpoint is refused.
        if not any(folder.glob("*.safetensors")) and _pickle_weights_allowed():
            folder = fetch(_HUB_FALLBACK_PATTERNS + _HUB_PATTERNS)
    except HFValidationError as exc:
        raise FileNotFoundError(
            f"{repo_id!r} is neither an existing local folder nor a valid Hugging "
            "Face Hub id. Check the spelling, or pass the folder written by "
            "save_pretrained()."
        ) from exc
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise OSError(
            f"The Hugging Face Hub has no accessible model {repo_id!r} (unknown, "
            "private or gated). Check the id, log in with `hf auth login` for "
            "private or gated models, or pass a local folder."
        ) from exc
    except RevisionNotFoundError as exc:
        raise OSError(
            f"Model {repo_id!r} has no revision {revision!r} on the Hugging Face Hub."
        ) from exc
    except Exception as exc:  # offline, DNS, HTTP errors, empty local cache
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
        why = (
            "HF_HUB_OFFLINE is set"
            if offline
            else "local_files_only=True"
            if local_files_only
            else "the Hugging Face Hub could not be reached"
        )
        raise OSError(
            f"Could not load model {repo_id!r}: {why} and it is not in the local "
            f"Hugging Face cache ({type(exc).__name__}: {exc}). Connect to the "
            "internet once (unset HF_HUB_OFFLINE) to download it, or pass the path "
            "of a local model folder as model_name_or_path."
        ) from exc
    return folder


def _pickle_weights_allowed() -> bool:
    return pickle_weights_allowed()
