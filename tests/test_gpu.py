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
