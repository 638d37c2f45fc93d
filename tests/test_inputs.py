"""Input handling: every container of texts, clear errors, unicode, truncation."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import TINY_MAX_LENGTH, vectorizer

import skbert
import skbert._encoding.encode

STRING_MESSAGE = "Iterable over raw text documents expected, string object received."
TEXTS = ["a great film", "dull", "", "the plot never goes anywhere"]


@pytest.fixture
def fitted(tiny_model_dir):
    return vectorizer(tiny_model_dir, pooling="mean").fit(TEXTS)


@pytest.mark.parametrize(
    "make_input",
    [
        pytest.param(list, id="list"),
        pytest.param(tuple, id="tuple"),
        pytest.param(lambda t: np.array(t, dtype=object), id="ndarray-object"),
        pytest.param(lambda t: np.array(t), id="ndarray-unicode"),
        pytest.param(lambda t: pd.Series(t, index=[7, 3, 9, 1]), id="series"),
        pytest.param(lambda t: pd.Series(t, dtype="string"), id="series-string"),
        pytest.param(lambda t: np.array(t, dtype=object)[:, None], id="2d-object"),
        pytest.param(lambda t: np.array(t).reshape(-1, 1), id="2d-unicode"),
        pytest.param(lambda t: pd.DataFrame({"review": t}), id="dataframe"),
    ],
)
def test_every_container_gives_the_same_vectors(
    fitted, tiny_oracle, make_input, tiny_model_dir
):
    expected = tiny_oracle.vectors(TEXTS, "mean")

    transformed = fitted.transform(make_input(TEXTS))
    fit_transformed = vectorizer(tiny_model_dir, pooling="mean").fit_transform(
        make_input(TEXTS)
    )

    assert isinstance(transformed, np.ndarray)
    np.testing.assert_allclose(transformed, expected, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(fit_transformed, transformed)


def test_transform_accepts_a_one_shot_iterator(fitted, tiny_oracle):
    vectors = fitted.transform(text for text in TEXTS)

    expected = tiny_oracle.vectors(TEXTS, "mean")
    np.testing.assert_allclose(vectors, expected, atol=1e-5, rtol=0)


def test_fit_transform_of_a_generator_returns_one_row_per_text(tiny_model_dir):
    # fit must not consume the texts that transform then encodes: a generator
    # accepted by fit_transform must give its rows, never a silent (0, 32).
    # CountVectorizer.fit_transform handles generators the same way.
    vectors = vectorizer(tiny_model_dir).fit_transform(text for text in TEXTS)

    assert vectors.shape == (len(TEXTS), 32)


@pytest.mark.parametrize("bare", ["a great film", ""])
@pytest.mark.parametrize("method", ["fit", "transform", "fit_transform"])
def test_bare_string_is_refused_with_scikit_learn_wording(fitted, bare, method):
    with pytest.raises(ValueError) as raised:
        getattr(fitted, method)(bare)

    assert str(raised.value) == STRING_MESSAGE


def test_bare_string_message_is_scikit_learn_s_own():
    from sklearn.feature_extraction.text import CountVectorizer

    with pytest.raises(ValueError) as raised:
        CountVectorizer().fit("a great film")
    assert str(raised.value) == STRING_MESSAGE


@pytest.mark.parametrize(
    ("bad", "type_text"),
    [
        (None, "None"),
        (float("nan"), "float"),
        (np.nan, "NaN"),
        (3, "int"),
        (np.int64(3), "int64"),
        (b"raw bytes", "bytes"),
        (["nested"], "list"),
    ],
)
@pytest.mark.parametrize("position", [0, 2])
def test_non_string_element_names_its_position_and_type(
    fitted, bad, type_text, position
):
    texts = ["a", "b", "c"]
    texts[position] = bad

    for method in ("fit", "transform"):
        with pytest.raises(TypeError) as raised:
            getattr(fitted, method)(texts)
        message = str(raised.value)
        assert f"position {position}" in message
        assert type_text in message


def test_missing_value_in_a_series_names_its_position(fitted):
    with pytest.raises(TypeError, match="position 1"):
        fitted.transform(pd.Series(["a", None, "b"]))


def test_non_iterable_raises_type_error(fitted):
    with pytest.raises(TypeError, match="iterable"):
        fitted.transform(42)


@pytest.mark.parametrize(
    "wide",
    [
        pd.DataFrame({"text": ["a", "b"], "other": ["c", "d"]}),
        np.array([["a", "b"], ["c", "d"]], dtype=object),
        np.array([[["a"]]], dtype=object),
    ],
    ids=["dataframe-2-columns", "ndarray-2-columns", "ndarray-3d"],
)
def test_more_than_one_column_is_refused(fitted, wide):
    with pytest.raises(ValueError, match="column|dimensions"):
        fitted.transform(wide)


def test_empty_input_gives_an_empty_float32_array(fitted):
    for empty in ([], (), np.array([], dtype=object), pd.Series([], dtype=object)):
        result = fitted.transform(empty)
        assert result.shape == (0, 32)
        assert result.dtype == np.float32


def test_unicode_empty_and_odd_texts_match_the_oracle(fitted, tiny_oracle, texts):
    odd = [*texts, " ", "\n\t", "\u200b", "\U0001f600" * 5, "\x00 control"]

    vectors = fitted.transform(odd)

    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(
        vectors, tiny_oracle.vectors(odd, "mean"), atol=1e-5, rtol=0
    )


def test_texts_longer_than_max_length_are_truncated_with_a_warning(
    tiny_model_dir, tiny_oracle
):
    fits = "the " * 8  # 8 words + [CLS] + [SEP] = exactly 10 tokens: not cut
    too_long = ["the " * 9, "film " * 30, "a great film " * 5]
    texts = [fits, too_long[0], "dull", too_long[1], too_long[2]]
    estimator = vectorizer(tiny_model_dir, pooling="mean", max_length=10).fit(texts)

    with pytest.warns(skbert.TruncationWarning) as caught:
        vectors = estimator.transform(texts)

    assert len(caught) == 1
    message = str(caught[0].message)
    assert "3 of 5 texts" in message
    assert "max_length=10" in message
    assert "position 1" in message
    expected = tiny_oracle.vectors(texts, "mean", max_length=10)
    np.testing.assert_allclose(vectors, expected, atol=1e-5, rtol=0)
    assert not np.allclose(vectors[3], tiny_oracle.vector(too_long[1], "mean"))


def test_no_truncation_warning_when_everything_fits(tiny_model_dir):
    estimator = vectorizer(tiny_model_dir, max_length=10).fit(["probe"])

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimator.transform(["the " * 8, "a", ""])


def test_default_max_length_is_the_model_limit(tiny_model_dir, tiny_oracle):
    long_text = "the story " * 40  # 82 tokens, the tiny model takes 64

    with pytest.warns(skbert.TruncationWarning, match="1 of 2 texts"):
        vectors = (
            vectorizer(tiny_model_dir, pooling="max")
            .fit(["probe"])
            .transform(["a", long_text])
        )

    expected = tiny_oracle.vector(long_text, "max", max_length=TINY_MAX_LENGTH)
    np.testing.assert_allclose(vectors[1], expected, atol=1e-5, rtol=0)


def test_truncation_positions_count_across_chunks(tiny_model_dir, monkeypatch):
    monkeypatch.setattr(skbert._encoding.encode, "CHUNK_SIZE", 2)
    texts = ["a", "b", "c", "film " * 20, "d", "film " * 20]
    estimator = vectorizer(tiny_model_dir, max_length=8).fit(["probe"])

    with pytest.warns(skbert.TruncationWarning) as caught:
        estimator.transform(texts)

    message = str(caught[0].message)
    assert "2 of 6 texts" in message
    assert "position 3" in message


def test_truncation_warning_does_not_depend_on_the_embedding_cache(tiny_model_dir):
    # Every transform of a too-long text must say so, also when its vector
    # comes from the cache.
    texts = ["a", "film " * 20, "the " * 20]
    estimator = vectorizer(tiny_model_dir, max_length=8, cache="auto").fit(["probe"])

    for _ in range(2):
        with pytest.warns(skbert.TruncationWarning, match="2 of 3 texts"):
            estimator.transform(texts)


def test_max_length_above_the_model_limit_is_refused(tiny_model_dir):
    estimator = vectorizer(tiny_model_dir, max_length=TINY_MAX_LENGTH + 1)

    with pytest.raises(ValueError, match=f"limit of {TINY_MAX_LENGTH}"):
        estimator.fit(["a"])


def test_max_length_at_the_model_limit_is_accepted(tiny_model_dir):
    estimator = vectorizer(tiny_model_dir, max_length=TINY_MAX_LENGTH).fit(["a"])
    assert estimator.transform(["a"]).shape == (1, 32)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.array("abc"), "got a 0-d array"),
        (np.array(["abc"])[0:1].reshape(()), "got a 0-d array"),
        (bytearray(b"abc"), "bytearray object received"),
        (b"abc", "bytes object received"),
        (memoryview(b"abc"), "memoryview object received"),
    ],
)
@pytest.mark.parametrize("method", ["fit", "transform"])
def test_a_single_value_or_bytes_get_an_error_that_says_so(
    fitted, bad, message, method
):
    with pytest.raises((ValueError, TypeError), match=message):
        getattr(fitted, method)(bad)


@pytest.mark.parametrize("columns", [1, 3])
def test_a_sparse_matrix_is_refused_by_name(fitted, columns):
    import scipy.sparse

    sparse = scipy.sparse.csr_matrix(np.ones((2, columns)))
    with pytest.raises(TypeError, match="sparse matrix"):
        fitted.transform(sparse)


@pytest.mark.parametrize("empty", [[], (), np.array([], dtype=object)])
def test_fit_refuses_zero_samples_as_scikit_learn_does(tiny_model_dir, empty):
    """scikit-learn's estimators raise for zero samples; fit([]) was accepted
    (issue 25, item 7). transform of no texts still gives no rows."""
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(ValueError, match="0 sample") as ours:
        vectorizer(tiny_model_dir).fit(empty)
    with pytest.raises(ValueError, match="0 sample"):
        LogisticRegression().fit(np.empty((0, 2)), [])
    assert "fit(['probe'])" in str(ours.value)
    fitted = vectorizer(tiny_model_dir).fit(["probe"])
    assert fitted.transform(empty).shape == (0, fitted.hidden_size_)
