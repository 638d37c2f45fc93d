"""Pickles that travel: a fitted vectorizer (or pipeline) keeps working in a fresh
process on a machine without the model folder, and carries no torch objects.

One module-level fixture fits and pickles everything, deletes the model folder
and loads every pickle in ONE fresh interpreter; the tests then check what that
process saw. Fresh processes start in a clean Hugging Face home, offline.
"""

from __future__ import annotations

import errno
import io
import pickle
import shutil
import tempfile

import joblib
import numpy as np
import pytest
from helpers import build_tiny_bert, run_python, vectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import skbert

TEXTS = [
    "a great film",
    "dull and far too long",
    "",
    "the story never goes anywhere at all",
    "שלום 😀",
    "fun",
]
LABELS = [1, 0, 0, 0, 1, 1]

CHILD = """
import pickle
import sys
from pathlib import Path

import joblib

work = Path(CONFIG["work"])
texts = CONFIG["texts"]
results = {}


class RecordingUnpickler(pickle.Unpickler):
    def __init__(self, file):
        super().__init__(file)
        self.modules = set()

    def find_class(self, module, name):
        self.modules.add(module)
        return super().find_class(module, name)


def load(path):
    if path.suffix == ".joblib":
        return joblib.load(path), None
    with open(path, "rb") as handle:
        unpickler = RecordingUnpickler(handle)
        return unpickler.load(), sorted(unpickler.modules)


# Unpickling alone must not need torch.
load(work / "vec.pkl")
results["torch_imported_by_unpickling"] = "torch" in sys.modules

# Damaged pickles first, while no model is loaded in this process.
for name in CONFIG["corrupted"]:
    try:
        vectors = pickle.loads((work / name).read_bytes()).transform(texts)
    except Exception as exc:
        results[name] = {"error": type(exc).__name__, "message": str(exc)}
    else:
        results[name] = {"error": None, "vectors": vectors}

for name in CONFIG["pickles"]:
    obj, modules = load(work / name)
    entry = {"modules": modules}
    if hasattr(obj, "predict"):
        entry["predict"] = obj.predict(texts)
        entry["proba"] = obj.predict_proba(texts)
        entry["vectors"] = obj[:-1].transform(texts)
        entry["params"] = {
            step: estimator.get_params() for step, estimator in obj.steps
        }
    else:
        entry["vectors"] = obj.transform(texts)
        entry["params"] = obj.get_params()
    results[name] = entry

(work / "results.pkl").write_bytes(pickle.dumps(results))
"""


def flip_weight_bytes(blob: bytes, estimator) -> bytes:
    """``blob`` with 64 bytes inverted in the middle of the stored tensor data."""
    safetensors_bytes = estimator.model_.__getstate__()["_bundle"]["model.safetensors"]
    header_length = int.from_bytes(safetensors_bytes[:8], "little")
    start = blob.find(safetensors_bytes[: 8 + header_length])
    assert start >= 0, "weights not found in the pickle"
    data_start = start + 8 + header_length
    middle = data_start + (len(safetensors_bytes) - 8 - header_length) // 2
    damaged = bytearray(blob)
    for position in range(middle, middle + 64):
        damaged[position] ^= 0xFF
    return bytes(damaged)


