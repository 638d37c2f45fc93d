"""``skbert.export_onnx`` and ``skbert.runtime``: the exported artefact predicts
what the Python pipeline predicts.

The oracles: the fitted scikit-learn pipeline itself (``predict``,
``predict_proba``, ``transform``) on 300 real review sentences (the shipped
UCI data, many longer than the tiny models' 64 tokens, so truncation takes
part), transformers' own ``BertModel`` run on each text alone, and
sentence-transformers for a folder's recipe. Tiny random BERT and RoBERTa
(no token types) checkpoints keep each export at about a second.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from families import build_family
from helpers import vectorizer
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

import skbert
from skbert import runtime
from skbert._core import artefact as _artefact
from skbert.datasets import load_sentiment_sentences

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

pytestmark = pytest.mark.filterwarnings("ignore::skbert.TruncationWarning")

#: Families whose export needs transformers 5.25 (5.4.0 cannot trace their
#: attention mask: the matrix's oldest end refuses them, with the reason).
NEEDS_NEWER_TRANSFORMERS = {"distilbert", "albert", "modernbert", "t5"}
OLD_TRANSFORMERS = tuple(
    int(part) for part in version("transformers").split(".")[:2]
) < (5, 25)


@pytest.fixture(scope="module")
def sentences() -> tuple[list[str], np.ndarray]:
    texts, labels = load_sentiment_sentences("yelp")
    return texts[:300], labels[:300]


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory, tiny_model_dir):
    roberta = build_family("roberta", tmp_path_factory.mktemp("roberta") / "model")
    return {"bert": tiny_model_dir, "roberta": roberta}


def fitted(folder, params, tail, texts, labels):
    return make_pipeline(vectorizer(folder, **params), *tail).fit(texts, labels)


def export(estimator, path, **options) -> runtime.ExportedPipeline:
    report = skbert.export_onnx(estimator, path, **options)
    assert report.path == path and path.stat().st_size == report.n_bytes
    return runtime.load(path)


CLASSIFIER_CASES = {
    "bert-cls-lr": ("bert", {"pooling": "cls"}, [LogisticRegression(max_iter=500)]),
    "bert-pooler-sgd-log": (
        "bert",
        {"pooling": "pooler"},
        [SGDClassifier(loss="log_loss", random_state=0)],
    ),
    "bert-mean-scaler-pca-lr": (
        "bert",
        {"pooling": "mean", "batch_size": 7},
        [StandardScaler(), PCA(8, random_state=0), LogisticRegression()],
    ),
    "bert-max-normalize-linearsvc": (
        "bert",
        {"pooling": "max", "normalize": True},
        [LinearSVC(random_state=0)],
    ),
    "bert-layers-mean-lr": (
        "bert",
        {"pooling": "mean", "layers": (1, -1), "max_batch_tokens": 200},
        [LogisticRegression(max_iter=500)],
    ),
    "roberta-cls-lr": ("roberta", {"pooling": "cls"}, [LogisticRegression()]),
    "roberta-mean-sgd-hinge": (
        "roberta",
        {"pooling": "mean", "max_length": 16},
        [SGDClassifier(random_state=0)],
    ),
    "roberta-layers-max-lr": (
        "roberta",
        {"pooling": "max", "layers": (0, -1)},
        [LogisticRegression(max_iter=500)],
    ),
    "roberta-trusted-pooler-lr": (
        "roberta",
        {"pooling": "pooler", "trust_pooler": True},
        [LogisticRegression()],
    ),
}


@pytest.mark.parametrize("case", CLASSIFIER_CASES)
def test_the_artefact_predicts_what_the_pipeline_predicts(
    case, family_dirs, sentences, tmp_path
):
    family, params, tail = CLASSIFIER_CASES[case]
    texts, labels = sentences
    pipe = fitted(family_dirs[family], params, tail, texts, labels)

    model = export(pipe, tmp_path / "model.onnx")

    np.testing.assert_array_equal(model.predict(texts), pipe.predict(texts))
    np.testing.assert_allclose(
        model.embed(texts), pipe[0].transform(texts), atol=1e-5, rtol=0
    )
    if hasattr(pipe, "predict_proba"):
        np.testing.assert_allclose(
            model.predict_proba(texts), pipe.predict_proba(texts), atol=1e-5, rtol=0
        )
    else:
        with pytest.raises(AttributeError, match="has no predict_proba"):
            model.predict_proba(texts)
    np.testing.assert_array_equal(model.classes_, pipe.classes_)


def test_string_labels_come_back_as_the_pipeline_gives_them(
    tiny_model_dir, sentences, tmp_path
):
    texts, labels = sentences
    names = np.where(labels == 1, "positive", "negative")
    pipe = fitted(
        tiny_model_dir, {"pooling": "mean"}, [LogisticRegression()], texts, names
    )

    model = export(pipe, tmp_path / "model.onnx")

    found = model.predict(texts)
    assert found.dtype == pipe.predict(texts).dtype
    np.testing.assert_array_equal(found, pipe.predict(texts))
    assert model.manifest["classes"] == ["negative", "positive"]


@pytest.mark.parametrize(
    "pooling, layers",
    [("cls", -1), ("pooler", -1), ("mean", -1), ("max", -1), ("mean", (0, 1, -1))],
)
def test_exported_vectors_equal_transformers_own_model(
    tiny_model_dir, tiny_oracle, sentences, tmp_path, pooling, layers
):
    # the oracle runs BertModel on each text alone and pools with numpy
    texts = sentences[0][:60]
    vectors = vectorizer(tiny_model_dir, pooling=pooling, layers=layers).fit(texts)

    model = export(vectors, tmp_path / "vectors.onnx")

    expected = tiny_oracle.vectors(texts, pooling, layers=layers)
    np.testing.assert_allclose(model.transform(texts), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(model.embed(texts), expected, atol=1e-5, rtol=0)


def test_a_transformer_pipeline_exports_its_transform(family_dirs, sentences, tmp_path):
    texts, _ = sentences
    pipe = make_pipeline(
        vectorizer(family_dirs["roberta"], pooling="mean"), PCA(5, random_state=0)
    ).fit(texts)

    model = export(pipe, tmp_path / "pca.onnx")

    np.testing.assert_allclose(
        model.transform(texts), pipe.transform(texts), atol=1e-5, rtol=0
    )
    assert model.transform([]).shape == (0, 5)
    with pytest.raises(AttributeError, match="has no predict"):
        model.predict(texts)


RECIPES = {
    "mean_sqrt_len": {"pooling": "mean_sqrt_len_tokens", "dense": None},
    "weightedmean": {"pooling": "weightedmean", "dense": None},
    "lasttoken": {"pooling": "lasttoken", "dense": None, "normalize": False},
    "cls+mean, dense, normalize": {"pooling": ("cls", "mean"), "dense": 8},
    "prompt left out of the pooling": {
        "pooling": "mean",
        "prompts": {"query": "query: "},
        "default_prompt_name": "query",
        "include_prompt": False,
    },
}


@pytest.mark.parametrize("recipe", RECIPES)
def test_a_sentence_transformers_recipe_is_inside_the_graph(
    tiny_model_dir, sentences, tmp_path, recipe
):
    from test_recipe import build_st_folder, st_encode

    folder = build_st_folder(tiny_model_dir, tmp_path / "st", **RECIPES[recipe])
    texts = sentences[0][:100]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        vectors = vectorizer(folder, pooling="auto").fit(texts)

    model = export(vectors, tmp_path / "recipe.onnx")

    np.testing.assert_allclose(
        model.transform(texts), st_encode(folder, texts), atol=1e-5, rtol=0
    )
    np.testing.assert_allclose(
        model.transform(texts), vectors.transform(texts), atol=1e-5, rtol=0
    )


# -- the manifest, the report and the runtime's behaviour ---------------------
@pytest.fixture(scope="module")
def classifier(tiny_model_dir, sentences, tmp_path_factory):
    """A fitted pipeline and its artefact. Never modify either."""
    texts, labels = sentences
    pipe = fitted(
        tiny_model_dir, {"pooling": "mean"}, [LogisticRegression()], texts, labels
    )
    path = tmp_path_factory.mktemp("artefact") / "sentiment.onnx"
    report = skbert.export_onnx(pipe, path)
    return pipe, path, report


def test_the_report_and_the_manifest_say_what_was_written(classifier, tiny_model_dir):
    pipe, path, report = classifier
    vectors = pipe[0]

    assert report.kind == "classifier" and not report.quantized
    assert report.methods == ("predict", "predict_proba", "embed")
    assert report.agreement == 1.0 and report.vector_difference <= 1e-5
    assert report.n_checked == len(skbert._export.check.CHECK_TEXTS) + 1
    assert "same prediction on 100.0%" in str(report)
    manifest = runtime.load(path).manifest
    tokenizer = vectors.model_.torch_model.tokenizer
    assert manifest["graph_sha256"] == report.graph_sha256
    assert manifest["tokenizer"] == {
        "prefix": tokenizer.prefix,
        "suffix": tokenizer.suffix,
        "pad_id": tokenizer.pad_id,
    }
    assert manifest["spec"]["max_length"] == 64
    # batch_size="auto" (the default) as the runtime's device, a CPU, reads it
    assert vectors.batch_size == "auto" and manifest["spec"]["batch_size"] == 32
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["classes"] == [0, 1]
    assert manifest["model"]["identity"] == vectors.model_.identity.digest
    assert manifest["versions"]["skl2onnx"] and manifest["versions"]["torch"]


def test_the_runtime_reads_texts_as_transform_does(classifier, texts):
    pipe, path, _ = classifier
    model = runtime.load(path, threads=1)
    long_text = "the film " * 40  # 81 tokens, more than the model's 64
    batch = [*texts, long_text]

    with pytest.warns(skbert.TruncationWarning) as caught:
        found = model.predict_proba(np.asarray(batch, dtype=object))
    assert caught[0].message.positions == [len(texts)]
    np.testing.assert_allclose(found, pipe.predict_proba(batch), atol=1e-5, rtol=0)
    assert model.predict([]).shape == (0,)
    assert model.predict_proba([]).shape == (0, 2)
    assert model.embed([]).shape == (0, 32)
    with pytest.raises(ValueError, match="string object received"):
        model.predict("a single text")
    with pytest.raises(TypeError, match="position 1 is 3"):
        model.predict(["fine", 3])
    assert "LogisticRegression" in repr(model)


def _graph_bytes(path) -> bytes:
    """An artefact's ONNX model without its metadata entries."""
    view = memoryview(path.read_bytes())
    return b"".join(
        bytes(view[start:end])
        for number, start, _, end in _artefact._fields(view)
        if number != _artefact._METADATA_FIELD
    )


