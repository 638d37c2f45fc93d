"""Find a checkpoint, load it without inventing weights, and share it in-process.

Data flow: ``model_name_or_path`` -> :func:`resolve_model_folder` (a local
folder, or a hub snapshot) -> :func:`load_folder` (config, tokenizer, weights;
refuses missing weights, drops an untrained pooler, fingerprints the weights)
-> the process-wide registry, so that the clones ``GridSearchCV`` makes share
one loaded model instead of reading the weights once per candidate and fold.

Safety: no code shipped with a checkpoint runs unless ``trust_remote_code=True``,
and weights are read from ``model.safetensors`` (plain tensor data, no code).
Pickle-based weight files (``pytorch_model.bin``) are refused unless the
``SKBERT_ALLOW_PICKLE_WEIGHTS=1`` environment variable opts in, because
unpickling can run code; see :func:`choose_weight_format`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = [
    "ALLOW_PICKLE_WEIGHTS_ENV",
    "LoadedModel",
    "choose_weight_format",
    "clear_model_cache",
    "fingerprint_config",
    "fingerprint_state_dict",
    "get_or_load",
    "load_folder",
    "pickle_weights_allowed",
    "resolve_model_folder",
]

#: Files fetched for a hub model: config, tokenizer and safetensors weights.
_HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]
_HUB_FALLBACK_PATTERNS = ["pytorch_model*.bin"]
#: Weight files transformers reads without unpickling, and the pickle-based ones.
_SAFE_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
_PICKLE_WEIGHT_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
#: Environment variable that lets skbert load pickle-based weight files.
ALLOW_PICKLE_WEIGHTS_ENV = "SKBERT_ALLOW_PICKLE_WEIGHTS"
#: Files of which a checkpoint's tokenizer needs at least one (or any
#: ``*.model`` SentencePiece file): without them transformers 5 builds a
#: 5-token vocabulary and every word becomes [UNK].
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json")
#: Config entries that do not change what the model computes.
_CONFIG_VOLATILE_KEYS = frozenset(
    {
        "_name_or_path",
        "_commit_hash",
        "transformers_version",
        "architectures",
        "dtype",
        "torch_dtype",
    }
)
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
    #: What runs the model: "torch", "onnx" or "onnx-int8".
    backend: str = "torch"
    #: SHA-256 of the configuration entries that change the computation
    #: (activation, layer-norm epsilon, ...), see :func:`fingerprint_config`.
    config_fingerprint: str = ""

    @property
    def compute(self) -> str:
        """How vectors are computed (part of every embedding-cache key): the
        backend, the precision, and the configuration that surrounds the
        weights (activation, layer-norm epsilon, ...)."""
        return f"{self.backend}/{self.dtype}/{self.config_fingerprint}"


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
        If ``name`` is a file, or a folder without ``config.json``.
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
        # Pickle weights are only worth downloading when they may be loaded;
        # otherwise load_folder explains why the checkpoint is refused.
        if not any(folder.glob("*.safetensors")) and pickle_weights_allowed():
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


def fingerprint_config(config: Any) -> str:
    """SHA-256 of the configuration entries that change what the model computes.

    Names, versions and the stored dtype are left out: a checkpoint written
    again by ``save_pretrained()`` keeps its fingerprint, one with another
    activation or layer-norm epsilon does not.
    """
    import json

    entries = {
        key: value
        for key, value in config.to_dict().items()
        if key not in _CONFIG_VOLATILE_KEYS
    }
    data = json.dumps(entries, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pickle_weights_allowed() -> bool:
    """Whether ``SKBERT_ALLOW_PICKLE_WEIGHTS`` opts in to pickle-based weights."""
    value = os.environ.get(ALLOW_PICKLE_WEIGHTS_ENV, "")
    return value.strip().lower() in {"1", "true", "yes"}


def _read_config(folder: Path, description: str) -> dict[str, Any]:
    """``config.json`` as a dict, or a clear error if it is not a model config."""
    import json

    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        config, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = "it is not a JSON object with a 'model_type'"
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise ValueError(
            f"The checkpoint {description!r} has no usable config.json ({why}). "
            f'It must be the file save_pretrained() writes, e.g. {{"model_type": '
            f'"bert", ...}}; copy or download the checkpoint again.'
        )
    return config


def _declared_weight_file(config: dict[str, Any]) -> str | None:
    """The weight file ``config.json`` names (``transformers_weights``), if any.

    transformers loads that file in preference to everything else, so the
    policy below must judge it rather than the files it happens to find.
    """
    name = config.get("transformers_weights")
    return name if isinstance(name, str) else None


def choose_weight_format(folder: Path, description: str) -> bool:
    """Decide which weight file is read: the ``use_safetensors`` to load with.

    safetensors files hold only tensor data, so reading one cannot run code;
    they are used whenever the checkpoint has them. ``pytorch_model.bin`` is a
    pickle: transformers (5.x) reads it with ``torch.load(weights_only=True)``,
    a restricted unpickler that refuses arbitrary objects but has had
    escapes (CVE-2025-32434, torch < 2.6). skbert therefore refuses a
    checkpoint whose only weights are pickle-based unless the environment
    variable ``SKBERT_ALLOW_PICKLE_WEIGHTS=1`` opts in.

    Parameters
    ----------
    folder : Path
        A checkpoint folder with a ``config.json``.
    description : str
        How to name the checkpoint in error messages.

    Returns
    -------
    use_safetensors : bool
        ``True`` to read safetensors only, ``False`` to read the (allowed)
        pickle-based weights.

    Raises
    ------
    ValueError
        If ``config.json`` is unusable, or the only weights are pickle-based
        and not allowed.
    FileNotFoundError
        If the folder has no weight file at all.
    """
    declared = _declared_weight_file(_read_config(folder, description))
    if declared is not None:
        if declared.endswith((".safetensors", ".safetensors.index.json")):
            return True
        pickles = [declared]
    elif any((folder / name).is_file() for name in _SAFE_WEIGHT_FILES):
        return True
    else:
        pickles = [name for name in _PICKLE_WEIGHT_FILES if (folder / name).is_file()]
    if pickles and pickle_weights_allowed():
        return False
    if pickles:
        source = folder / pickles[0]
        raise ValueError(
            f"Refusing to load the weights of {description!r}: they exist only as "
            f"{pickles[0]}, a pickle, and unpickling a file can run code hidden in "
            "it (transformers reads it with torch.load(weights_only=True), which "
            "narrows but has not always closed that hole). model.safetensors "
            "holds plain tensor data and cannot run code. Convert the checkpoint "
            "once, on a machine where you trust it:\n"
            "    import torch\n"
            "    from safetensors.torch import save_file\n"
            f"    state = torch.load({str(source)!r}, map_location='cpu', "
            "weights_only=True)\n"
            "    save_file({k: v.contiguous().clone() for k, v in state.items()}, "
            f"{str(folder / 'model.safetensors')!r}, metadata={{'format': 'pt'}})\n"
            f"or, if you trust its source, set the environment variable "
            f"{ALLOW_PICKLE_WEIGHTS_ENV}=1 to load it as it is."
        )
    raise FileNotFoundError(
        f"The checkpoint {description!r} has no weights: no model.safetensors in "
        f"{str(folder)!r}. A folder written by save_pretrained() has one. (A Hugging "
        "Face Hub model that ships only pickle-based pytorch_model.bin weights is "
        f"downloaded and loaded only with {ALLOW_PICKLE_WEIGHTS_ENV}=1.)"
    )


def _check_tokenizer_files(folder: Path, description: str) -> None:
    if any((folder / name).is_file() for name in _TOKENIZER_FILES):
        return
    if any(folder.glob("*.model")):
        return
    raise FileNotFoundError(
        f"The checkpoint {description!r} has no tokenizer files (tokenizer.json, "
        f"vocab.txt, ...) in {str(folder)!r}. Without them transformers builds an "
        "empty vocabulary and every word would become [UNK]. Save the tokenizer "
        "next to the weights: tokenizer.save_pretrained(folder)."
    )


def _damaged(what: str, description: str, exc: BaseException) -> ValueError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ValueError(
        f"The {what} of the checkpoint {description!r} could not be read "
        f"({type(exc).__name__}: {detail}). The files are damaged or were not "
        "written by save_pretrained(); copy or download the checkpoint again."
    )


def _remote_code_message(folder: Path, description: str) -> str:
    code = sorted(entry.name for entry in folder.glob("*.py"))
    what = ", ".join(code) if code else "classes named in its auto_map"
    return (
        f"The checkpoint {description!r} needs its own Python code to load "
        f"({what}). skbert never runs code shipped with a checkpoint unless you "
        "pass trust_remote_code=True; do that only if you trust its author and "
        "have read that code, or use a checkpoint of an architecture transformers "
        "knows (BERT, RoBERTa, ...)."
    )


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
    shape-mismatched weight is an error. Nor does it run code the checkpoint
    ships unless ``trust_remote_code``, or read pickle-based weights unless
    allowed (:func:`choose_weight_format`).
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = Path(folder)
    description = description or str(folder)
    use_safetensors = choose_weight_format(folder, description)
    _check_tokenizer_files(folder, description)
    part = "tokenizer"
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(
                folder, trust_remote_code=trust_remote_code
            )
            part = "weights"
            model, info = AutoModel.from_pretrained(
                folder,
                output_loading_info=True,
                trust_remote_code=trust_remote_code,
                use_safetensors=use_safetensors,
                # reported in info["mismatched_keys"] and refused below, by name
                ignore_mismatched_sizes=True,
                dtype=torch.float32,
            )
    except ValueError as exc:
        if not trust_remote_code and "trust_remote_code" in str(exc):
            raise ValueError(_remote_code_message(folder, description)) from exc
        raise _damaged(part, description, exc) from exc
    except (OSError, TypeError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        raise _damaged(part, description, exc) from exc
    except Exception as exc:
        # safetensors' and tokenizers' own errors, without importing them here
        if type(exc).__module__.split(".")[0] in {"safetensors", "tokenizers"}:
            raise _damaged(part, description, exc) from exc
        raise
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
    vocab_size = getattr(model.config, "vocab_size", None)
    if isinstance(vocab_size, int) and len(tokenizer) > vocab_size:
        raise ValueError(
            f"The tokenizer of {description!r} has {len(tokenizer)} tokens but the "
            f"model has embeddings for only {vocab_size}: the tokenizer files do not "
            "belong to these weights. Save the tokenizer the model was trained with "
            "next to its weights."
        )
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
        config_fingerprint=fingerprint_config(config),
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
            fingerprint_key = (
                ("fingerprint", loaded.fingerprint, loaded.backend),
                *full_key[1:],
            )
            _REGISTRY[fingerprint_key] = loaded
        # Every key of this model (folder and fingerprint) becomes the most
        # recently used, so that eviction below takes the model used longest ago.
        for key in [k for k, v in _REGISTRY.items() if v is loaded]:
            _REGISTRY.move_to_end(key)
        models = {id(value) for value in _REGISTRY.values()}
        while len(models) > _REGISTRY_SIZE:
            oldest = next(iter(_REGISTRY.values()))
            for stale in [k for k, v in _REGISTRY.items() if v is oldest]:
                del _REGISTRY[stale]
            models.discard(id(oldest))
        return loaded


def lookup_fingerprint(
    fingerprint: str,
    device: torch.device,
    dtype: torch.dtype,
    backend: str = "torch",
) -> LoadedModel | None:
    """The model with these weights already loaded in this process, if any."""
    key = (("fingerprint", fingerprint, backend), str(device), str(dtype))
    with _REGISTRY_LOCK:
        return _REGISTRY.get(key)


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