@pytest.fixture(scope="module")
def travelled(tmp_path_factory, tiny_model_dir):
    """Fit, pickle, delete the model folder, load everything in a fresh process."""
    work = tmp_path_factory.mktemp("persistence")
    model = shutil.copytree(tiny_model_dir, work / "model")
    reference_model = shutil.copytree(tiny_model_dir, work / "reference-model")

    fitted = vectorizer(model, pooling="mean").fit(TEXTS)
    pipeline = Pipeline(
        [
            ("bert", vectorizer(model, pooling="cls", normalize=True)),
            ("clf", LogisticRegression()),
        ]
    ).fit(TEXTS, LABELS)
    by_reference = vectorizer(reference_model, pooling="max", persist="reference")
    by_reference.fit(TEXTS)

    expected = {
        "vec": {"vectors": fitted.transform(TEXTS), "params": fitted.get_params()},
        "pipe": {
            "vectors": pipeline[:-1].transform(TEXTS),
            "predict": pipeline.predict(TEXTS),
            "proba": pipeline.predict_proba(TEXTS),
            "params": {step: est.get_params() for step, est in pipeline.steps},
        },
        "ref": {
            "vectors": by_reference.transform(TEXTS),
            "params": by_reference.get_params(),
        },
    }
    blobs = {
        "vec.pkl": pickle.dumps(fitted),
        "pipe.pkl": pickle.dumps(pipeline),
        "ref.pkl": pickle.dumps(by_reference),
        "unfitted.pkl": pickle.dumps(vectorizer(model)),
    }
    blobs["corrupted-weights.pkl"] = flip_weight_bytes(blobs["vec.pkl"], fitted)
    blobs["truncated.pkl"] = blobs["vec.pkl"][: len(blobs["vec.pkl"]) // 2]
    for name, blob in blobs.items():
        (work / name).write_bytes(blob)
    joblib.dump(fitted, work / "vec.joblib")
    joblib.dump(pipeline, work / "pipe.joblib")

    shutil.rmtree(model)
    config = {
        "work": str(work),
        "texts": TEXTS,
        "corrupted": ["corrupted-weights.pkl", "truncated.pkl"],
        "pickles": ["vec.pkl", "vec.joblib", "pipe.pkl", "pipe.joblib", "ref.pkl"],
    }
    run_python(f"CONFIG = {config!r}\n" + CHILD, cwd=work)
    results = pickle.loads((work / "results.pkl").read_bytes())
    return {
        "work": work,
        "results": results,
        "expected": expected,
        "blobs": blobs,
        "reference_model": reference_model,
        "fitted": fitted,
        "by_reference": by_reference,
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vec.pkl", "vec.joblib"])
def test_vectorizer_round_trip_in_a_fresh_process_without_the_folder(travelled, name):
    seen = travelled["results"][name]
    expected = travelled["expected"]["vec"]

    np.testing.assert_allclose(seen["vectors"], expected["vectors"], atol=1e-6, rtol=0)
    assert seen["params"] == expected["params"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pipe.pkl", "pipe.joblib"])
def test_pipeline_round_trip_in_a_fresh_process_without_the_folder(travelled, name):
    seen = travelled["results"][name]
    expected = travelled["expected"]["pipe"]

    np.testing.assert_allclose(seen["vectors"], expected["vectors"], atol=1e-6, rtol=0)
    np.testing.assert_array_equal(seen["predict"], expected["predict"])
    np.testing.assert_allclose(seen["proba"], expected["proba"], atol=1e-6, rtol=0)
    assert seen["params"] == expected["params"]


@pytest.mark.slow
def test_model_folder_was_really_gone(travelled):
    assert not (travelled["work"] / "model").exists()
    assert travelled["expected"]["vec"]["params"]["model_name_or_path"].endswith(
        "model"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vec.pkl", "pipe.pkl", "ref.pkl"])
def test_pickle_references_no_torch_or_transformers(travelled, name):
    modules = travelled["results"][name]["modules"]

    assert modules, "the recording unpickler saw no classes"
    assert any(module.startswith("skbert") for module in modules)
    heavy = [m for m in modules if m.split(".")[0] in {"torch", "transformers"}]
    assert heavy == []


@pytest.mark.slow
def test_unpickling_does_not_import_torch(travelled):
    assert travelled["results"]["torch_imported_by_unpickling"] is False


@pytest.mark.slow
def test_weights_pickle_holds_the_weights(travelled, tiny_model_dir):
    weights = (tiny_model_dir / "model.safetensors").stat().st_size

    assert len(travelled["blobs"]["vec.pkl"]) > weights


@pytest.mark.slow
def test_unfitted_pickle_is_small(travelled):
    assert len(travelled["blobs"]["unfitted.pkl"]) < 5_000


@pytest.mark.slow
def test_reference_pickle_is_small_and_gives_identical_vectors(travelled):
    seen = travelled["results"]["ref.pkl"]
    expected = travelled["expected"]["ref"]

    assert len(travelled["blobs"]["ref.pkl"]) < 50_000
    np.testing.assert_allclose(seen["vectors"], expected["vectors"], atol=1e-6, rtol=0)
    assert seen["params"] == expected["params"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["corrupted-weights.pkl", "truncated.pkl"])
def test_damaged_pickle_fails_loudly_in_a_fresh_process(travelled, name):
    seen = travelled["results"][name]

    assert seen["error"] is not None, "a damaged pickle returned vectors"
    if name == "corrupted-weights.pkl":
        assert seen["error"] == "FingerprintMismatchError"
        assert "corrupted" in seen["message"]


@pytest.mark.slow
def test_damaged_pickle_fails_loudly_where_the_model_is_loaded(travelled):
    # Where the intact model is already loaded (as in the process that fitted
    # it), a damaged pickle must still not be accepted as if it were intact.
    pickle.loads(travelled["blobs"]["vec.pkl"]).transform(TEXTS[:1])
    damaged = pickle.loads(travelled["blobs"]["corrupted-weights.pkl"])

    with pytest.raises(Exception):  # noqa: B017 - any loud failure will do
        damaged.transform(TEXTS)


REFERENCE_CHILD = """
import json
import pickle
from pathlib import Path

estimator = pickle.loads(Path(CONFIG["pickle"]).read_bytes())
try:
    estimator.transform(["a great film"])
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
else:
    print(json.dumps({"error": None}))
"""


@pytest.mark.slow
def test_reference_pickle_refuses_changed_weights(travelled, tmp_path):
    import json

    expected_fingerprint = travelled["by_reference"].fingerprint_
    folder = travelled["reference_model"]
    build_tiny_bert(folder, seed=1)  # other weights, same folder and file names
    found_fingerprint = vectorizer(folder).fit(["probe"]).fingerprint_
    assert found_fingerprint != expected_fingerprint

    config = {"pickle": str(travelled["work"] / "ref.pkl")}
    output = run_python(f"CONFIG = {config!r}\n" + REFERENCE_CHILD, cwd=tmp_path)
    seen = json.loads(output.strip().splitlines()[-1])

    assert seen["error"] == "FingerprintMismatchError"
    assert expected_fingerprint in seen["message"]
    assert found_fingerprint in seen["message"]

    skbert.clear_model_cache()  # in this process too, once the old model is gone
    unpickled = pickle.loads(travelled["blobs"]["ref.pkl"])
    with pytest.raises(skbert.FingerprintMismatchError) as raised:
        unpickled.transform(["a great film"])
    assert expected_fingerprint in str(raised.value)
    assert found_fingerprint in str(raised.value)


@pytest.mark.slow
def test_pickle_and_joblib_agree_in_this_process(travelled):
    from_pickle = pickle.loads(travelled["blobs"]["vec.pkl"])
    from_joblib = joblib.load(io.BytesIO(_joblib_bytes(travelled["fitted"])))

    np.testing.assert_array_equal(
        from_pickle.transform(TEXTS), from_joblib.transform(TEXTS)
    )


def _joblib_bytes(estimator) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    return buffer.getvalue()


@pytest.mark.slow
def test_repickling_an_unpickled_vectorizer_keeps_the_weights(travelled, tmp_path):
    once = pickle.loads(travelled["blobs"]["vec.pkl"])
    once.transform(TEXTS[:1])
    twice = pickle.dumps(once)

    assert len(twice) > 0.9 * len(travelled["blobs"]["vec.pkl"])
    skbert.clear_model_cache()
    vectors = pickle.loads(twice).transform(TEXTS)
    np.testing.assert_allclose(
        vectors, travelled["expected"]["vec"]["vectors"], atol=1e-6, rtol=0
    )


def _no_space_left(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("persist", ["weights", "reference"])
def test_pickling_needs_no_temporary_folder(
    tiny_model_dir, tiny_oracle, monkeypatch, persist
):
    """With the temporary folder full, a fitted vectorizer still pickles (to
    memory, as to another disk) and gives the model's vectors when loaded
    (issue 25, item 4: the configuration was written to a temporary folder)."""
    fitted = vectorizer(tiny_model_dir, pooling="mean", persist=persist).fit(TEXTS)
    with monkeypatch.context() as full:
        full.setattr(tempfile, "mkdtemp", _no_space_left)
        full.setattr(tempfile, "mkstemp", _no_space_left)
        blob = pickle.dumps(fitted)
        joblib_blob = _joblib_bytes(fitted)
    skbert.clear_model_cache()
    for loaded in (pickle.loads(blob), joblib.load(io.BytesIO(joblib_blob))):
        np.testing.assert_allclose(
            loaded.transform(TEXTS),
            tiny_oracle.vectors(TEXTS, "mean"),
            atol=1e-5,
            rtol=0,
        )
