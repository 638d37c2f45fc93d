"""The exported artefact: one ONNX file that carries its manifest and tokenizer.

An artefact is an ordinary ONNX model (ONNX Runtime, Netron and ``onnx.load``
read it) with two metadata entries: ``skbert.manifest``, a JSON object that
says what the runtime needs and checks, and ``skbert.tokenizer``, the
checkpoint's ``tokenizer.json``. The manifest records two fingerprints:

* ``graph_sha256``: SHA-256 of the file's bytes without its metadata
  entries, i.e. of the model exactly as ONNX Runtime runs it;
* ``tokenizer_sha256``: SHA-256 of the tokenizer entry (UTF-8).

A file whose graph or tokenizer does not match its manifest is refused, and
so is a manifest with any field skbert does not write (state read from a file
is input, not truth). This module needs only the standard library: it splits
the top level of the ONNX protobuf itself (the wire format is stable and
simple), so the runtime reads an artefact without the ``onnx`` package.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Artefact",
    "ArtefactError",
    "read_artefact",
    "write_artefact",
]

FORMAT = "skbert-onnx"
FORMAT_VERSION = 1
MANIFEST_KEY = "skbert.manifest"
TOKENIZER_KEY = "skbert.tokenizer"
#: ``ModelProto.metadata_props`` (repeated ``StringStringEntryProto``).
_METADATA_FIELD = 14
_LENGTH_DELIMITED = 2
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
#: What a method of the runtime reads from the graph, by output kind.
METHODS = {
    "classifier": ("predict", "predict_proba", "embed"),
    "transformer": ("transform", "embed"),
}
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


class ArtefactError(ValueError):
    """The file is not an skbert artefact, or it does not match its manifest."""


@dataclass(frozen=True)
class Artefact:
    """An artefact as read from disk, its fingerprints checked."""

    #: The whole file: what ONNX Runtime loads (metadata included, harmless).
    model: bytes
    #: The validated manifest.
    manifest: dict[str, Any]
    #: The checkpoint's ``tokenizer.json``.
    tokenizer: str


def _sha256(data: bytes | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ArtefactError("the file is not a valid ONNX model (bad varint)")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(data: memoryview) -> Iterator[tuple[int, int, int, int]]:
    """``(field number, start, value start, end)`` of each top-level field."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value_start = pos
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == _LENGTH_DELIMITED:
            length, value_start = _varint(data, pos)
            pos = value_start + length
        elif wire == 5:
            pos += 4
        else:
            raise ArtefactError("the file is not a valid ONNX model (bad wire type)")
        if pos > len(data) or number == 0:
            raise ArtefactError("the file is not a valid ONNX model (truncated)")
        yield number, start, value_start, pos


def _split(data: bytes) -> tuple[str, dict[str, str]]:
    """The graph fingerprint and the metadata entries of a serialized model."""
    view = memoryview(data)
    digest = hashlib.sha256()
    metadata: dict[str, str] = {}
    for number, start, value_start, end in _fields(view):
        if number != _METADATA_FIELD:
            digest.update(view[start:end])
            continue
        entry = {1: "", 2: ""}
        for inner, _, inner_start, inner_end in _fields(view[value_start:end]):
            part = view[value_start:end][inner_start:inner_end]
            try:
                entry[inner] = bytes(part).decode("utf-8")
            except UnicodeDecodeError:
                raise ArtefactError(
                    "a metadata entry of the file is not UTF-8"
                ) from None
        metadata[entry[1]] = entry[2]
    return "sha256:" + digest.hexdigest(), metadata


def _entry(key: str, value: str) -> bytes:
    """One ``metadata_props`` entry, encoded as ONNX's protobuf does."""
    inner = b""
    for number, text in ((1, key), (2, value)):
        raw = text.encode("utf-8")
        inner += _encode_varint(number << 3 | _LENGTH_DELIMITED)
        inner += _encode_varint(len(raw)) + raw
    tag = _encode_varint(_METADATA_FIELD << 3 | _LENGTH_DELIMITED)
    return tag + _encode_varint(len(inner)) + inner


def write_artefact(
    path: str | os.PathLike, graph: bytes, manifest: dict[str, Any], tokenizer: str
) -> dict[str, Any]:
    """Write ``graph`` (a serialized ONNX model without metadata) to ``path``
    with ``manifest`` and ``tokenizer`` inside; the manifest as written (the
    format, version and both fingerprints added)."""
    graph_sha256, metadata = _split(graph)
    if metadata:
        raise ValueError("the graph must not carry metadata entries of its own")
    manifest = {
        **manifest,
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "graph_sha256": graph_sha256,
        "tokenizer_sha256": _sha256(tokenizer.encode("utf-8")),
    }
    check_manifest(manifest)
    text = json.dumps(manifest, sort_keys=True, indent=1)
    with open(path, "wb") as handle:
        handle.write(graph)
        handle.write(_entry(MANIFEST_KEY, text))
        handle.write(_entry(TOKENIZER_KEY, tokenizer))
    return manifest


