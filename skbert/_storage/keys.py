"""Cache keys: a SHA-256 over everything that determines a stored vector.

The model's identity digest (weights, tokenizer, configuration and recipe),
how the vectors were computed (backend, precision, library versions),
``max_length``, the layer selection, the stored poolings, the prompt tokens
left out, and the text itself: a different model, setting or library version
can never hit.
"""

from __future__ import annotations

import hashlib

__all__ = ["entry_prefix", "text_key"]

#: Bumped whenever the meaning of a stored vector changes.
_FORMAT = "skbert-cache-v3"


def entry_prefix(
    identity: str,
    compute: str,
    max_length: int,
    layers: tuple[int, ...],
    poolings: tuple[str, ...],
    skip: int = 0,
) -> bytes:
    """Everything except the text that determines a cache entry.

    ``identity`` is the model's identity digest; ``compute`` names how the
    vectors were computed (backend, precision, library versions, e.g.
    ``"torch/torch.float32/skbert=0.2.0/torch=2.13.0/..."``): a bfloat16 or
    int8 vector is never served to a float32 request.
    """
    parts = [_FORMAT, identity, compute, str(max_length)]
    parts += [",".join(map(str, layers)), ",".join(poolings), f"skip={skip}"]
    return "\x00".join(parts).encode() + b"\x00"


def text_key(prefix: bytes, text: str) -> bytes:
    """The cache key of ``text`` under ``prefix`` (32 bytes)."""
    return hashlib.sha256(prefix + text.encode("utf-8", "surrogatepass")).digest()
