"""Find a checkpoint, load it without inventing weights, and share it in-process.

Data flow: ``model_name_or_path`` -> :func:`resolve_model_folder` (a local
folder, or a hub snapshot) -> :func:`load_folder` (config, tokenizer, weights;
refuses missing weights, drops an untrained pooler, fingerprints the weights)
-> the process-wide registry, so that the clones ``GridSearchCV`` makes share
one loaded model instead of reading the weights once per candidate and fold.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "LoadedModel",
    "clear_model_cache",
    "fingerprint_state_dict",
    "get_or_load",
    "load_folder",
    "resolve_model_folder",
]

#: Files fetched for a hub model: config, tokenizer and safetensors weights.
_HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]
_HUB_FALLBACK_PATTERNS = ["pytorch_model*.bin"]
#: How many loaded models the registry keeps alive (least recently used first out).
_REGISTRY_SIZE = 2


@dataclass
class LoadedModel:
    """A model ready to run, with what the vectorizer needs to know about it."""

    model: Any
    tokenizer: Any
    fingerprint: str
    has_pooler: bool
    missing_pooler_keys: tuple[str, ...]
    hidden_size: int
    n_hidden_states: int
    model_max_length: int
    tokenizer_fingerprint: str
    device: torch.device
    dtype: torch.dtype
    #: float32 CPU copy of the weights, kept only when the running copy is in
    #: another dtype, so that a pickle always holds the weights as loaded.
    float32_state: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def compute(self) -> str:
        """How vectors are computed (part of every embedding-cache key)."""
        return f"torch/{self.dtype}"


def _looks_like_path(name: str) -> bool:
    return (
        os.path.isabs(name)
        or name.startswith((".", "~"))
        or name.count("/") > 1
        or "\\" in name
        or os.path.exists(name)
    )


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
        If ``name`` is a folder without ``config.json``.
    OSError
        If the hub id cannot be fetched (offline, unreachable, unknown id).
    """
    text = os.fspath(name)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(
                f"{text!r} is a folder but not a Hugging Face model folder: it has no "
                "config.json. Point model_name_or_path at the folder written by "
                "save_pretrained() (config.json, model.safetensors, tokenizer files)."
            )
        return path.resolve()
    if _looks_like_path(text):
        raise FileNotFoundError(
            f"Model folder {text!r} does not exist. Pass the path of a folder written "
            "by save_pretrained(), or a Hugging Face Hub id such as "
            "'bert-base-uncased'."
        )
    return _download(text, revision=revision, local_files_only=local_files_only)


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
        if not any(folder.glob("*.safetensors")):
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


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bars for our own loads.

    Every finding of that report is turned into our own error or decision, so
    users never see a "newly initialized" warning about weights we discard.
    """
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def fingerprint_state_dict(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over parameter names, dtypes, shapes and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def fingerprint_tokenizer(tokenizer: Any) -> str:
    """SHA-256 of the tokenizer's definition (vocabulary, normalizer, templates)."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        # call-time settings that transformers writes into the backend
        definition.pop("truncation", None)
        definition.pop("padding", None)
        data = json.dumps(definition, sort_keys=True).encode()
    else:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="skbert-") as tmp:
            tokenizer.save_pretrained(tmp)
            data = b"".join(
                entry.name.encode() + entry.read_bytes()
                for entry in sorted(Path(tmp).iterdir())
                if entry.is_file()
            )
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _model_max_length(tokenizer: Any, config: Any) -> int:
    limits = [
        value
        for value in (
            getattr(tokenizer, "model_max_length", None),
            getattr(config, "max_position_embeddings", None),
        )
        if isinstance(value, int) and 0 < value < 1_000_000
    ]
    if not limits:
        raise ValueError(
            "The checkpoint declares no maximum sequence length; set max_length."
        )
    return min(limits)


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
    shape-mismatched weight is an error.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    description = description or str(folder)
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(
            folder, trust_remote_code=trust_remote_code
        )
        model, info = AutoModel.from_pretrained(
            folder,
            output_loading_info=True,
            trust_remote_code=trust_remote_code,
            dtype=torch.float32,
        )
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
    has_pooler = getattr(model, "pooler", None) is not None
    model.eval()
    model.requires_grad_(False)
    state = model.state_dict()
    fingerprint = fingerprint_state_dict(state)
    float32_state = None
    if dtype != torch.float32:
        float32_state = {name: tensor.clone() for name, tensor in state.items()}
    model.to(device=device, dtype=dtype)
    config = model.config
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        fingerprint=fingerprint,
        has_pooler=has_pooler,
        missing_pooler_keys=missing_pooler,
        hidden_size=int(config.hidden_size),
        n_hidden_states=int(config.num_hidden_layers) + 1,
        model_max_length=_model_max_length(tokenizer, config),
        tokenizer_fingerprint=fingerprint_tokenizer(tokenizer),
        device=device,
        dtype=dtype,
        float32_state=float32_state,
    )


def _folder_stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes: a changed file on disk is a different model."""
    stamp = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file():
            info = entry.stat()
            stamp.append((entry.name, info.st_size, info.st_mtime_ns))
    return tuple(stamp)


_REGISTRY: OrderedDict[tuple, LoadedModel] = OrderedDict()
_REGISTRY_LOCK = threading.RLock()


def folder_key(folder: Path, trust_remote_code: bool) -> tuple:
    """Registry key part for a checkpoint folder as it is on disk now."""
    return ("folder", str(folder), _folder_stamp(folder), trust_remote_code)


def get_or_load(
    key: tuple,
    device: torch.device,
    dtype: torch.dtype,
    load: Callable[[], LoadedModel],
) -> LoadedModel:
    """Return the registered model for ``key`` on ``device``/``dtype``, loading once.

    A loaded model is also registered under its weights' fingerprint, so that
    an unpickled estimator finds the model already loaded in this process.
    """
    full_key = (key, str(device), str(dtype))
    with _REGISTRY_LOCK:
        loaded = _REGISTRY.get(full_key)
        if loaded is None:
            loaded = load()
            _REGISTRY[full_key] = loaded
            fingerprint_key = (("fingerprint", loaded.fingerprint), *full_key[1:])
            _REGISTRY[fingerprint_key] = loaded
        _REGISTRY.move_to_end(full_key)
        models = {id(value) for value in _REGISTRY.values()}
        while len(models) > _REGISTRY_SIZE:
            oldest = next(iter(_REGISTRY.values()))
            for stale in [k for k, v in _REGISTRY.items() if v is oldest]:
                del _REGISTRY[stale]
            models.discard(id(oldest))
        return loaded


def lookup_fingerprint(
    fingerprint: str, device: torch.device, dtype: torch.dtype
) -> LoadedModel | None:
    """The model with these weights already loaded in this process, if any."""
    with _REGISTRY_LOCK:
        return _REGISTRY.get((("fingerprint", fingerprint), str(device), str(dtype)))


def clear_model_cache() -> None:
    """Forget every model loaded in this process (frees their memory).

    Fitted vectorizers keep the model they use; the next ``fit`` of a new
    estimator reads the weights again.

    Examples
    --------
    >>> import skbert
    >>> skbert.clear_model_cache()
    """
    with _REGISTRY_LOCK:
        _REGISTRY.clear()