def _rewrite(
    source, target, *, graph=None, manifest=None, tokenizer=None, sign=False, extra=()
):
    """Write ``source``'s artefact again with one part replaced, keeping the
    manifest (and its digests) unless given. ``sign``: compute the graph's,
    the tokenizer's and the manifest's digests again, as someone who edits
    the file knowingly would; ``extra``: metadata entries appended."""
    _, metadata = _artefact._split(source.read_bytes())
    manifest = dict(manifest or json.loads(metadata[_artefact.MANIFEST_KEY]))
    graph = graph if graph is not None else _graph_bytes(source)
    tokenizer = (
        tokenizer if tokenizer is not None else metadata[_artefact.TOKENIZER_KEY]
    )
    if sign:
        manifest["graph_sha256"] = _artefact._split(graph)[0]
        manifest["tokenizer_sha256"] = _artefact._sha256(tokenizer.encode())
        manifest["sha256"] = _artefact.manifest_digest(manifest)
    with open(target, "wb") as handle:
        handle.write(graph)
        handle.write(_artefact._entry(_artefact.MANIFEST_KEY, json.dumps(manifest)))
        handle.write(_artefact._entry(_artefact.TOKENIZER_KEY, tokenizer))
        for key, value in extra:
            handle.write(_artefact._entry(key, value))
    return target


