"""Persistence you can trust: skops round trips, hostile skops files, damaged
pickles, and models that changed on disk under a reference pickle or a cache.

``pickle``/``joblib`` run code while loading, so a file from an untrusted
source must be loaded with ``skops.io`` and an explicit list of trusted
types. Trusting skbert's three types must then not let the file run code or
write files either.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import run_python, vectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import skbert

sio = pytest.importorskip("skops.io")

TEXTS = ["a great film", "dull and far too long", "the best story", "bad"]
LABELS = [1, 0, 1, 0]
#: What skops cannot vouch for in a file holding a fitted vectorizer: exactly
#: skbert's own classes (numpy, scikit-learn and builtins are trusted by skops).
#: Public names, so that the list a user reviews survives any move of
#: skbert's private modules (issue 22).
SKBERT_TYPES = [
    "skbert.BertCLSVectorizer",
    "skbert.ModelHandle",
    "skbert.ModelSource",
]


# -- skops round trip -------------------------------------------------------

SKOPS_CHILD = """
import json
import skops.io as sio

result = {}
for name, path in CONFIG["files"].items():
    estimator = sio.load(path, trusted=CONFIG["trusted"])
    vectorizer = estimator if name == "vectorizer" else estimator.named_steps["bert"]
    result[name] = {
        "params": {k: repr(v) for k, v in vectorizer.get_params().items()},
        "vectors": vectorizer.transform(CONFIG["texts"]).tolist(),
    }
    if name == "pipeline":
        result[name]["proba"] = estimator.predict_proba(CONFIG["texts"]).tolist()
print(json.dumps(result))
"""


@pytest.mark.slow
def test_skops_round_trip_in_a_fresh_process_without_the_folder(
    tiny_model_copy, tmp_path
):
    bert = vectorizer(tiny_model_copy, pooling="mean").fit(TEXTS)
    pipeline = Pipeline(
        [("bert", vectorizer(tiny_model_copy)), ("clf", LogisticRegression())]
    ).fit(TEXTS, LABELS)
    files = {"vectorizer": tmp_path / "bert.skops", "pipeline": tmp_path / "pipe.skops"}
    sio.dump(bert, files["vectorizer"])
    sio.dump(pipeline, files["pipeline"])
    expected = {
        "vectorizer": (bert, bert.transform(TEXTS)),
        "pipeline": (
            pipeline.named_steps["bert"],
            pipeline.named_steps["bert"].transform(TEXTS),
        ),
    }

    for path in files.values():
        assert sorted(sio.get_untrusted_types(file=path)) == SKBERT_TYPES
        with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
            sio.load(path)  # nothing is trusted implicitly
    shutil.rmtree(tiny_model_copy)
    config = {
        "files": {name: str(path) for name, path in files.items()},
        "trusted": SKBERT_TYPES,
        "texts": TEXTS,
    }
    output = run_python(f"CONFIG = {config!r}\n" + SKOPS_CHILD, cwd=tmp_path)
    seen = json.loads(output.strip().splitlines()[-1])

    for name, (fitted, vectors) in expected.items():
        params = {k: repr(v) for k, v in fitted.get_params().items()}
        assert seen[name]["params"] == params
        np.testing.assert_allclose(seen[name]["vectors"], vectors, atol=1e-6, rtol=0)
    np.testing.assert_allclose(
        seen["pipeline"]["proba"], pipeline.predict_proba(TEXTS), atol=1e-6, rtol=0
    )


# -- hostile skops files ----------------------------------------------------


def dump_tampered(
    fitted: skbert.BertCLSVectorizer,
    path: Path,
    *,
    files: dict[str, bytes] | None = None,
    config: dict | None = None,
    trust_remote_code: bool = False,
) -> None:
    """Write ``fitted`` with altered model files, as an attacker could.

    The file is otherwise well formed (skops checks only types), so it lists
    exactly the same untrusted types as an honest one.
    """
    handle = fitted.model_
    bundle = dict(handle.__getstate__()["_bundle"])
    if config:
        bundle["config.json"] = json.dumps(
            {**json.loads(bundle["config.json"]), **config}
        ).encode()
    bundle.update(files or {})
    handle._bundle = bundle
    handle.models.clear()  # so that the altered bundle is what gets written
    handle.source = dataclasses.replace(
        handle.source, trust_remote_code=trust_remote_code
    )
    fitted.trust_remote_code = trust_remote_code
    sio.dump(fitted, path)
    assert sorted(sio.get_untrusted_types(file=path)) == SKBERT_TYPES


def test_skops_file_cannot_write_outside_its_temporary_folder(
    tiny_model_dir, tmp_path, monkeypatch
):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    relative = scratch / "escaped-relative.txt"  # one level above skbert's folder
    absolute = tmp_path / "escaped-absolute.txt"
    path = tmp_path / "hostile.skops"
    dump_tampered(
        vectorizer(tiny_model_dir).fit(["probe"]),
        path,
        files={"../escaped-relative.txt": b"x", str(absolute): b"x"},
    )
    skbert.clear_model_cache()  # a fresh process: the model is read from the file

    error = None
    try:
        sio.load(path, trusted=SKBERT_TYPES).transform(TEXTS)
    except ValueError as exc:
        error = exc

    written = [str(p) for p in (relative, absolute) if p.exists()]
    assert not written, f"loading a skops file wrote {written}"
    assert error is not None, "the altered file names were accepted"
    assert "escaped" in str(error)


REMOTE_CODE_CHILD = """
import skops.io as sio

