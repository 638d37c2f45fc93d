"""One fitted vectorizer used from several threads at once."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import WORDS, in_threads, vectorizer


@pytest.mark.parametrize("cache", [None, "auto"])
def test_four_threads_each_get_their_own_correct_vectors(
    tiny_model_dir, tiny_oracle, cache
):
    per_thread = [
        [
            " ".join(WORDS[(thread * 7 + i * 3 + j) % len(WORDS)] for j in range(i % 9))
            + f" {thread}"
            for i in range(12)
        ]
        for thread in range(4)
    ]
    expected = [tiny_oracle.vectors(texts, "mean") for texts in per_thread]
    estimator = vectorizer(tiny_model_dir, pooling="mean", batch_size=5, cache=cache)
    estimator.fit(["probe"])

    def work(thread: int) -> list[np.ndarray]:
        return [estimator.transform(per_thread[thread]) for _ in range(3)]

    results = in_threads(range(4), work)

    for thread, runs in enumerate(results):
        for vectors in runs:
            np.testing.assert_allclose(vectors, expected[thread], atol=1e-5, rtol=0)