def test_a_tokenizer_that_does_not_match_the_manifest_is_refused(classifier, tmp_path):
    _, path, _ = classifier
    tokenizer = json.loads(runtime.load(path)._tokenizer._tokenizer.to_str())
    tokenizer["model"]["vocab"]["film"], tokenizer["model"]["vocab"]["movie"] = (
        tokenizer["model"]["vocab"]["movie"],
        tokenizer["model"]["vocab"]["film"],
    )
    altered = _rewrite(path, tmp_path / "altered.onnx", tokenizer=json.dumps(tokenizer))

    with pytest.raises(runtime.ArtefactError, match="its tokenizer does not match"):
        runtime.load(altered)
    # the untouched file still loads, through the same rewriting
    runtime.load(_rewrite(path, tmp_path / "same.onnx"))


def test_a_graph_that_does_not_match_the_manifest_is_refused(
    classifier, tiny_model_dir, sentences, tmp_path
):
    _, path, _ = classifier
    texts, labels = sentences
    other = fitted(
        tiny_model_dir, {"pooling": "max"}, [LogisticRegression()], texts, labels
    )
    skbert.export_onnx(other, tmp_path / "other.onnx")
    other_graph = _graph_bytes(tmp_path / "other.onnx")

    swapped = _rewrite(path, tmp_path / "swapped.onnx", graph=other_graph)

    with pytest.raises(runtime.ArtefactError, match="its graph does not match"):
        runtime.load(swapped)
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 3] ^= 0x01  # one bit, inside the weights
    (tmp_path / "damaged.onnx").write_bytes(bytes(damaged))
    with pytest.raises(
        runtime.ArtefactError, match="graph does not match|not a valid ONNX model"
    ):
        runtime.load(tmp_path / "damaged.onnx")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kind": "regressor"}, "invalid kind"),
        ({"format_version": 99}, "format version 99"),
        ({"tokenizer": {"prefix": ["x"], "suffix": [], "pad_id": 0}}, "prefix"),
        ({"outputs": {"predict": "label"}}, "invalid outputs"),
        ({"spec": {"max_length": -1}}, "spec"),
    ],
)
def test_a_manifest_skbert_would_not_write_is_refused(
    classifier, tmp_path, change, message
):
    _, path, _ = classifier
    manifest = {**runtime.load(path).manifest, **change}
    with pytest.raises(runtime.ArtefactError, match=message):
        runtime.load(_rewrite(path, tmp_path / "bad.onnx", manifest=manifest))


