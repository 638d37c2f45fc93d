"""Every pooling equals what transformers' own BertModel gives for each text alone."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import POOLINGS, TINY_HIDDEN_SIZE, vectorizer

ATOL = 1e-5


@pytest.mark.parametrize("pooling", POOLINGS)
def test_each_pooling_matches_bert_model_on_each_text_alone(
    tiny_model_dir, tiny_oracle, texts, pooling
):
    vectors = vectorizer(tiny_model_dir, pooling=pooling).fit(texts).transform(texts)

    assert vectors.dtype == np.float32
    assert vectors.shape == (len(texts), TINY_HIDDEN_SIZE)
    np.testing.assert_allclose(
        vectors, tiny_oracle.vectors(texts, pooling), atol=ATOL, rtol=0
    )


def test_cls_is_first_token_of_last_hidden_state(tiny_model_dir, tiny_oracle, texts):
    import torch

    vectors = vectorizer(tiny_model_dir, pooling="cls").fit(texts).transform(texts)
    for text, vector in zip(texts, vectors, strict=True):
        encoded = tiny_oracle.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            expected = tiny_oracle.model(**encoded).last_hidden_state[0, 0]
        np.testing.assert_allclose(vector, expected.numpy(), atol=ATOL, rtol=0)


def test_pooler_is_bert_pooler_output(tiny_model_dir, tiny_oracle, texts):
    import torch

    vectors = vectorizer(tiny_model_dir, pooling="pooler").fit(texts).transform(texts)
    for text, vector in zip(texts, vectors, strict=True):
        encoded = tiny_oracle.tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            expected = tiny_oracle.model(**encoded).pooler_output[0]
        np.testing.assert_allclose(vector, expected.numpy(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_pooler_less_checkpoint_matches_its_hidden_states(
    tiny_mlm_dir, tiny_mlm_oracle, texts, pooling
):
    vectors = vectorizer(tiny_mlm_dir, pooling=pooling).fit(texts).transform(texts)

    np.testing.assert_allclose(
        vectors, tiny_mlm_oracle.vectors(texts, pooling), atol=ATOL, rtol=0
    )


def test_poolings_differ_from_each_other(tiny_model_dir, texts):
    # Guards the oracle tests against a pooling silently computing another one.
    results = {
        pooling: vectorizer(tiny_model_dir, pooling=pooling).fit(texts).transform(texts)
        for pooling in POOLINGS
    }
    for first in POOLINGS:
        for second in POOLINGS:
            if first < second:
                assert not np.allclose(results[first], results[second], atol=1e-3)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_cached_path_gives_the_oracle_vectors_for_every_pooling(
    tiny_model_dir, tiny_oracle, texts, pooling
):
    # One forward pass fills the cache for all poolings; switching pooling must
    # then serve the vectors of the pooling asked for.
    first = "mean" if pooling != "mean" else "cls"
    estimator = vectorizer(tiny_model_dir, pooling=first, cache="auto").fit(texts)
    estimator.transform(texts)

    cached = estimator.set_params(pooling=pooling).transform(texts)

    np.testing.assert_allclose(
        cached, tiny_oracle.vectors(texts, pooling), atol=ATOL, rtol=0
    )


def test_float32_results_are_not_served_from_a_bfloat16_run(
    tiny_model_dir, tiny_oracle, texts
):
    # The embedding cache must key on the precision the vectors were computed
    # in: a float32 vectorizer must never receive bfloat16 vectors.
    low = vectorizer(tiny_model_dir, pooling="mean", dtype="bfloat16", cache="auto")
    low.fit(texts).transform(texts)

    full = vectorizer(tiny_model_dir, pooling="mean", dtype="float32", cache="auto")
    vectors = full.fit(texts).transform(texts)

    np.testing.assert_allclose(
        vectors, tiny_oracle.vectors(texts, "mean"), atol=ATOL, rtol=0
    )


def test_bfloat16_on_cpu_is_close_to_float32(tiny_model_dir, tiny_oracle, texts):
    vectors = (
        vectorizer(tiny_model_dir, pooling="mean", dtype="bfloat16")
        .fit(texts)
        .transform(texts)
    )
    expected = tiny_oracle.vectors(texts, "mean")

    assert vectors.dtype == np.float32
    cosine = np.sum(vectors * expected, axis=1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() > 0.99
    assert not np.array_equal(vectors, expected)  # it did run in bfloat16


def test_dtype_auto_on_a_cpu_without_bfloat16_is_float32(
    tiny_model_dir, tiny_oracle, texts, monkeypatch, tmp_path
):
    import skbert._model.device

    monkeypatch.setattr(skbert._model.device, "CPUINFO", tmp_path / "no-cpuinfo")
    vectors = (
        vectorizer(tiny_model_dir, pooling="cls", dtype="auto")
        .fit(texts)
        .transform(texts)
    )
    np.testing.assert_allclose(
        vectors, tiny_oracle.vectors(texts, "cls"), atol=ATOL, rtol=0
    )


def test_dtype_auto_on_a_cpu_with_bfloat16_runs_bfloat16(
    tiny_model_dir, texts, monkeypatch, tmp_path
):
    import skbert._model.device

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: avx512f avx512_bf16\n")
    monkeypatch.setattr(skbert._model.device, "CPUINFO", cpuinfo)
    auto = vectorizer(tiny_model_dir, pooling="cls", dtype="auto").fit(texts)
    bfloat16 = vectorizer(tiny_model_dir, pooling="cls", dtype="bfloat16").fit(texts)
    np.testing.assert_array_equal(auto.transform(texts), bfloat16.transform(texts))
