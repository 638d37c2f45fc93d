"""What a model *is*: fingerprints of its parts and one identity with one digest.

A model is identified by its weights, its tokenizer, its configuration and the
recipe skbert derives from the checkpoint to turn token states into vectors
(which pooler it may use, how long a text may be). :class:`ModelIdentity`
holds the four fingerprints, is computed once when a checkpoint is loaded,
and its :attr:`~ModelIdentity.digest` is the one key every consumer uses: the
in-process registry, the ONNX export folder, the embedding-cache key and the
pickle. Two checkpoints that differ in any part never share a digest.

:class:`ModelInfo` is what skbert knows about a loaded checkpoint (sizes,
limits, pooler status). It is always derived from the checkpoint itself; a
copy read from a file is only compared with it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .recipe import SentenceRecipe

if TYPE_CHECKING:
    import torch

__all__ = [
    "ModelIdentity",
    "ModelInfo",
    "POOLER_STATUSES",
    "canonical_digest",
    "fingerprint_config",
    "fingerprint_state_dict",
    "fingerprint_tokenizer",
]

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
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
#: What a checkpoint's pooler is: trained weights, weights that no objective
#: trained, weights missing from the checkpoint (the layer is removed), or no
#: pooler in the architecture at all.
POOLER_STATUSES = ("trained", "untrained", "missing", "absent")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_digest(value: Any) -> str:
    """SHA-256 of ``value`` written as canonical JSON (sorted keys, no spaces)."""
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return _sha256(data.encode())


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
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        # call-time settings that transformers writes into the backend
        definition.pop("truncation", None)
        definition.pop("padding", None)
        return _sha256(json.dumps(definition, sort_keys=True).encode())
    import tempfile

    with tempfile.TemporaryDirectory(prefix="skbert-") as tmp:
        tokenizer.save_pretrained(tmp)
        data = b"".join(
            entry.name.encode() + entry.read_bytes()
            for entry in sorted(Path(tmp).iterdir())
            if entry.is_file()
        )
    return _sha256(data)


def fingerprint_config(config: Any) -> str:
    """SHA-256 of the configuration entries that change what the model computes.

    Names, versions and the stored dtype are left out: a checkpoint written
    again by ``save_pretrained()`` keeps its fingerprint, one with another
    activation or layer-norm epsilon does not.
    """
    entries = {
        key: value
        for key, value in config.to_dict().items()
        if key not in _CONFIG_VOLATILE_KEYS
    }
    return _sha256(json.dumps(entries, sort_keys=True, default=str).encode())


@dataclass(frozen=True)
class ModelInfo:
    """What skbert derived from a loaded checkpoint."""

    #: ``config.model_type``, e.g. ``"bert"``.
    model_type: str
    #: The transformers class that was loaded, e.g. ``"BertModel"``.
    model_class: str
    hidden_size: int
    #: Hidden states the model returns: its layers plus the embeddings.
    n_hidden_states: int
    #: The longest input, in tokens, special tokens included.
    model_max_length: int
    #: One of :data:`POOLER_STATUSES`.
    pooler: str
    #: The pooler weights the checkpoint lacks (status ``"missing"``).
    missing_pooler_keys: tuple[str, ...] = ()
    #: Whether the tokenizer puts a special token ([CLS], <s>) before the text,
    #: so that the first token's state can summarize it.
    first_token_special: bool = True
    #: What a sentence-transformers folder declares, if it is one.
    sentence: SentenceRecipe | None = None

    @property
    def has_pooler(self) -> bool:
        """Whether the loaded model computes a pooler output."""
        return self.pooler in ("trained", "untrained")

    @property
    def max_length(self) -> int:
        """The longest input when ``max_length=None``: the folder's declared
        ``max_seq_length`` when it has one, else the model's own limit."""
        declared = self.sentence.max_seq_length if self.sentence else None
        if declared is None:
            return self.model_max_length
        return min(declared, self.model_max_length)

    def to_state(self) -> dict[str, Any]:
        state = asdict(self)
        state["missing_pooler_keys"] = list(self.missing_pooler_keys)
        state["sentence"] = None if self.sentence is None else self.sentence.to_state()
        return state

    @classmethod
    def from_state(cls, state: object) -> ModelInfo:
        """Rebuild from :meth:`to_state`, refusing anything else."""
        if not isinstance(state, dict) or set(state) != {f.name for f in fields(cls)}:
            raise ValueError("the model description is not the one skbert writes")
        ints = ("hidden_size", "n_hidden_states", "model_max_length")
        for name in ints:
            value = state[name]
            if type(value) is not int or not 0 < value <= 10_000_000:
                raise ValueError(f"the model description has an invalid {name}")
        for name in ("model_type", "model_class"):
            if not isinstance(state[name], str) or len(state[name]) > 200:
                raise ValueError(f"the model description has an invalid {name}")
        if state["pooler"] not in POOLER_STATUSES:
            raise ValueError("the model description has an invalid pooler status")
        keys = state["missing_pooler_keys"]
        if not isinstance(keys, (list, tuple)) or not all(
            isinstance(key, str) and len(key) < 200 for key in keys
        ):
            raise ValueError("the model description has invalid pooler keys")
        if type(state["first_token_special"]) is not bool:
            raise ValueError("the model description has an invalid first token flag")
        sentence = state["sentence"]
        if sentence is not None:
            sentence = SentenceRecipe.from_state(sentence)
        return cls(
            **{**state, "missing_pooler_keys": tuple(keys), "sentence": sentence}
        )

    def recipe(self) -> dict[str, Any]:
        """The part of the description that decides the vectors."""
        return {
            "model_class": self.model_class,
            "model_max_length": self.model_max_length,
            "pooler": self.pooler,
            "first_token_special": self.first_token_special,
            "sentence": None if self.sentence is None else self.sentence.to_state(),
        }


@dataclass(frozen=True)
class ModelIdentity:
    """The four fingerprints of a model and their one :attr:`digest`."""

    weights: str
    tokenizer: str
    config: str
    recipe: str

    @property
    def digest(self) -> str:
        """SHA-256 over the four fingerprints: *the* key of this model."""
        return canonical_digest(self.to_state())

    @property
    def short(self) -> str:
        """The first 32 hex digits of :attr:`digest`, for folder names."""
        return self.digest.removeprefix("sha256:")[:32]

    def to_state(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: object) -> ModelIdentity:
        """Rebuild from :meth:`to_state`, refusing anything else."""
        names = {f.name for f in fields(cls)}
        if not isinstance(state, dict) or set(state) != names:
            raise ValueError("the model identity is not the one skbert writes")
        bad = [
            name
            for name, value in state.items()
            if not (isinstance(value, str) and _SHA256.fullmatch(value))
        ]
        if bad:
            raise ValueError(f"the model identity has an invalid {bad[0]} fingerprint")
        return cls(**state)

    def differences(self, other: ModelIdentity) -> list[str]:
        """The parts (weights, tokenizer, ...) in which ``other`` differs."""
        return [
            f.name
            for f in fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]

    @classmethod
    def of(
        cls, *, weights: str, tokenizer: str, config: str, info: ModelInfo
    ) -> ModelIdentity:
        return cls(
            weights=weights,
            tokenizer=tokenizer,
            config=config,
            recipe=canonical_digest(info.recipe()),
        )