try:
    model = sio.load(CONFIG["path"], trusted=CONFIG["trusted"])
    model.transform(["a great film"])
except Exception as exc:  # refusing the file is fine; running its code is not
    print("refused:", type(exc).__name__, exc)
else:
    print("transformed")
"""


@pytest.mark.slow
def test_skops_file_cannot_run_code_it_carries(tiny_model_dir, tmp_path):
    marker = tmp_path / "MARKER"
    code = (
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('code from a skops file ran')\n"
        "from transformers import BertConfig, BertModel\n"
        "class EvilConfig(BertConfig):\n    model_type = 'bert'\n"
        "class EvilModel(BertModel):\n    config_class = EvilConfig\n"
    )
    path = tmp_path / "hostile.skops"
    dump_tampered(
        vectorizer(tiny_model_dir).fit(["probe"]),
        path,
        files={"modeling_evil.py": code.encode()},
        config={
            "auto_map": {
                "AutoConfig": "modeling_evil.EvilConfig",
                "AutoModel": "modeling_evil.EvilModel",
            }
        },
        trust_remote_code=True,
    )
    config = {"path": str(path), "trusted": SKBERT_TYPES}

    output = run_python(f"CONFIG = {config!r}\n" + REMOTE_CODE_CHILD, cwd=tmp_path)

    assert not marker.exists(), f"code carried by a skops file ran ({output!r})"


# -- damaged pickles --------------------------------------------------------


@pytest.fixture(scope="module")
def weights_pickle(tiny_model_dir) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """A ``persist="weights"`` pickle and where each model file lies inside it."""
    fitted = vectorizer(tiny_model_dir).fit(["probe"])
    blob = pickle.dumps(fitted)
    spans = {}
    for name, data in fitted.model_.__getstate__()["_bundle"].items():
        start = blob.find(data)
        assert start >= 0, f"{name} is not stored as raw bytes in the pickle"
        spans[name] = (start, len(data))
    return blob, spans


def _flip(blob: bytes, offset: int) -> bytes:
    damaged = bytearray(blob)
    damaged[offset] ^= 0xFF
    return bytes(damaged)


def corruptions(blob: bytes, spans: dict[str, tuple[int, int]]) -> dict[str, bytes]:
    start, size = spans["model.safetensors"]
    header = int.from_bytes(blob[start : start + 8], "little")
    data = start + 8 + header  # first byte of tensor data
    cases = {
        "safetensors-length-prefix": _flip(blob, start),
        "safetensors-header-first": _flip(blob, start + 8),
        "safetensors-header-middle": _flip(blob, start + 8 + header // 2),
        "safetensors-header-last": _flip(blob, data - 1),
        "tensor-data-first": _flip(blob, data),
        "tensor-data-middle": _flip(blob, data + (start + size - data) // 2),
        "tensor-data-last": _flip(blob, start + size - 1),
    }
    for name, (file_start, file_size) in spans.items():
        if name != "model.safetensors":
            cases[f"{name}-middle"] = _flip(blob, file_start + file_size // 2)
    for fraction in (0.01, 0.25, 0.5, 0.9, 0.999):
        cases[f"truncated-{fraction:.1%}"] = blob[: int(len(blob) * fraction)]
    cases["truncated-last-byte"] = blob[:-1]
    return cases


def test_damaged_weights_pickle_never_gives_vectors(weights_pickle):
    blob, spans = weights_pickle
    gave_vectors = []
    for case, damaged in corruptions(blob, spans).items():
        skbert.clear_model_cache()  # as in a fresh process
        try:
            pickle.loads(damaged).transform(TEXTS)
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            assert str(exc), f"{case}: {type(exc).__name__} without a message"
        else:
            gave_vectors.append(case)
    assert not gave_vectors, f"damaged pickles gave vectors: {gave_vectors}"


def test_damage_message_says_what_to_do(weights_pickle):
    blob, spans = weights_pickle
    start, size = spans["model.safetensors"]
    skbert.clear_model_cache()

    with pytest.raises(ValueError) as raised:
        pickle.loads(_flip(blob, start + size // 2)).transform(TEXTS)

    message = str(raised.value).lower()
    assert "corrupted" in message or "damaged" in message
    assert "re-create" in message or "refit" in message


def test_altered_weights_behind_a_matching_checksum_are_refused(tiny_model_dir):
    # A tool that rewrites the pickle (checksum and all) with other tensor
    # bytes: the weights' fingerprint from fit still refuses them.
    fitted = vectorizer(tiny_model_dir).fit(["probe"])
    expected = fitted.fingerprint_
    handle = fitted.model_
    bundle = dict(handle.__getstate__()["_bundle"])
    weights = bytearray(bundle["model.safetensors"])
    weights[-1] ^= 0x01  # the last bit of the last tensor
    bundle["model.safetensors"] = bytes(weights)
    handle._bundle = bundle
    handle.models.clear()
    blob = pickle.dumps(fitted)
    skbert.clear_model_cache()

    with pytest.raises(skbert.FingerprintMismatchError) as raised:
        pickle.loads(blob).transform(TEXTS)

    message = str(raised.value)
    assert f"Expected fingerprint {expected}, found sha256:" in message
    assert "corrupted" in message


# -- the model changed on disk ----------------------------------------------


def swap_two_words_in_the_vocabulary(folder: Path) -> None:
    """The same weights, but "film" and "movie" now have each other's ids."""
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    vocab["film"], vocab["movie"] = vocab["movie"], vocab["film"]
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    lines = (folder / "vocab.txt").read_text().split("\n")
    i, j = lines.index("film"), lines.index("movie")
    lines[i], lines[j] = lines[j], lines[i]
    (folder / "vocab.txt").write_text("\n".join(lines))