def test_other_runtime_versions_than_the_export_s_are_warned_about(
    classifier, tmp_path
):
    _, path, _ = classifier
    manifest = runtime.load(path).manifest
    manifest["versions"] = {**manifest["versions"], "tokenizers": "0.0.1"}
    # as an export with tokenizers 0.0.1 writes it: signed
    moved = _rewrite(path, tmp_path / "moved.onnx", manifest=manifest, sign=True)

    with pytest.warns(skbert.InconsistentVersionWarning) as caught:
        runtime.load(moved)
    assert [w.message.package for w in caught] == ["tokenizers"]
    assert "exported with tokenizers 0.0.1 and runs with tokenizers" in str(
        caught[0].message
    )
    assert caught[0].filename == __file__


def test_an_onnx_file_without_a_manifest_is_not_an_artefact(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), tmp_path / "plain.onnx")
    with pytest.raises(runtime.ArtefactError, match="not an skbert artefact"):
        runtime.load(tmp_path / "plain.onnx")


# -- what is refused -----------------------------------------------------------
class Clip(TransformerMixin, BaseEstimator):
    """A step of the user's own, which skl2onnx has no converter for."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.clip(X, -1, 1)


def test_a_step_skl2onnx_cannot_convert_is_refused_by_name(
    tiny_model_dir, sentences, tmp_path
):
    texts, labels = sentences
    pipe = fitted(tiny_model_dir, {}, [Clip(), LogisticRegression()], texts, labels)
    with pytest.raises(ValueError, match=r"step 'clip' \(Clip\) cannot be exported"):
        skbert.export_onnx(pipe, tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


def test_what_is_not_an_exportable_estimator_is_refused(
    tiny_model_dir, tmp_path, family_dirs
):
    with pytest.raises(TypeError, match="first step is one"):
        skbert.export_onnx(make_pipeline(StandardScaler()), tmp_path / "x.onnx")
    with pytest.raises(NotFittedError):
        skbert.export_onnx(vectorizer(tiny_model_dir), tmp_path / "x.onnx")
    fitted_vectors = vectorizer(tiny_model_dir).fit(["a"])
    with pytest.raises(ValueError, match="at least one text"):
        skbert.export_onnx(fitted_vectors, tmp_path / "x.onnx", check_texts=[])
    with pytest.raises(FileNotFoundError, match="No folder"):
        skbert.export_onnx(fitted_vectors, tmp_path / "missing" / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_a_family_that_is_not_exported_is_refused_before_any_work(
    tmp_path, monkeypatch
):
    """Every family skbert runs is exported now (issue 24); a model type
    outside the list is refused, naming the list, before anything is written."""
    import skbert._encoding.spec

    distilbert = build_family("distilbert", tmp_path / "distilbert")
    fitted_vectors = vectorizer(distilbert).fit(["a"])
    import skbert._model.families

    monkeypatch.setattr(skbert._model.families, "ONNX_FAMILIES", ("bert",))
    with pytest.raises(ValueError, match="exports the encoders of bert; distilbert"):
        skbert.export_onnx(fitted_vectors, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize(
    "family", ["distilbert", "albert", "mpnet", "deberta-v2", "modernbert", "t5"]
)
def test_every_family_exports_and_the_runtime_predicts_as_the_pipeline(
    family, sentences, tmp_path
):
    """Families exported through their own forward (issue 24): the artefact
    gives the pipeline's vectors and predictions, long texts included."""
    texts, labels = sentences
    texts = [*texts[:80], " ".join(["film"] * 200)]
    labels = [*labels[:80], 1]
    folder = build_family(family, tmp_path / family)
    pipe = fitted(folder, {"pooling": "mean"}, [LogisticRegression()], texts, labels)
    if family in NEEDS_NEWER_TRANSFORMERS and OLD_TRANSFORMERS:
        with pytest.raises(ValueError, match="transformers 5.25 or newer"):
            skbert.export_onnx(pipe, tmp_path / "model.onnx")
        return

    model = export(pipe, tmp_path / "model.onnx")

    np.testing.assert_allclose(
        model.embed(texts), pipe[0].transform(texts), atol=1e-4, rtol=0
    )
    np.testing.assert_array_equal(model.predict(texts), pipe.predict(texts))