def read_artefact(path: str | os.PathLike) -> Artefact:
    """Read an artefact, refusing it unless its graph and tokenizer are the
    ones its manifest names.

    Raises
    ------
    ArtefactError
        If the file is not an skbert artefact, its manifest is not one skbert
        writes, or a fingerprint does not match.
    """
    data = Path(path).read_bytes()
    graph_sha256, metadata = _split(data)
    if MANIFEST_KEY not in metadata or TOKENIZER_KEY not in metadata:
        raise ArtefactError(
            f"{os.fspath(path)!r} is not an skbert artefact: it has no "
            f"{MANIFEST_KEY!r} or {TOKENIZER_KEY!r} metadata. Write one with "
            "skbert.export_onnx (or `skbert export`)."
        )
    try:
        manifest = json.loads(metadata[MANIFEST_KEY])
    except ValueError as exc:
        raise ArtefactError(f"the artefact's manifest is not JSON ({exc})") from None
    check_manifest(manifest)
    tokenizer = metadata[TOKENIZER_KEY]
    found = {
        "graph": graph_sha256,
        "tokenizer": _sha256(tokenizer.encode("utf-8")),
    }
    for part, digest in found.items():
        expected = manifest[f"{part}_sha256"]
        if digest != expected:
            raise ArtefactError(
                f"Refusing {os.fspath(path)!r}: its {part} does not match its "
                f"manifest (expected {expected}, found {digest}). The file was "
                "damaged or altered; export it again."
            )
    return Artefact(model=data, manifest=manifest, tokenizer=tokenizer)


# -- the manifest ----------------------------------------------------------
def _fail(what: str) -> ArtefactError:
    return ArtefactError(f"the artefact's manifest has an invalid {what}")


def _is_int(value: object, low: int = 0, high: int = 2**31) -> bool:
    return type(value) is int and low <= value < high


def _check_ids(value: object, what: str) -> None:
    if not isinstance(value, list) or not all(_is_int(i) for i in value):
        raise _fail(what)


def _check_text(value: object, what: str, limit: int = 10_000) -> None:
    if not isinstance(value, str) or len(value) > limit:
        raise _fail(what)


def _check_spec(spec: object) -> None:
    """The fields of the :class:`~skbert._batching.EncodingSpec` the export
    ran (validated here, rebuilt by the runtime)."""
    if not isinstance(spec, dict):
        raise _fail("spec")
    ints = {"max_length": 1, "batch_size": 1, "skip": 0, "output_size": 1}
    for name, low in ints.items():
        if not _is_int(spec.get(name), low):
            raise _fail(f"spec.{name}")
    budget = spec.get("max_batch_tokens")
    if budget is not None and not _is_int(budget, 1):
        raise _fail("spec.max_batch_tokens")
    for name in ("normalize", "lowercase", "dense"):
        if type(spec.get(name)) is not bool:
            raise _fail(f"spec.{name}")
    for name in ("pooling", "prompt"):
        _check_text(spec.get(name), f"spec.{name}")
    modes = spec.get("modes")
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes):
        raise _fail("spec.modes")
    _check_ids(spec.get("layers"), "spec.layers")


def check_manifest(manifest: object) -> None:
    """Refuse a manifest that skbert would not write."""
    if not isinstance(manifest, dict):
        raise _fail("structure (not a JSON object)")
    if manifest.get("format") != FORMAT:
        raise ArtefactError("the file's manifest is not an skbert-onnx manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtefactError(
            f"the artefact has format version {manifest.get('format_version')!r}; "
            f"this skbert reads version {FORMAT_VERSION}. Export it again with "
            "this version of skbert, or install the one that wrote it."
        )
    for name in ("graph_sha256", "tokenizer_sha256"):
        value = manifest.get(name)
        if not (isinstance(value, str) and _SHA256.fullmatch(value)):
            raise _fail(name)
    kind = manifest.get("kind")
    if kind not in METHODS:
        raise _fail("kind")
    outputs = manifest.get("outputs")
    if (
        not isinstance(outputs, dict)
        or "embed" not in outputs
        or not set(outputs) <= set(METHODS[kind])
        or not all(isinstance(name, str) and name for name in outputs.values())
    ):
        raise _fail("outputs")
    inputs = manifest.get("inputs")
    if not isinstance(inputs, list) or not set(inputs) <= set(_INPUT_NAMES):
        raise _fail("inputs")
    classes = manifest.get("classes")
    if kind == "classifier" and (
        not isinstance(classes, list)
        or not classes
        or not all(isinstance(c, (str, int, float)) for c in classes)
    ):
        raise _fail("classes")
    tokenizer = manifest.get("tokenizer")
    if not isinstance(tokenizer, dict):
        raise _fail("tokenizer")
    _check_ids(tokenizer.get("prefix"), "tokenizer.prefix")
    _check_ids(tokenizer.get("suffix"), "tokenizer.suffix")
    if not _is_int(tokenizer.get("pad_id")):
        raise _fail("tokenizer.pad_id")
    if not _is_int(manifest.get("n_features_out"), 1):
        raise _fail("n_features_out")
    steps = manifest.get("steps")
    if not isinstance(steps, list) or not steps:
        raise _fail("steps")
    for step in steps:
        _check_text(step, "step", 500)
    _check_spec(manifest.get("spec"))
    if not isinstance(manifest.get("model"), dict):
        raise _fail("model")
    versions = manifest.get("versions")
    if not isinstance(versions, dict) or not all(
        isinstance(value, str | None) and len(value or "") < 100
        for value in versions.values()
    ):
        raise _fail("versions")
    if type(manifest.get("quantized")) is not bool:
        raise _fail("quantized")