def change_the_activation(folder: Path) -> None:
    """The same weights, but another activation function between them."""
    config = json.loads((folder / "config.json").read_text())
    config["hidden_act"] = "relu"
    (folder / "config.json").write_text(json.dumps(config))


CHANGES = {
    "tokenizer": swap_two_words_in_the_vocabulary,
    "config": change_the_activation,
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_reference_pickle_refuses_a_changed_tokenizer_or_config(
    tiny_model_copy, change
):
    fitted = vectorizer(tiny_model_copy, persist="reference").fit(["probe"])
    before = fitted.transform(TEXTS)
    blob = pickle.dumps(fitted)
    CHANGES[change](tiny_model_copy)
    after = vectorizer(tiny_model_copy).fit(["probe"])
    assert after.fingerprint_ == fitted.fingerprint_  # same weights...
    assert not np.allclose(after.transform(TEXTS), before)  # ...other vectors
    skbert.clear_model_cache()

    with pytest.raises(skbert.FingerprintMismatchError) as raised:
        pickle.loads(blob).transform(TEXTS)

    assert "changed since fit" in str(raised.value)


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_cache_never_serves_vectors_of_a_changed_tokenizer_or_config(
    tiny_model_copy, change
):
    stale = vectorizer(tiny_model_copy, cache="auto").fit_transform(TEXTS)
    CHANGES[change](tiny_model_copy)

    fresh = vectorizer(tiny_model_copy).fit_transform(TEXTS)
    cached = vectorizer(tiny_model_copy, cache="auto").fit_transform(TEXTS)

    assert not np.allclose(fresh, stale)
    np.testing.assert_array_equal(cached, fresh)
