"""The exported artefact: one ONNX file that carries its manifest and tokenizer.

An artefact is an ordinary ONNX model (ONNX Runtime, Netron and ``onnx.load``
read it) with two metadata entries: ``skbert.manifest``, a JSON object that
says what the runtime needs and checks, and ``skbert.tokenizer``, the
checkpoint's ``tokenizer.json``. The file is one signed unit:

* ``graph_sha256``: SHA-256 of the file's bytes without its metadata
  entries, i.e. of the model exactly as ONNX Runtime runs it;
* ``tokenizer_sha256``: SHA-256 of the tokenizer entry (UTF-8);
* ``sha256``: SHA-256 of the manifest without this field (canonical JSON),
  which holds the two above: one digest over every byte that decides a
  prediction (graph, tokenizer, classes, recipe, special tokens, versions).

A file whose graph, tokenizer or manifest does not match its digests is
refused; so is a manifest with any field or value skbert does not write, a
file with metadata entries skbert does not write (or one of its own twice),
and a graph that reads any tensor from a file outside the artefact (ONNX's
external data). The digest detects damage and edits; against a deliberate
forger, who can compute it again, pin it: ``runtime.load(path, sha256=...)``
with the digest :func:`~skbert.export_onnx` reported. This module needs only
the standard library: it reads the ONNX protobuf itself (the wire format is
stable and simple), so the runtime reads an artefact without the ``onnx``
package.
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

from .options import CHUNK_COMBINES, LONG_TEXTS, POOLINGS, VECTOR_MODES
from .versions import PACKAGES

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Artefact",
    "ArtefactError",
    "read_artefact",
    "write_artefact",
]

FORMAT = "skbert-onnx"
#: 2: the manifest carries ``sha256``, its own digest (skbert 0.3).
FORMAT_VERSION = 2
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
#: Inputs every encoder graph has.
_REQUIRED_INPUTS = ("input_ids", "attention_mask")
#: Packages whose versions the manifest records: skbert's own and the export's.
EXPORT_PACKAGES = (*PACKAGES, "onnx", "skl2onnx", "scikit-learn", "numpy")
#: The longest ``max_length`` a manifest may give.
_MAX_LENGTH = 1 << 20


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
    """The graph fingerprint and the metadata entries of a serialized model
    (an entry given twice is refused: which one counts would be a guess)."""
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
        if entry[1] in metadata:
            raise ArtefactError(
                f"the file has two metadata entries {entry[1]!r}: skbert writes one"
            )
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
    manifest["sha256"] = manifest_digest(manifest)
    check_manifest(manifest)
    text = json.dumps(manifest, sort_keys=True, indent=1)
    with open(path, "wb") as handle:
        handle.write(graph)
        handle.write(_entry(MANIFEST_KEY, text))
        handle.write(_entry(TOKENIZER_KEY, tokenizer))
    return manifest


def manifest_digest(manifest: dict[str, Any]) -> str:
    """The artefact's digest: SHA-256 of its manifest without ``sha256``, as
    canonical JSON (the manifest holds the graph's and the tokenizer's)."""
    body = {key: value for key, value in manifest.items() if key != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return _sha256(text.encode("ascii"))


def read_artefact(path: str | os.PathLike, sha256: str | None = None) -> Artefact:
    """Read an artefact, refusing it unless its graph, tokenizer and manifest
    are the ones its digests name (and, given ``sha256``, that digest).

    Raises
    ------
    ArtefactError
        If the file is not an skbert artefact, its manifest is not one skbert
        writes, a digest does not match, or the graph reads external data.
    """
    if sha256 is not None and not (
        isinstance(sha256, str) and _SHA256.fullmatch(sha256)
    ):
        raise ValueError(
            f"sha256 must be an artefact digest 'sha256:<64 hex digits>' as "
            f"export_onnx reports it; got {sha256!r}."
        )
    data = Path(path).read_bytes()
    graph_sha256, metadata = _split(data)
    if MANIFEST_KEY not in metadata or TOKENIZER_KEY not in metadata:
        raise ArtefactError(
            f"{os.fspath(path)!r} is not an skbert artefact: it has no "
            f"{MANIFEST_KEY!r} or {TOKENIZER_KEY!r} metadata. Write one with "
            "skbert.export_onnx (or `skbert export`)."
        )
    unknown = sorted(set(metadata) - {MANIFEST_KEY, TOKENIZER_KEY})
    if unknown:
        raise ArtefactError(
            f"Refusing {os.fspath(path)!r}: it has metadata entries skbert does not "
            f"write ({', '.join(map(repr, unknown))})."
        )
    try:
        manifest = json.loads(metadata[MANIFEST_KEY])
    except ValueError as exc:
        raise ArtefactError(f"the artefact's manifest is not JSON ({exc})") from None
    check_manifest(manifest)
    tokenizer = metadata[TOKENIZER_KEY]
    found = {
        "manifest": manifest_digest(manifest),
        "graph": graph_sha256,
        "tokenizer": _sha256(tokenizer.encode("utf-8")),
    }
    for part, digest in found.items():
        expected = manifest["sha256" if part == "manifest" else f"{part}_sha256"]
        if digest != expected:
            raise ArtefactError(
                f"Refusing {os.fspath(path)!r}: its {part} does not match its "
                f"digest (expected {expected}, found {digest}). The file was "
                "damaged or altered; export it again."
            )
    if sha256 is not None and manifest["sha256"] != sha256:
        raise ArtefactError(
            f"Refusing {os.fspath(path)!r}: its digest is {manifest['sha256']}, not "
            f"the {sha256} it was expected to have. It is another export, or it "
            "was altered."
        )
    external = external_tensors(data)
    if external:
        raise ArtefactError(
            f"Refusing {os.fspath(path)!r}: its graph reads tensors from files "
            f"outside the artefact (ONNX external data: {', '.join(external[:3])}"
            f"{' ...' if len(external) > 3 else ''}). skbert writes every tensor "
            "into the file; export it again."
        )
    return Artefact(model=data, manifest=manifest, tokenizer=tokenizer)


# -- tensors stored outside the file ----------------------------------------
# Field numbers of onnx.proto that lead to a TensorProto.
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_FUNCTION_NODE = 7
_NODE_ATTRIBUTE = 5
_ATTRIBUTE_TENSOR, _ATTRIBUTE_GRAPH, _ATTRIBUTE_TENSORS, _ATTRIBUTE_GRAPHS = (
    5,
    6,
    10,
    11,
)
_ATTRIBUTE_SPARSE, _ATTRIBUTE_SPARSES = 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


def _messages(
    data: memoryview, wanted: dict[int, str]
) -> Iterator[tuple[str, memoryview]]:
    """``(kind, body)`` of the length-delimited fields of ``data`` whose numbers
    ``wanted`` names."""
    for number, start, value_start, end in _fields(data):
        if number in wanted:
            key_wire = data[start] & 7
            if key_wire != _LENGTH_DELIMITED:
                raise ArtefactError("the file is not a valid ONNX model (bad field)")
            yield wanted[number], data[value_start:end]


def external_tensors(model: bytes) -> list[str]:
    """Names of the tensors of a serialized ONNX model stored as external data
    (initializers, sparse initializers and constants, in subgraphs and
    functions too)."""
    found: list[str] = []
    pending = list(
        _messages(
            memoryview(model), {_MODEL_GRAPH: "graph", _MODEL_FUNCTIONS: "function"}
        )
    )
    inside = {
        "graph": {
            _GRAPH_NODE: "node",
            _GRAPH_INITIALIZER: "tensor",
            _GRAPH_SPARSE_INITIALIZER: "sparse",
        },
        "function": {_FUNCTION_NODE: "node"},
        "node": {_NODE_ATTRIBUTE: "attribute"},
        "attribute": {
            _ATTRIBUTE_TENSOR: "tensor",
            _ATTRIBUTE_TENSORS: "tensor",
            _ATTRIBUTE_GRAPH: "graph",
            _ATTRIBUTE_GRAPHS: "graph",
            _ATTRIBUTE_SPARSE: "sparse",
            _ATTRIBUTE_SPARSES: "sparse",
        },
        "sparse": {_SPARSE_VALUES: "tensor", _SPARSE_INDICES: "tensor"},
    }
    while pending:
        kind, body = pending.pop()
        if kind != "tensor":
            pending.extend(_messages(body, inside[kind]))
            continue
        name, external = "?", False
        for number, _, value_start, end in _fields(body):
            if number == _TENSOR_NAME:
                name = bytes(body[value_start:end]).decode("utf-8", "replace")
            elif number == _TENSOR_EXTERNAL_DATA:
                external = True
            elif number == _TENSOR_DATA_LOCATION:
                external |= _varint(body, value_start)[0] == _EXTERNAL
        if external:
            found.append(name)
    return found


# -- the manifest ----------------------------------------------------------
#: The fields of a manifest, and of its parts: nothing else is accepted.
_FIELDS = {
    "manifest": {
        "format",
        "format_version",
        "sha256",
        "graph_sha256",
        "tokenizer_sha256",
        "kind",
        "outputs",
        "classes",
        "n_features_out",
        "inputs",
        "tokenizer",
        "spec",
        "model",
        "steps",
        "quantized",
        "versions",
    },
    "tokenizer": {"prefix", "suffix", "pad_id"},
    "model": {"name", "model_type", "identity"},
    # the fields of skbert._core.plan.EncodingSpec (a test keeps them equal)
    "spec": {
        "pooling",
        "layers",
        "normalize",
        "max_length",
        "batch_size",
        "max_batch_tokens",
        "modes",
        "prompt",
        "lowercase",
        "skip",
        "dense",
        "output_size",
        "long_texts",
        "head_tokens",
        "stride",
        "chunk_combine",
    },
    "versions": set(EXPORT_PACKAGES),
}
#: ``long_texts`` strategies an artefact runs ("chunk" is not exported).
_EXPORTED_LONG_TEXTS = tuple(value for value in LONG_TEXTS if value != "chunk")


def _fail(what: str) -> ArtefactError:
    return ArtefactError(f"the artefact's manifest has an invalid {what}")


def _check_fields(value: object, part: str, *, all_of: bool = True) -> None:
    """``value`` is a JSON object with exactly the fields of ``part`` (or some
    of them, unless ``all_of``)."""
    what = "structure (not a JSON object)" if part == "manifest" else part
    if not isinstance(value, dict):
        raise _fail(what)
    unknown = sorted(set(value) - _FIELDS[part])
    missing = sorted(_FIELDS[part] - set(value)) if all_of else []
    prefix = "" if part == "manifest" else f"{part}."
    said = [
        f"{kind} field{'s' if len(names) > 1 else ''} "
        + ", ".join(repr(f"{prefix}{name}") for name in names)
        for kind, names in (("unknown", unknown), ("missing", missing))
        if names
    ]
    if said:
        raise _fail(f"{what}: {'; '.join(said)}")


def _is_int(value: object, low: int = 0, high: int = 2**31) -> bool:
    return type(value) is int and low <= value < high


def _check_ids(value: object, what: str) -> None:
    if not isinstance(value, list) or not all(_is_int(i) for i in value):
        raise _fail(what)


def _check_text(value: object, what: str, limit: int = 10_000) -> None:
    if not isinstance(value, str) or len(value) > limit:
        raise _fail(what)


def _check_choice(value: object, choices: tuple, what: str) -> None:
    if not isinstance(value, str) or value not in choices:
        raise _fail(f"{what} ({value!r}; one of {', '.join(choices)})")


def _check_spec(spec: object) -> None:
    """The fields of the :class:`~skbert._core.plan.EncodingSpec` the export
    ran (validated here, rebuilt by the runtime)."""
    _check_fields(spec, "spec")
    assert isinstance(spec, dict)
    if not _is_int(spec.get("max_length"), 1, _MAX_LENGTH + 1):
        raise _fail("spec.max_length")
    max_length = spec["max_length"]
    ints = {"batch_size": 1, "output_size": 1}
    for name, low in ints.items():
        if not _is_int(spec.get(name), low):
            raise _fail(f"spec.{name}")
    for name in ("skip", "stride"):
        if not _is_int(spec.get(name), 0, max_length):
            raise _fail(f"spec.{name}")
    budget = spec.get("max_batch_tokens")
    if budget is not None and not _is_int(budget, 1):
        raise _fail("spec.max_batch_tokens")
    head = spec.get("head_tokens")
    if head is not None and not _is_int(head, 0, max_length):
        raise _fail("spec.head_tokens")
    for name in ("normalize", "lowercase", "dense"):
        if type(spec.get(name)) is not bool:
            raise _fail(f"spec.{name}")
    _check_text(spec.get("prompt"), "spec.prompt")
    _check_choice(spec.get("pooling"), POOLINGS, "spec.pooling")
    _check_choice(spec.get("long_texts"), _EXPORTED_LONG_TEXTS, "spec.long_texts")
    _check_choice(spec.get("chunk_combine"), CHUNK_COMBINES, "spec.chunk_combine")
    modes = spec.get("modes")
    if not isinstance(modes, list) or not modes:
        raise _fail("spec.modes")
    for mode in modes:
        _check_choice(mode, VECTOR_MODES, "spec.modes")
    _check_ids(spec.get("layers"), "spec.layers")
    if not spec["layers"]:
        raise _fail("spec.layers")


def check_manifest(manifest: object) -> None:
    """Refuse a manifest that skbert would not write: unknown or missing
    fields, values outside their vocabulary or range."""
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
    _check_fields(manifest, "manifest")
    for name in ("sha256", "graph_sha256", "tokenizer_sha256"):
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
        or not all(
            isinstance(name, str) and 0 < len(name) <= 200 for name in outputs.values()
        )
    ):
        raise _fail("outputs")
    inputs = manifest.get("inputs")
    if (
        not isinstance(inputs, list)
        or len(set(inputs)) != len(inputs)
        or not set(_REQUIRED_INPUTS) <= set(inputs) <= set(_INPUT_NAMES)
    ):
        raise _fail("inputs")
    classes = manifest.get("classes")
    if kind == "classifier" and (
        not isinstance(classes, list)
        or not classes
        or not all(type(c) in (str, int, float) for c in classes)
        or len({json.dumps(c) for c in classes}) != len(classes)
    ):
        raise _fail("classes")
    if kind == "transformer" and classes is not None:
        raise _fail("classes")
    _check_spec(manifest.get("spec"))
    spec = manifest["spec"]
    tokenizer = manifest.get("tokenizer")
    _check_fields(tokenizer, "tokenizer")
    assert isinstance(tokenizer, dict)
    _check_ids(tokenizer.get("prefix"), "tokenizer.prefix")
    _check_ids(tokenizer.get("suffix"), "tokenizer.suffix")
    if len(tokenizer["prefix"]) + len(tokenizer["suffix"]) >= spec["max_length"]:
        raise _fail("tokenizer (its special tokens leave no room for text)")
    if not _is_int(tokenizer.get("pad_id")):
        raise _fail("tokenizer.pad_id")
    if not _is_int(manifest.get("n_features_out"), 1):
        raise _fail("n_features_out")
    steps = manifest.get("steps")
    if not isinstance(steps, list) or not steps or len(steps) > 100:
        raise _fail("steps")
    for step in steps:
        _check_text(step, "step", 500)
    model = manifest.get("model")
    _check_fields(model, "model")
    assert isinstance(model, dict)
    for name in ("name", "model_type"):
        _check_text(model.get(name), f"model.{name}", 4096)
    if not (
        isinstance(model.get("identity"), str) and _SHA256.fullmatch(model["identity"])
    ):
        raise _fail("model.identity")
    versions = manifest.get("versions")
    _check_fields(versions, "versions")
    assert isinstance(versions, dict)
    if not all(
        isinstance(value, str | None) and len(value or "") < 100
        for value in versions.values()
    ):
        raise _fail("versions")
    if type(manifest.get("quantized")) is not bool:
        raise _fail("quantized")


def check_ids_known(manifest: dict[str, Any], vocabulary_size: int) -> None:
    """Refuse special-token ids the artefact's tokenizer does not have (they
    would fail only at predict, inside ONNX Runtime's embedding lookup)."""
    tokenizer = manifest["tokenizer"]
    ids = [*tokenizer["prefix"], *tokenizer["suffix"], tokenizer["pad_id"]]
    beyond = [i for i in ids if i >= vocabulary_size]
    if beyond:
        raise _fail(
            f"tokenizer: ids {beyond[:5]} are beyond its tokenizer's "
            f"{vocabulary_size} tokens"
        )
