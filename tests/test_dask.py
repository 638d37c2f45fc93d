"""skbert.dask on a real two-process ``LocalCluster``.

Oracles: the same fitted estimator's in-process ``transform``/``predict`` on
the same texts, and counters installed in each worker process that record
every model load (``load_folder``, where a fit and a fitted handle call it), every
unpickled model
handle and every partition that reached the encoder.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import shutil
import sys

import numpy as np
import pytest
from helpers import run_python, vectorizer
from sklearn.compose import make_column_transformer
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

pd = pytest.importorskip("pandas")
dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
db = pytest.importorskip("dask.bag")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

import skbert.dask  # noqa: E402

N_WORKERS = 2
#: In-process and worker vectors differ only by batch composition and thread
#: count (float32 summation order).
ATOL = 1e-6


def _worker_probes():
    """Functions that run inside the worker processes (via ``client.run``).

    Nested, so that they are pickled by value and the workers need not import
    this test module.
    """

    def install():
        import collections

        import skbert._encoding.encode
        import skbert._encoding.models
        import skbert._model.handle

        if hasattr(skbert._model.handle, "_probe_counts"):
            return
        counts = collections.Counter()
        load_folder = skbert._encoding.models.load_folder
        setstate = skbert._model.handle.ModelHandle.__setstate__
        encode = skbert._encoding.encode.encode

        def counting_load_folder(*args, **kwargs):
            counts["loads"] += 1
            return load_folder(*args, **kwargs)

        def counting_setstate(self, state):
            counts["unpickles"] += 1
            setstate(self, state)

        def counting_encode(texts, *args, **kwargs):
            counts["partitions"] += 1
            counts["texts"] += len(texts)
            return encode(texts, *args, **kwargs)

        # a fit reads a folder in models, a fitted handle its checkpoint in handle
        skbert._encoding.models.load_folder = counting_load_folder
        skbert._model.handle.load_folder = counting_load_folder
        skbert._model.handle.ModelHandle.__setstate__ = counting_setstate
        skbert._encoding.encode.encode = counting_encode
        skbert._model.handle._probe_counts = counts

    def read():
        import skbert._model.handle

        return dict(skbert._model.handle._probe_counts)

    def reset():
        import skbert
        import skbert._model.handle

        skbert.clear_model_cache()
        skbert._model.handle._probe_counts.clear()

    return install, read, reset


INSTALL, READ, RESET = _worker_probes()


@pytest.fixture(scope="module")
def client():
    # Workers inherit the environment: never contact the Hugging Face Hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    # Dask's Active Memory Manager drops, every 2 s, the copies of a broadcast
    # that no task on their worker waits for yet; such a worker fetches the
    # estimator again from a peer and unpickles it twice (seen once in CI, on
    # the worker with the fewest partitions). The counts below are skbert's
    # own: one unpickle per worker when the copies stay (docs/scaling.md).
    no_reduce = {"distributed.scheduler.active-memory-manager.start": False}
    with (
        dask.config.set(no_reduce),
        distributed.LocalCluster(
            n_workers=N_WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(INSTALL)
        yield client


@pytest.fixture
def counts(client):
    """Per-worker counters, zeroed (and worker model registries emptied)."""
    client.run(RESET)

    def read() -> dict[str, dict[str, int]]:
        return client.run(READ)

    return read


@pytest.fixture(scope="module")
def many_texts(texts) -> list[str]:
    """The conftest texts (empty string, many scripts), varied, then repeated."""
    return texts + [f"{text} {i}" for i, text in enumerate(texts)] + texts


@pytest.fixture(scope="module")
def labels(many_texts) -> np.ndarray:
    return np.array(["neg", "pos", "pos"] * (len(many_texts) // 3))


@pytest.fixture(scope="module")
def fitted_vectorizer(tiny_model_dir, many_texts):
    return vectorizer(tiny_model_dir).fit(many_texts)


@pytest.fixture(scope="module")
def pipeline(tiny_model_dir, many_texts, labels):
    return make_pipeline(
        vectorizer(tiny_model_dir, pooling="mean"), LogisticRegression()
    ).fit(many_texts, labels)


def series(texts, npartitions: int):
    return dd.from_pandas(pd.Series(texts, name="text"), npartitions=npartitions)


@pytest.mark.slow
def test_transform_series_matches_in_process(client, fitted_vectorizer, many_texts):
    texts = series(many_texts, npartitions=5)

    vectors = skbert.dask.transform(fitted_vectorizer, texts)
    computed = vectors.compute()

    assert isinstance(vectors, dd.DataFrame)
    assert vectors.npartitions == 5
    assert list(vectors.columns) == list(fitted_vectorizer.get_feature_names_out())
    assert computed.dtypes.unique().tolist() == [np.float32]
    assert computed.index.tolist() == list(range(len(many_texts)))
    np.testing.assert_allclose(
        computed.to_numpy(), fitted_vectorizer.transform(many_texts), rtol=0, atol=ATOL
    )


@pytest.mark.slow
def test_predict_and_predict_proba_match_in_process(client, pipeline, many_texts):
    texts = series(many_texts, npartitions=4)

    predictions = skbert.dask.predict(pipeline, texts)
    proba = skbert.dask.predict_proba(pipeline, texts)
    got_predictions, got_proba = dask.compute(predictions, proba)

    np.testing.assert_array_equal(got_predictions, pipeline.predict(many_texts))
    assert got_predictions.name == "prediction"
    assert got_predictions.dtype == predictions.dtype  # as declared by meta
    assert list(got_proba.columns) == ["proba_neg", "proba_pos"]
    np.testing.assert_allclose(
        got_proba.to_numpy(), pipeline.predict_proba(many_texts), rtol=0, atol=ATOL
    )


@pytest.mark.slow
def test_bag_gives_arrays_in_order(client, fitted_vectorizer, pipeline, many_texts):
    texts = db.from_sequence(many_texts, npartitions=4)

    vectors = skbert.dask.transform(fitted_vectorizer, texts)
    predictions = skbert.dask.predict(pipeline, texts)
    got_vectors, got_predictions = dask.compute(vectors, predictions)

    assert isinstance(vectors, da.Array) and vectors.dtype == np.float32
    np.testing.assert_allclose(
        got_vectors, fitted_vectorizer.transform(many_texts), rtol=0, atol=ATOL
    )
    np.testing.assert_array_equal(got_predictions, pipeline.predict(many_texts))


@pytest.mark.slow
def test_array_keeps_known_chunks(client, fitted_vectorizer, many_texts):
    texts = da.from_array(np.array(many_texts, dtype=object), chunks=7)

    vectors = skbert.dask.transform(fitted_vectorizer, texts)

    assert vectors.chunks == (texts.chunks[0], (fitted_vectorizer.hidden_size_,))
    np.testing.assert_allclose(
        vectors.compute(), fitted_vectorizer.transform(many_texts), rtol=0, atol=ATOL
    )


@pytest.mark.slow
def test_empty_partitions_and_empty_strings(client, pipeline, many_texts, counts):
    kept_positions = [*range(0, 6), *range(12, 24)]  # partitions 1, 4, 5 empty
    texts = series(many_texts, npartitions=6).map_partitions(
        lambda part: part[part.index.isin(kept_positions)]
    )
    kept = [many_texts[i] for i in kept_positions]
    assert "" in kept

    got = skbert.dask.predict_proba(pipeline, texts).compute()

    np.testing.assert_allclose(
        got.to_numpy(), pipeline.predict_proba(kept), rtol=0, atol=ATOL
    )
    assert sum(c.get("partitions", 0) for c in counts().values()) == 3

    nothing = skbert.dask.transform(
        pipeline[0], texts.map_partitions(lambda p: p.iloc[:0])
    ).compute()
    bag = db.concat([db.from_sequence([], npartitions=1), db.from_sequence([""])])
    from_bag = skbert.dask.transform(pipeline[0], bag).compute()

    assert nothing.shape == (0, pipeline[0].hidden_size_)
    assert from_bag.shape == (1, pipeline[0].hidden_size_)
    np.testing.assert_allclose(from_bag, pipeline[0].transform([""]), atol=ATOL)


@pytest.mark.slow
def test_parquet_written_by_the_workers(
    client, fitted_vectorizer, many_texts, tmp_path
):
    frame = pd.DataFrame({"id": np.arange(len(many_texts)), "text": many_texts})
    texts = dd.from_pandas(frame, npartitions=3)

    vectors = skbert.dask.transform(fitted_vectorizer, texts["text"])
    texts[["id"]].join(vectors).to_parquet(tmp_path / "vectors")

    written = pd.read_parquet(tmp_path / "vectors").sort_values("id")
    assert len(list((tmp_path / "vectors").glob("*.parquet"))) == 3
    np.testing.assert_array_equal(written["id"], frame["id"])
    np.testing.assert_allclose(
        written.drop(columns="id").to_numpy(),
        fitted_vectorizer.transform(many_texts),
        rtol=0,
        atol=ATOL,
    )


@pytest.mark.slow
def test_dataframe_partitions_reach_a_column_transformer(
    client, tiny_model_dir, many_texts, labels
):
    frame = pd.DataFrame({"text": many_texts, "length": [len(t) for t in many_texts]})
    model = make_pipeline(
        make_column_transformer(
            (vectorizer(tiny_model_dir, pooling="mean"), "text"),
            ("passthrough", ["length"]),
        ),
        LogisticRegression(max_iter=500),
    ).fit(frame, labels)

    got = skbert.dask.predict(model, dd.from_pandas(frame, npartitions=3)).compute()

    np.testing.assert_array_equal(got, model.predict(frame))


@pytest.mark.slow
def test_transform_of_a_pipeline_uses_its_feature_names(
    client, tiny_model_dir, many_texts
):
    reduced = make_pipeline(vectorizer(tiny_model_dir), PCA(n_components=3))
    reduced.fit(many_texts)

    vectors = skbert.dask.transform(reduced, series(many_texts, npartitions=2))

    assert list(vectors.columns) == ["pca0", "pca1", "pca2"]
    np.testing.assert_allclose(
        vectors.compute().to_numpy(), reduced.transform(many_texts), atol=1e-5
    )


@pytest.mark.slow
@pytest.mark.parametrize("persist", ["weights", "reference"])
def test_model_loaded_once_per_worker(
    client, counts, tiny_model_copy, many_texts, persist
):
    fitted = vectorizer(tiny_model_copy, persist=persist).fit(many_texts)
    expected = fitted.transform(many_texts)
    if persist == "weights":
        # The workers must read the weights from the pickle, not the folder.
        shutil.rmtree(tiny_model_copy)
        assert len(pickle.dumps(fitted)) > 100_000
    else:
        assert len(pickle.dumps(fitted)) < 10_000
    texts = series(many_texts, npartitions=8)

    vectors = skbert.dask.transform(fitted, texts)
    # Scattered to every worker before any partition is computed.
    [holders] = [
        workers
        for key, workers in client.who_has().items()
        if str(key).startswith("BertCLSVectorizer-")
    ]
    got = vectors.compute()
    first = counts()
    skbert.dask.transform(fitted, texts).compute()  # scattered again
    second = counts()

    np.testing.assert_allclose(got.to_numpy(), expected, rtol=0, atol=ATOL)
    assert len(holders) == len(first) == N_WORKERS
    assert sum(c.get("partitions", 0) for c in first.values()) == 8
    assert sum(c.get("texts", 0) for c in first.values()) == len(many_texts)
    for worker, seen in first.items():
        processed = seen.get("partitions", 0) > 0
        assert seen.get("loads", 0) == int(processed), (worker, first)
        # broadcast: each worker unpickled the estimator once, not per partition
        assert seen.get("unpickles", 0) == 1, (worker, first)
    assert all(c.get("partitions", 0) > 0 for c in first.values()), first
    for worker in first:
        # the second job's estimator finds the model by its fingerprint
        assert second[worker].get("loads", 0) == first[worker].get("loads", 0)
        assert second[worker]["unpickles"] == 2


def test_local_scheduler_shares_one_delayed_estimator(fitted_vectorizer, many_texts):
    texts = series(many_texts, npartitions=3)

    with dask.config.set(scheduler="synchronous"):
        vectors = skbert.dask.transform(fitted_vectorizer, texts)
        computed = vectors.compute()

    graph = dict(vectors.__dask_graph__())
    names = {key: key[0] if isinstance(key, tuple) else key for key in graph}
    [shared] = [key for key in graph if names[key].startswith("bertclsvectorizer-")]
    partition_tasks = [
        task
        for key, task in graph.items()
        if names[key] == vectors.__dask_keys__()[0][0]
    ]
    assert len(partition_tasks) == 3
    assert all(shared in task.dependencies for task in partition_tasks)
    np.testing.assert_array_equal(
        computed.to_numpy(), fitted_vectorizer.transform(many_texts)
    )


@pytest.mark.slow
def test_bad_text_is_reported(client, fitted_vectorizer):
    texts = series(["fine", None, "also fine"], npartitions=1)

    with pytest.raises(TypeError, match="position 1 is <NA>"):
        skbert.dask.transform(fitted_vectorizer, texts).compute()


def test_in_memory_texts_are_refused(fitted_vectorizer):
    with pytest.raises(TypeError, match="Dask collection of texts"):
        skbert.dask.transform(fitted_vectorizer, ["a list"])
    with pytest.raises(ValueError, match="1-D Dask array"):
        skbert.dask.transform(fitted_vectorizer, da.zeros((2, 2)))


def test_unfitted_estimator_is_refused_before_computing(tiny_model_dir):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        skbert.dask.transform(vectorizer(tiny_model_dir), series(["a"], 1))


def test_missing_dask_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.delitem(sys.modules, "skbert.dask")

    with pytest.raises(ImportError, match=r'pip install "skbert\[dask\]"'):
        importlib.import_module("skbert.dask")


@pytest.mark.slow
def test_import_skbert_does_not_import_dask(tmp_path):
    code = "import sys, json, skbert; print(json.dumps(sorted(sys.modules)))"
    modules = json.loads(run_python(code, cwd=tmp_path).strip().splitlines()[-1])

    assert not [m for m in modules if m.split(".")[0] in {"dask", "distributed"}]