def test_an_int8_export_is_smaller_close_and_reports_its_cost(
    family_dirs, sentences, tmp_path
):
    texts, labels = sentences
    pipe = fitted(
        family_dirs["roberta"],
        {"pooling": "mean"},
        [LogisticRegression()],
        texts,
        labels,
    )
    float32 = skbert.export_onnx(pipe, tmp_path / "float32.onnx")

    report = skbert.export_onnx(
        pipe, tmp_path / "int8.onnx", quantize=True, check_texts=texts
    )

    assert report.quantized and report.n_bytes < float32.n_bytes
    model = runtime.load(report.path)
    assert model.manifest["quantized"]
    found, expected = model.embed(texts), pipe[0].transform(texts)
    assert not np.allclose(found, expected, atol=1e-5)  # it really is int8
    cosine = (found * expected).sum(1) / (
        np.linalg.norm(found, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() > 0.95
    agreement = np.mean(model.predict(texts) == pipe.predict(texts))
    assert report.agreement == pytest.approx(agreement)
    assert report.vector_difference == pytest.approx(np.abs(found - expected).max())


def test_skbert_export_on_the_command_line(classifier, tmp_path, capsys):
    import joblib

    from skbert._cli import commands as _cli

    pipe, _, _ = classifier
    joblib.dump(pipe, tmp_path / "sentiment.joblib")
    (tmp_path / "check.txt").write_text("great food\nawful service\n", encoding="utf-8")

    code = _cli.main(
        [
            "export",
            str(tmp_path / "sentiment.joblib"),
            str(tmp_path / "out.onnx"),
            "--check-texts",
            str(tmp_path / "check.txt"),
        ]
    )

    out = capsys.readouterr().out
    assert code == 0 and "on 2 texts" in out and "LogisticRegression" in out
    model = runtime.load(tmp_path / "out.onnx")
    assert (
        model.predict(["great food"]).tolist() == pipe.predict(["great food"]).tolist()
    )
    joblib.dump(StandardScaler(), tmp_path / "scaler.joblib")
    code = _cli.main(
        ["export", str(tmp_path / "scaler.joblib"), str(tmp_path / "y.onnx")]
    )
    assert code == 1
    assert "first step is one" in capsys.readouterr().err


def test_head_tail_is_exported_and_chunk_is_refused(tiny_model_dir, tmp_path):
    import warnings

    long_texts = [" ".join(["great"] * 40 + ["dull"] * 60), "a fine film", "bad"] * 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skbert.TruncationWarning)
        head_tail = vectorizer(
            tiny_model_dir, pooling="mean", long_texts="head_tail", head_tokens=10
        ).fit(long_texts)
        model = export(head_tail, tmp_path / "head-tail.onnx")
        np.testing.assert_allclose(
            model.transform(long_texts),
            head_tail.transform(long_texts),
            atol=1e-5,
            rtol=0,
        )
    chunk = vectorizer(tiny_model_dir, long_texts="chunk").fit(["probe"])
    with pytest.raises(ValueError, match="long_texts='chunk'"):
        skbert.export_onnx(chunk, tmp_path / "chunk.onnx")


def test_skbert_export_of_a_file_that_is_no_model_is_one_line(tmp_path, capsys):
    from skbert._cli import commands as _cli

    (tmp_path / "reviews.csv").write_text("text,label\ngreat,1\n", encoding="utf-8")

    code = _cli.main(
        ["export", str(tmp_path / "reviews.csv"), str(tmp_path / "u.onnx")]
    )

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("skbert export: error: ") and "reviews.csv" in err[0]
    assert "joblib.dump" in err[0]


def test_export_without_the_extra_says_what_to_install(
    classifier, tmp_path, monkeypatch
):
    import sys

    pipe, _, _ = classifier
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed

    with pytest.raises(ImportError, match=r'pip install "skbert\[export\]"'):
        skbert.export_onnx(pipe, tmp_path / "x.onnx")


@pytest.mark.parametrize("missing", ["onnxruntime", "tokenizers"])
def test_the_runtime_without_its_packages_says_what_to_install(
    classifier, monkeypatch, missing
):
    """As the export does: a missing package of the runtime names the extra
    and the packages (it was Python's bare 'No module named ...')."""
    import sys

    _, path, _ = classifier
    monkeypatch.setitem(sys.modules, missing, None)  # as if it were not installed

    with pytest.raises(ImportError, match=r'pip install "skbert\[runtime\]"') as raised:
        runtime.load(path)
    assert missing in str(raised.value)


def test_an_export_hides_no_warning_of_another_thread(make_tiny_bert, tmp_path):
    """Another thread warns all through an export (its ONNX graph and the
    classifier's conversion): every one of its warnings reaches the user
    (issue 25, item 5: the export silenced warnings process-wide), while the
    exporters' own notes stay hidden."""
    texts, labels = load_sentiment_sentences("yelp")
    pipeline = make_pipeline(
        vectorizer(make_tiny_bert(), pooling="mean"), LogisticRegression()
    ).fit(texts[:40], labels[:40])
    done, emitted = threading.Event(), []

    def warn_until_done() -> None:
        while not done.is_set():
            warnings.warn(f"tick {len(emitted)}", UserWarning, stacklevel=1)
            emitted.append(1)
            time.sleep(0.0005)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        other = threading.Thread(target=warn_until_done)
        other.start()
        try:
            skbert.export_onnx(pipeline, tmp_path / "model.onnx")
        finally:
            done.set()
            other.join()
    ticks = [w for w in caught if str(w.message).startswith("tick")]
    assert len(emitted) > 100  # the other thread ran all through the export
    assert len(ticks) == len(emitted)
    others = [str(w.message) for w in caught if w not in ticks]
    assert others == []  # nothing from torch's exporter or skl2onnx


# -- the artefact is one signed unit (issue 25, items 8 to 10) ---------------
def _manifest_of(path) -> dict:
    _, metadata = _artefact._split(path.read_bytes())
    return json.loads(metadata[_artefact.MANIFEST_KEY])


def _edited(manifest: dict, dotted: str, value) -> dict:
    """A deep copy of ``manifest`` with the field ``dotted`` (``"spec.prompt"``)
    set to ``value``."""
    manifest = json.loads(json.dumps(manifest))
    *parents, name = dotted.split(".")
    target = manifest
    for parent in parents:
        target = target[parent]
    target[name] = value(target[name]) if callable(value) else value
    return manifest


MANIFEST_EDITS = {
    "spec.prompt": "query: ",
    "spec.max_length": 16,
    "tokenizer.prefix": [5],
    "classes": lambda classes: classes[::-1],
    "versions.onnxruntime": "1.0.0",
}


@pytest.mark.parametrize("field", MANIFEST_EDITS)
def test_an_edited_manifest_is_refused(classifier, tmp_path, field):
    """Each edit changed predictions (or, for classes, made ``classes_`` disagree
    with ``predict``) and loaded; now the manifest's digest refuses it."""
    _, path, _ = classifier
    manifest = _edited(_manifest_of(path), field, MANIFEST_EDITS[field])
    edited = _rewrite(path, tmp_path / "edited.onnx", manifest=manifest)

    with pytest.raises(runtime.ArtefactError, match="its manifest does not match"):
        runtime.load(edited)


def test_a_second_manifest_is_refused(classifier, tmp_path):
    """Appended after the first, it won."""
    _, path, _ = classifier
    manifest = _edited(_manifest_of(path), "spec.prompt", "query: ")
    manifest["sha256"] = _artefact.manifest_digest(manifest)
    doubled = _rewrite(
        path,
        tmp_path / "doubled.onnx",
        extra=[(_artefact.MANIFEST_KEY, json.dumps(manifest))],
    )

    with pytest.raises(runtime.ArtefactError, match="two metadata entries"):
        runtime.load(doubled)


def test_a_swapped_tokenizer_with_its_fingerprint_updated_is_refused(
    classifier, tmp_path
):
    _, path, _ = classifier
    tokenizer = json.loads(runtime.load(path)._tokenizer._tokenizer.to_str())
    vocab = tokenizer["model"]["vocab"]
    vocab["film"], vocab["movie"] = vocab["movie"], vocab["film"]
    text = json.dumps(tokenizer)
    manifest = _manifest_of(path)
    manifest["tokenizer_sha256"] = _artefact._sha256(text.encode())
    swapped = _rewrite(path, tmp_path / "s.onnx", manifest=manifest, tokenizer=text)

    with pytest.raises(runtime.ArtefactError, match="its manifest does not match"):
        runtime.load(swapped)


def test_no_bit_flip_in_the_manifest_loads(classifier, tmp_path):
    """40 seeded single-bit flips inside the manifest entry: 7 loaded (one as
    'onnz', one failing only at predict); every one is refused now."""
    _, path, _ = classifier
    data = path.read_bytes()
    _, metadata = _artefact._split(data)
    start = data.index(metadata[_artefact.MANIFEST_KEY].encode())
    length = len(metadata[_artefact.MANIFEST_KEY].encode())
    rng = np.random.default_rng(0)
    loaded = []
    for flip in range(40):
        damaged = bytearray(data)
        damaged[start + int(rng.integers(length))] ^= 1 << int(rng.integers(8))
        target = tmp_path / f"flip{flip}.onnx"
        target.write_bytes(bytes(damaged))
        try:
            runtime.load(target)
        except runtime.ArtefactError:
            continue
        loaded.append(flip)
    assert loaded == []


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("versions.onnz", "1.0", "unknown field 'versions.onnz'"),
        ("spec.long_texts", "trunccte", "spec.long_texts"),
        ("spec.modes", ["cls", "median"], "spec.modes"),
        ("spec.tokens", 3, "unknown field 'spec.tokens'"),
        ("tokenizer.prefix", list(range(5, 20_005)), "no room"),
        ("spec.head_tokens", 10**6, "spec.head_tokens"),
    ],
)
def test_a_signed_manifest_skbert_would_not_write_is_refused_at_load(
    classifier, tmp_path, field, value, message
):
    """Signed again, so only the check of each field can refuse it: at load,
    not at predict."""
    _, path, _ = classifier
    manifest = _edited(_manifest_of(path), field, value)
    forged = _rewrite(path, tmp_path / "forged.onnx", manifest=manifest, sign=True)

    with pytest.raises(runtime.ArtefactError, match=message):
        runtime.load(forged)


