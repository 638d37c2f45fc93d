"""Output containers and dataframe inputs: polars as well as pandas.

``set_output(transform="polars")`` must give a polars DataFrame with the
feature names as columns, and polars ``Series`` / one-column ``DataFrame``
inputs must be read like their pandas counterparts. The oracle is
transformers' own ``BertModel`` (``tiny_oracle``).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import TINY_HIDDEN_SIZE, vectorizer
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

pl = pytest.importorskip("polars")

TEXTS = ["a great film", "dull and far too long", "", "one two three", "fun"]
ATOL = 1e-5


@pytest.fixture
def estimator(tiny_model_dir):
    return vectorizer(tiny_model_dir, pooling="mean")


@pytest.mark.parametrize(
    "make_input",
    [
        pytest.param(lambda t: pl.Series("review", t), id="series"),
        pytest.param(lambda t: pl.DataFrame({"review": t}), id="one-column-frame"),
        pytest.param(
            lambda t: pl.Series("review", t, dtype=pl.Categorical), id="categorical"
        ),
    ],
)
def test_polars_inputs_give_the_oracle_vectors(estimator, tiny_oracle, make_input):
    expected = tiny_oracle.vectors(TEXTS, "mean")

    fitted = estimator.fit_transform(make_input(TEXTS))
    again = estimator.transform(make_input(TEXTS))

    for result in (fitted, again):
        assert type(result) is np.ndarray
        np.testing.assert_allclose(result, expected, atol=ATOL, rtol=0)


def test_polars_null_is_refused_naming_its_position(estimator):
    with pytest.raises(TypeError, match="element at position 2 is None"):
        estimator.fit_transform(pl.Series(["a", "b", None]))


def test_polars_frame_with_two_columns_is_refused(estimator):
    frame = pl.DataFrame({"review": TEXTS, "title": TEXTS})

    with pytest.raises(ValueError, match="got 2 columns"):
        estimator.fit_transform(frame)


def test_polars_series_of_numbers_is_refused(estimator):
    with pytest.raises(TypeError, match=r"element at position 0 is 1 \(int\)"):
        estimator.fit_transform(pl.Series([1, 2]))


def test_set_output_polars_gives_named_columns(estimator, tiny_oracle):
    estimator.set_output(transform="polars")

    frame = estimator.fit_transform(TEXTS)
    again = estimator.transform(pl.Series("review", TEXTS))

    for result in (frame, again):
        assert isinstance(result, pl.DataFrame)
        assert result.columns == list(estimator.get_feature_names_out())
        assert result.shape == (len(TEXTS), TINY_HIDDEN_SIZE)
        assert result.dtypes == [pl.Float32] * TINY_HIDDEN_SIZE
        np.testing.assert_allclose(
            result.to_numpy(), tiny_oracle.vectors(TEXTS, "mean"), atol=ATOL, rtol=0
        )


def test_polars_column_transformer_and_pipeline(tiny_model_dir, tiny_oracle):
    frame = pl.DataFrame(
        {"review": TEXTS, "stars": np.arange(len(TEXTS), dtype=np.float64)}
    )
    try:
        ColumnTransformer([("stars", "passthrough", ["stars"])]).fit(frame)
    except AttributeError as exc:  # scikit-learn 1.8 and polars 2: '.get_loc'
        pytest.skip(f"this scikit-learn cannot select polars columns: {exc}")
    columns = ColumnTransformer(
        [
            ("bert", vectorizer(tiny_model_dir, pooling="mean"), ["review"]),
            ("stars", "passthrough", ["stars"]),
        ]
    ).set_output(transform="polars")

    result = columns.fit_transform(frame)

    assert isinstance(result, pl.DataFrame)
    assert result.columns[0] == "bert__bertclsvectorizer0"
    assert result.columns[-1] == "stars__stars"
    np.testing.assert_allclose(
        result.to_numpy()[:, :TINY_HIDDEN_SIZE],
        tiny_oracle.vectors(TEXTS, "mean"),
        atol=ATOL,
        rtol=0,
    )
    pipeline = make_pipeline(columns, LogisticRegression()).fit(frame, [0, 1, 0, 1, 0])
    assert pipeline.predict(frame).shape == (len(TEXTS),)
