"""CUDA agrees with the CPU (skipped without a CUDA device)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from helpers import cuda_available, vectorizer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not cuda_available(), reason="needs a CUDA device"),
]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    )


@pytest.mark.parametrize("pooling", ["cls", "pooler", "mean", "max"])
def test_cuda_float32_matches_cpu(tiny_model_dir, texts, pooling):
    on_cpu = vectorizer(tiny_model_dir, pooling=pooling).fit(texts).transform(texts)
    on_cuda = (
        vectorizer(tiny_model_dir, pooling=pooling, device="cuda")
        .fit(texts)
        .transform(texts)
    )

    assert on_cuda.dtype == np.float32
    np.testing.assert_allclose(on_cuda, on_cpu, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", ["bfloat16", "auto"])
def test_cuda_half_precision_is_close_to_cpu(tiny_model_dir, texts, dtype):
    on_cpu = vectorizer(tiny_model_dir, pooling="mean").fit(texts).transform(texts)
    on_cuda = (
        vectorizer(tiny_model_dir, pooling="mean", device="cuda", dtype=dtype)
        .fit(texts)
        .transform(texts)
    )

    assert on_cuda.dtype == np.float32
    assert cosine(on_cuda, on_cpu).min() > 0.99


def test_pickle_fitted_on_cuda_runs_on_cpu(tiny_model_dir, texts):
    on_cuda = vectorizer(tiny_model_dir, pooling="mean", device="cuda", dtype="auto")
    on_cuda.fit(texts)

    moved = pickle.loads(pickle.dumps(on_cuda)).set_params(device="cpu")
    on_cpu = vectorizer(tiny_model_dir, pooling="mean").fit(texts).transform(texts)

    np.testing.assert_allclose(moved.transform(texts), on_cpu, atol=1e-5, rtol=0)


def test_fine_tuning_on_cuda_learns_and_its_pickle_runs_on_cpu(tiny_model_dir):
    """The same tuning code on CUDA, under bfloat16 autocast where supported."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from test_fine_tune import FAST, word_task

    X_train, X_test, y_train, y_test = train_test_split(
        *word_task(400), test_size=0.5, random_state=0
    )
    bert = vectorizer(
        tiny_model_dir, device="cuda", dtype="auto", fine_tune="classification", **FAST
    )
    pipe = make_pipeline(bert, LogisticRegression(max_iter=1000)).fit(X_train, y_train)

    assert pipe.score(X_test, y_test) > 0.9
    moved = pickle.loads(pickle.dumps(pipe[0])).set_params(device="cpu")
    assert cosine(moved.transform(X_test), pipe[0].transform(X_test)).min() > 0.99


def test_the_default_batch_size_on_cuda_is_128(tiny_model_dir):
    fitted = vectorizer(tiny_model_dir, device="cuda").fit(["probe"])
    assert fitted._encoding_spec(fitted.model_).batch_size == 128