def test_a_special_token_id_beyond_the_vocabulary_is_refused_at_load(
    classifier, tmp_path
):
    _, path, _ = classifier
    manifest = _edited(_manifest_of(path), "tokenizer.prefix", [10**9])
    forged = _rewrite(path, tmp_path / "forged.onnx", manifest=manifest, sign=True)

    with pytest.raises(runtime.ArtefactError, match="beyond its tokenizer"):
        runtime.load(forged)


def test_a_pinned_digest_refuses_an_artefact_signed_again(classifier, tmp_path):
    """The file's own digest finds damage and edits; the digest the export
    reported, given to load, also refuses a forger who signed again."""
    _, path, report = classifier
    assert runtime.load(path, sha256=report.sha256).manifest["sha256"] == report.sha256
    manifest = _edited(_manifest_of(path), "spec.prompt", "query: ")
    forged = _rewrite(path, tmp_path / "forged.onnx", manifest=manifest, sign=True)
    runtime.load(forged)  # consistent in itself

    with pytest.raises(runtime.ArtefactError, match="not the sha256:"):
        runtime.load(forged, sha256=report.sha256)
    with pytest.raises(ValueError, match="sha256 must be"):
        runtime.load(path, sha256="deadbeef")


def _onnx_model(path):
    import onnx

    return onnx.load_from_string(_graph_bytes(path))


