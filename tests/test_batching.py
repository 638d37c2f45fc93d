"""Batching: original order, batch invariance, length-sorted batches, determinism."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
from helpers import WORDS, vectorizer

import skbert
import skbert._encoding.encode

ATOL = 1e-5


def random_texts(count: int, seed: int, max_words: int = 55) -> list[str]:
    """Texts of 0 to ``max_words`` vocabulary words, shuffled lengths."""
    rng = random.Random(seed)
    return [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, max_words)))
        for _ in range(count)
    ]


@pytest.fixture
def forward_calls(monkeypatch):
    """Record the inputs of every BertModel forward pass (any instance)."""
    from transformers.models.bert import modeling_bert

    calls = []
    original = modeling_bert.BertModel.forward

    def recording_forward(self, *args, **kwargs):
        calls.append(
            {
                "input_ids": kwargs["input_ids"].detach().cpu().numpy().copy(),
                "attention_mask": kwargs["attention_mask"].detach().cpu().numpy(),
                "training": self.training,
            }
        )
        return original(self, *args, **kwargs)

    monkeypatch.setattr(modeling_bert.BertModel, "forward", recording_forward)
    return calls


@pytest.mark.parametrize("pooling", ["cls", "pooler", "mean", "max"])
def test_shuffled_texts_of_very_different_lengths_come_back_in_order(
    tiny_model_dir, tiny_oracle, pooling
):
    texts = random_texts(40, seed=1)
    random.Random(2).shuffle(texts)

    vectors = (
        vectorizer(tiny_model_dir, pooling=pooling, batch_size=7)
        .fit(texts)
        .transform(texts)
    )

    np.testing.assert_allclose(
        vectors, tiny_oracle.vectors(texts, pooling), atol=ATOL, rtol=0
    )


@pytest.mark.parametrize("pooling", ["cls", "pooler", "mean", "max"])
def test_batch_size_does_not_change_vectors(tiny_model_dir, pooling):
    texts = random_texts(30, seed=3)
    results = [
        vectorizer(tiny_model_dir, pooling=pooling, batch_size=size)
        .fit(texts)
        .transform(texts)
        for size in (1, 2, 5, 64)
    ]
    for result in results[1:]:
        np.testing.assert_allclose(result, results[0], atol=ATOL, rtol=0)


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_vector_does_not_depend_on_the_other_texts_in_its_batch(
    tiny_model_dir, tiny_oracle, pooling
):
    short = "a great film"
    long_texts = [" ".join(["the story was far too long"] * 10)] * 3
    estimator = vectorizer(tiny_model_dir, pooling=pooling, batch_size=4).fit(["probe"])

    alone = estimator.transform([short])[0]
    with_long = estimator.transform([*long_texts, short])[3]
    between = estimator.transform([long_texts[0], short, long_texts[1]])[1]

    expected = tiny_oracle.vector(short, pooling)
    for vector in (alone, with_long, between):
        np.testing.assert_allclose(vector, expected, atol=ATOL, rtol=0)


def test_more_texts_than_a_chunk_are_correct_and_ordered(
    tiny_model_dir, tiny_oracle, forward_calls, monkeypatch
):
    monkeypatch.setattr(skbert._encoding.encode, "CHUNK_SIZE", 4)
    texts = random_texts(15, seed=4)
    expected = tiny_oracle.vectors(texts, "mean")
    forward_calls.clear()

    vectors = vectorizer(tiny_model_dir, pooling="mean", batch_size=3).fit(texts)
    vectors = vectors.transform(texts)

    np.testing.assert_allclose(vectors, expected, atol=ATOL, rtol=0)
    # 4 chunks (4 + 4 + 4 + 3 texts), each cut into batches of at most 3.
    assert [len(call["input_ids"]) for call in forward_calls] == [3, 1] * 3 + [3]


def test_batches_are_padded_to_their_own_longest_text_and_sorted_by_length(
    tiny_model_dir, tiny_oracle, forward_calls
):
    texts = random_texts(23, seed=5)
    expected_lengths = sorted((tiny_oracle.n_tokens(t) for t in texts), reverse=True)
    vectorizer(tiny_model_dir, pooling="cls", batch_size=4).fit(texts).transform(texts)

    assert sum(len(call["input_ids"]) for call in forward_calls) == len(texts)
    lengths_in_run_order = []
    for call in forward_calls:
        mask = call["attention_mask"]
        lengths = mask.sum(axis=1)
        assert len(lengths) <= 4
        assert mask.shape[1] == lengths.max()  # padded only to its own longest
        for row, length in zip(mask, lengths, strict=True):  # right padding
            assert row[:length].all() and not row[length:].any()
        lengths_in_run_order.extend(lengths.tolist())
    assert lengths_in_run_order == sorted(lengths_in_run_order, reverse=True)
    assert lengths_in_run_order == expected_lengths


def test_model_runs_in_eval_mode_so_repeated_transforms_agree(
    tiny_model_dir, tiny_oracle, texts, forward_calls
):
    import torch

    estimator = vectorizer(tiny_model_dir, pooling="mean").fit(texts)

    first = estimator.transform(texts)
    second = estimator.transform(texts)

    assert forward_calls and not any(call["training"] for call in forward_calls)
    np.testing.assert_array_equal(first, second)
    # Control: this config has dropout 0.1, so a model in training mode would
    # give different vectors on every call.
    encoded = tiny_oracle.tokenizer(texts[3], return_tensors="pt")
    tiny_oracle.model.train()
    try:
        with torch.no_grad():
            runs = [tiny_oracle.model(**encoded).last_hidden_state for _ in range(2)]
    finally:
        tiny_oracle.model.eval()
    assert not torch.allclose(runs[0], runs[1])


@pytest.mark.parametrize("pooling", ["cls", "pooler", "mean", "max"])
def test_same_text_same_vector_across_calls_and_fits(tiny_model_dir, texts, pooling):
    first_fit = vectorizer(tiny_model_dir, pooling=pooling).fit(texts)
    runs = [first_fit.transform(texts), first_fit.transform(texts[::-1])[::-1]]
    skbert.clear_model_cache()  # the next fit reads the weights again
    second_fit = vectorizer(tiny_model_dir, pooling=pooling).fit(texts)
    runs.append(second_fit.transform(texts))
    runs.append(np.stack([second_fit.transform([text])[0] for text in texts]))

    for run in runs[1:]:
        np.testing.assert_allclose(run, runs[0], atol=ATOL, rtol=0)


def test_duplicate_texts_get_identical_vectors(tiny_model_dir, tiny_oracle):
    texts = ["a great film", "dull", "a great film", "", "dull", "a great film"]

    vectors = vectorizer(tiny_model_dir, pooling="max").fit(texts).transform(texts)

    np.testing.assert_allclose(
        vectors, tiny_oracle.vectors(texts, "max"), atol=ATOL, rtol=0
    )
    np.testing.assert_array_equal(vectors[0], vectors[2])
    np.testing.assert_array_equal(vectors[0], vectors[5])


def test_progress_bar_can_be_forced_on_and_off(tiny_model_dir, capfd):
    texts = random_texts(6, seed=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vectorizer(tiny_model_dir, show_progress_bar=False).fit(texts).transform(texts)
    assert "skbert: encoding" not in capfd.readouterr().err

    vectorizer(tiny_model_dir, show_progress_bar=True).fit(texts).transform(texts)
    assert "skbert: encoding" in capfd.readouterr().err


def test_the_default_batch_size_is_the_fastest_measured_for_the_device(
    tiny_model_dir,
):
    """``batch_size="auto"`` (the default) runs 32 texts per pass on a CPU
    (measured faster there than 128: docs/performance.md), for ONNX Runtime
    too; an explicit value wins; a GPU gets 128 (tests/test_gpu.py)."""
    from skbert._core.options import AUTO_BATCH_SIZES, batch_size_for

    assert skbert.BertCLSVectorizer().batch_size == "auto"
    for params, expected in [
        ({}, 32),
        ({"backend": "onnx"}, 32),
        ({"batch_size": 7}, 7),
    ]:
        fitted = vectorizer(tiny_model_dir, **params).fit(["probe"])
        assert fitted._encoding_spec(fitted.model_).batch_size == expected
    assert batch_size_for("auto", "cuda") == AUTO_BATCH_SIZES["cuda"] == 128
    assert batch_size_for(64, "cuda") == 64
