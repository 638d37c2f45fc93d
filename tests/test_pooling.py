"""Pooling maths (against numpy) and the ``layers`` / ``normalize`` options."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import numpy_pool, vectorizer

from skbert._encoding.pooling import (
    NUMPY_POOLINGS,
    TORCH_POOLINGS,
    cls_pooling,
    max_pooling,
    mean_pooling,
)

ATOL = 1e-5


@pytest.fixture
def padded_batch():
    """Random states for 4 texts of 5, 1, 3 and 2 real tokens, right-padded to 5.

    Padded positions hold huge values: any leak into a pooled vector shows.
    """
    import torch

    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(4, 5, 6, generator=generator)
    lengths = [5, 1, 3, 2]
    mask = torch.zeros(4, 5, dtype=torch.int64)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    hidden[mask == 0] = 1e6
    return hidden, mask


@pytest.mark.parametrize("arrays", ["torch", "numpy"])
@pytest.mark.parametrize("name", sorted(TORCH_POOLINGS))
@pytest.mark.parametrize("skip", [0, 2])
def test_pooling_functions_match_numpy_masked_pooling(padded_batch, name, arrays, skip):
    # skip: a prompt's leading tokens left out of the pooling (mask 0), which
    # leaves the second text, of one token, without any counted token
    hidden, mask = padded_batch
    mask = mask.clone()
    mask[:, :skip] = 0
    before = hidden.numpy().copy(), mask.numpy().copy()

    if arrays == "torch":
        pooled = TORCH_POOLINGS[name](hidden, mask).numpy()
    else:  # the ONNX Runtime backend's
        pooled = NUMPY_POOLINGS[name](hidden.numpy(), mask.numpy())

    assert pooled.dtype == np.float32
    expected = [
        numpy_pool(states, name, row_mask)
        for states, row_mask in zip(hidden.numpy(), mask.numpy(), strict=True)
    ]
    np.testing.assert_allclose(pooled, np.stack(expected), atol=1e-5, rtol=1e-6)
    np.testing.assert_array_equal(hidden.numpy(), before[0])
    np.testing.assert_array_equal(mask.numpy(), before[1])


def test_pooling_registry_names_the_functions():
    assert {name: TORCH_POOLINGS[name] for name in ("cls", "mean", "max")} == {
        "cls": cls_pooling,
        "mean": mean_pooling,
        "max": max_pooling,
    }
    # the modes a sentence-transformers folder may declare (pooling="auto")
    assert (
        set(NUMPY_POOLINGS)
        == set(TORCH_POOLINGS)
        == {
            "cls",
            "mean",
            "max",
            "mean_sqrt_len",
            "weightedmean",
            "lasttoken",
        }
    )


@pytest.mark.parametrize("name", ["cls", "mean", "max"])
def test_pooling_does_not_modify_its_inputs(padded_batch, name):
    hidden, mask = padded_batch
    hidden_before, mask_before = hidden.clone(), mask.clone()

    TORCH_POOLINGS[name](hidden, mask)

    assert hidden.equal(hidden_before)
    assert mask.equal(mask_before)


def test_max_pooling_of_all_negative_states_ignores_padding():
    import torch

    hidden = -torch.ones(1, 3, 2) * torch.tensor([1.0, 2.0, 3.0])[None, :, None]
    hidden[0, 2] = 0.0  # padding would win a plain max
    mask = torch.tensor([[1, 1, 0]])

    np.testing.assert_array_equal(max_pooling(hidden, mask).numpy(), [[-1.0, -1.0]])


def test_mean_pooling_of_an_all_padding_row_is_finite():
    import torch

    hidden = torch.ones(1, 3, 2)
    mask = torch.zeros(1, 3, dtype=torch.int64)

    assert torch.isfinite(mean_pooling(hidden, mask)).all()


@pytest.mark.parametrize("layer", [0, 1, 2, -1, -2, -3])
@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_layers_int_pools_that_hidden_state(
    tiny_model_dir, tiny_oracle, texts, pooling, layer
):
    estimator = vectorizer(tiny_model_dir, pooling=pooling, layers=layer)
    vectors = estimator.fit(texts).transform(texts)

    expected = tiny_oracle.vectors(texts, pooling, layers=layer)
    np.testing.assert_allclose(vectors, expected, atol=ATOL, rtol=0)


def test_layers_pick_different_states(tiny_model_dir, texts):
    by_layer = [
        vectorizer(tiny_model_dir, pooling="mean", layers=layer)
        .fit(texts)
        .transform(texts)
        for layer in (0, 1, 2)
    ]
    assert not np.allclose(by_layer[0], by_layer[1], atol=1e-3)
    assert not np.allclose(by_layer[1], by_layer[2], atol=1e-3)


@pytest.mark.parametrize("layers", [(0, -1), [1, 2], (2, 0, 1)])
@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_layer_tuple_averages_the_pooled_vectors(
    tiny_model_dir, tiny_oracle, texts, pooling, layers
):
    vectors = (
        vectorizer(tiny_model_dir, pooling=pooling, layers=layers)
        .fit(texts)
        .transform(texts)
    )

    expected = np.mean(
        [tiny_oracle.vectors(texts, pooling, layers=layer) for layer in layers], axis=0
    )
    np.testing.assert_allclose(vectors, expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize("layers", [-1, 2, (-1,), [2]])
def test_pooler_accepts_only_the_last_layer(tiny_model_dir, tiny_oracle, texts, layers):
    estimator = vectorizer(tiny_model_dir, pooling="pooler", layers=layers)

    vectors = estimator.fit(texts).transform(texts)

    np.testing.assert_allclose(
        vectors, tiny_oracle.vectors(texts, "pooler"), atol=ATOL, rtol=0
    )


@pytest.mark.parametrize("layers", [0, 1, -2, (0, -1), (1, 2)])
def test_pooler_with_other_layers_raises(tiny_model_dir, layers):
    estimator = vectorizer(tiny_model_dir, pooling="pooler", layers=layers)

    with pytest.raises(ValueError, match=r"pooling='pooler'.*last layer"):
        estimator.fit(["a"])


@pytest.mark.parametrize("layers", [3, -4, 10, (0, 3), (-4, -1)])
def test_out_of_range_layer_names_the_number_of_hidden_states(tiny_model_dir, layers):
    # The tiny model has 2 layers: hidden states 0 (embeddings), 1 and 2.
    estimator = vectorizer(tiny_model_dir, pooling="mean", layers=layers)

    with pytest.raises(ValueError, match=r"out of range.*3 hidden states"):
        estimator.fit(["a"])


@pytest.mark.parametrize("layers", [(), [], True, (1, "2"), (1.0,)])
def test_malformed_layers_raise_value_error(tiny_model_dir, layers):
    estimator = vectorizer(tiny_model_dir, pooling="mean", layers=layers)

    with pytest.raises(ValueError, match="layers"):
        estimator.fit(["a"])


@pytest.mark.parametrize("pooling", ["cls", "pooler", "mean", "max"])
def test_normalize_gives_unit_vectors_in_the_same_direction(
    tiny_model_dir, tiny_oracle, texts, pooling
):
    vectors = (
        vectorizer(tiny_model_dir, pooling=pooling, normalize=True)
        .fit(texts)
        .transform(texts)
    )

    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    expected = tiny_oracle.vectors(texts, pooling, normalize=True)
    np.testing.assert_allclose(vectors, expected, atol=ATOL, rtol=0)


def test_without_normalize_vectors_are_not_unit(tiny_model_dir, texts):
    vectors = vectorizer(tiny_model_dir, pooling="mean").fit(texts).transform(texts)

    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