def test_a_graph_that_reads_external_data_is_refused(classifier, tmp_path, monkeypatch):
    """An initializer moved to a file next to the working folder, the digests
    signed again: ONNX Runtime read the file at load (issue 25, item 9)."""
    import onnx

    _, path, _ = classifier
    monkeypatch.chdir(tmp_path)
    model = _onnx_model(path)
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    Path("secret.bin").write_bytes(tensor.raw_data)
    onnx.external_data_helper.set_external_data(
        tensor, "secret.bin", offset=0, length=len(tensor.raw_data)
    )
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    forged = _rewrite(
        path, tmp_path / "forged.onnx", graph=model.SerializeToString(), sign=True
    )

    with pytest.raises(runtime.ArtefactError, match="external data") as raised:
        runtime.load(forged)
    assert tensor.name in str(raised.value)


def test_a_fixed_input_dimension_is_refused_at_load(classifier, tmp_path):
    """An input declared with 2**62 tokens loaded and failed only at predict."""
    _, path, _ = classifier
    model = _onnx_model(path)
    dim = model.graph.input[0].type.tensor_type.shape.dim[1]
    dim.Clear()
    dim.dim_value = 2**62
    forged = _rewrite(
        path, tmp_path / "forged.onnx", graph=model.SerializeToString(), sign=True
    )

    with pytest.raises(runtime.ArtefactError, match="input_ids"):
        runtime.load(forged)


def test_the_manifest_fields_are_the_encoding_spec_s(classifier):
    """The manifest's spec is checked field by field against the list the
    artefact reader keeps: it must name exactly the spec's fields."""
    import dataclasses

    from skbert._core.plan import EncodingSpec

    fields = {field.name for field in dataclasses.fields(EncodingSpec)}
    assert _artefact._FIELDS["spec"] == fields
    assert set(_manifest_of(classifier[1])) == _artefact._FIELDS["manifest"]
