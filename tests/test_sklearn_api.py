"""scikit-learn citizenship: the estimator checks that apply, and the API around.

``check_estimator`` cannot be used: with ``input_tags.string=True`` and
``two_d_array=False`` it skips nearly everything, and most individual checks
feed numeric 2-D arrays, which a text vectorizer rightly refuses. The checks
below are the ones that do not need numeric data (or whose numeric call is
refused by parameter validation before the data is looked at). The numeric-data
checks that matter for a transformer are re-done further down on texts.
"""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from helpers import TINY_HIDDEN_SIZE, vectorizer
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils import estimator_checks, get_tags
from sklearn.utils.validation import check_is_fitted

from skbert import BertCLSVectorizer

NAME = "BertCLSVectorizer"
SKLEARN_VERSION = tuple(int(part) for part in sklearn.__version__.split(".")[:2])
TEXTS = ["a great film", "dull and far too long", "", "one two three", "fun"]

APPLICABLE_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_get_params_invariance",
    "check_set_params",
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_parameters_default_constructible",
    "check_mixin_order",
    "check_valid_tag_types",
    "check_estimator_tags_renamed",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_get_feature_names_out_error",
    # Calls transform on numbers: check_is_fitted must refuse before the data.
    "check_transformers_unfitted",
    # Fits on numbers, but every call carries an invalid parameter, so
    # _fit_context must raise InvalidParameterError before X is looked at.
    "check_param_validation",
]
# Not run, and why (docs/api.md lists every check, and a test below keeps the
# two in step):
# - check_estimators_unfitted: only calls predict/decision_function (none here).
# - check_transformer_get_feature_names_out(_pandas), check_set_output_transform,
#   check_set_output_transform_pandas, check_global_output_transform_pandas,
#   check_transformer_preserve_dtypes: return at once when two_d_array=False,
#   so they would pass without checking anything; re-done on texts below.
# - check_fit_check_is_fitted, check_dont_overwrite_parameters,
#   check_estimators_overwrite_params, check_estimators_fit_returns_self,
#   check_fit_idempotent, check_estimators_pickle, check_pipeline_consistency:
#   fit on numeric 2-D arrays, which a text vectorizer refuses; re-done on texts.
# - check_n_features_in: like CountVectorizer, a text vectorizer has no
#   n_features_in_ (its input is not a feature matrix).
# - sample-weight, classifier, regressor, clusterer, outlier, sparse, NaN/inf,
#   dtype and complex-data checks: not about a text transformer.


def documented_checks() -> dict[str, set[str]]:
    """The checks docs/api.md lists under "Run" and under "Not run"."""
    api = (Path(__file__).parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    section = api.split("## scikit-learn estimator checks", 1)[1].split("\n## ", 1)[0]
    run, not_run = section.split("### Run", 1)[1].split("### Not run", 1)
    return {
        "run": set(re.findall(r"`(check_\w+)`", run)),
        "not run": set(re.findall(r"`(check_\w+)`", not_run)),
    }


def transformer_checks() -> set[str]:
    """The checks scikit-learn's check_estimator runs on a numeric transformer."""
    from sklearn.preprocessing import StandardScaler

    names = set()
    for _, check in estimator_checks.estimator_checks_generator(
        StandardScaler(), legacy=True, mark=None
    ):
        names.add(getattr(check, "func", check).__name__)
    return names


def test_check_estimator_alone_would_run_almost_nothing():
    from sklearn.exceptions import SkipTestWarning

    with pytest.warns(SkipTestWarning, match="Can't test estimator"):
        checks = list(
            estimator_checks.estimator_checks_generator(
                BertCLSVectorizer(), legacy=True, mark=None
            )
        )
    assert len(checks) <= 2  # why APPLICABLE_CHECKS are called one by one


def test_the_api_page_lists_the_checks_that_run_and_says_why_the_others_do_not():
    documented = documented_checks()

    assert documented["run"] == set(APPLICABLE_CHECKS)
    assert not documented["run"] & documented["not run"]
    undocumented = transformer_checks() - documented["run"] - documented["not run"]
    assert not undocumented, (
        f"scikit-learn runs {sorted(undocumented)} on transformers: add each to "
        "docs/api.md, to APPLICABLE_CHECKS if it applies to a text vectorizer"
    )


@pytest.fixture
def estimator(tiny_model_dir):
    return vectorizer(tiny_model_dir, pooling="mean")


@pytest.mark.parametrize("check_name", APPLICABLE_CHECKS)
def test_scikit_learn_estimator_check(check_name, estimator):
    getattr(estimator_checks, check_name)(NAME, estimator)


def test_default_constructed_estimator_passes_the_init_checks():
    default = BertCLSVectorizer()
    for check_name in ("check_no_attributes_set_in_init", "check_set_params"):
        getattr(estimator_checks, check_name)(NAME, default)


def test_init_is_keyword_only():
    with pytest.raises(TypeError):
        BertCLSVectorizer("bert-base-uncased")
    parameters = inspect.signature(BertCLSVectorizer.__init__).parameters
    kinds = {p.kind for name, p in parameters.items() if name != "self"}
    assert kinds == {inspect.Parameter.KEYWORD_ONLY}


def test_init_stores_arguments_unchanged_and_loads_nothing(tmp_path):
    folder = tmp_path / "not-there-yet"
    layers = (0, -1)
    estimator = BertCLSVectorizer(model_name_or_path=folder, layers=layers)

    assert estimator.model_name_or_path is folder
    assert estimator.layers is layers
    assert not [key for key in vars(estimator) if key.endswith("_")]


def test_clone_get_params_set_params_round_trip(tiny_model_dir):
    params = {
        "model_name_or_path": str(tiny_model_dir),
        "pooling": "max",
        "layers": (1, 2),
        "normalize": True,
        "max_length": 32,
        "batch_size": 3,
        "device": "cpu",
        "dtype": "float32",
        "persist": "reference",
        "cache": None,
    }
    estimator = BertCLSVectorizer(**params)

    cloned = clone(estimator)
    reset = BertCLSVectorizer().set_params(**estimator.get_params())

    for other in (cloned, reset):
        assert other.get_params() == estimator.get_params()
        for name, value in params.items():
            assert other.get_params()[name] == value


def test_clone_of_a_fitted_estimator_is_unfitted(estimator):
    estimator.fit(TEXTS)

    cloned = clone(estimator)

    with pytest.raises(NotFittedError):
        check_is_fitted(cloned)


def test_transform_before_fit_raises_not_fitted(estimator):
    with pytest.raises(NotFittedError):
        estimator.transform(TEXTS)
    with pytest.raises(NotFittedError):
        estimator.get_feature_names_out()


def test_fit_returns_self_and_sets_only_trailing_underscore_attributes(estimator):
    params_before = copy.deepcopy(estimator.get_params())
    hashes_before = {k: joblib.hash(v) for k, v in params_before.items()}
    public_before = {k for k in vars(estimator) if not k.startswith("_")}

    assert estimator.fit(TEXTS) is estimator

    check_is_fitted(estimator)
    added = {k for k in vars(estimator) if not k.startswith("_")} - public_before
    assert added and all(key.endswith("_") for key in added)
    assert {k: joblib.hash(v) for k, v in estimator.get_params().items()} == (
        hashes_before
    )
    assert estimator.hidden_size_ == TINY_HIDDEN_SIZE
    assert estimator.n_layers_ == 3
    assert estimator.fingerprint_.startswith("sha256:")


def test_fit_is_idempotent(estimator):
    first = estimator.fit(TEXTS).transform(TEXTS)
    fingerprint = estimator.fingerprint_

    second = estimator.fit(TEXTS).fit(TEXTS).transform(TEXTS)

    assert estimator.fingerprint_ == fingerprint
    np.testing.assert_array_equal(first, second)


def test_fit_does_not_depend_on_the_texts(estimator, tiny_model_dir):
    on_texts = estimator.fit(TEXTS).transform(TEXTS)
    on_nothing = (
        vectorizer(tiny_model_dir, pooling="mean").fit(["probe"]).transform(TEXTS)
    )

    np.testing.assert_array_equal(on_texts, on_nothing)


def test_transform_returns_float32_array_of_hidden_size(estimator):
    result = estimator.fit(TEXTS).transform(TEXTS)

    assert type(result) is np.ndarray
    assert result.dtype == np.float32
    assert result.shape == (len(TEXTS), TINY_HIDDEN_SIZE)
    assert estimator.transform([]).shape == (0, TINY_HIDDEN_SIZE)


def test_fit_transform_equals_fit_then_transform(estimator, tiny_model_dir):
    fit_transformed = estimator.fit_transform(TEXTS)
    separately = vectorizer(tiny_model_dir, pooling="mean").fit(TEXTS).transform(TEXTS)

    np.testing.assert_array_equal(fit_transformed, separately)


def test_tags_say_it_eats_strings():
    tags = get_tags(BertCLSVectorizer())

    assert tags.input_tags.string is True
    assert tags.input_tags.two_d_array is False
    assert tags.transformer_tags is not None
    assert tags.requires_fit is True


def test_feature_names_out(estimator):
    estimator.fit(TEXTS)

    names = estimator.get_feature_names_out()

    assert isinstance(names, np.ndarray) and names.dtype == object
    assert list(names) == [f"bertclsvectorizer{i}" for i in range(TINY_HIDDEN_SIZE)]


def test_set_output_pandas_gives_named_columns_and_keeps_the_index(
    estimator, tiny_oracle
):
    series = pd.Series(TEXTS, index=[50, 40, 30, 20, 10], name="review")
    estimator.set_output(transform="pandas")

    frame = estimator.fit_transform(series)
    again = estimator.transform(series)

    # scikit-learn keeps the index of a Series input from 1.8 on (before: 0..n-1)
    index = [50, 40, 30, 20, 10] if SKLEARN_VERSION >= (1, 8) else list(range(5))
    for result in (frame, again):
        assert isinstance(result, pd.DataFrame)
        assert list(result.columns) == list(estimator.get_feature_names_out())
        assert list(result.index) == index
        np.testing.assert_allclose(
            result.to_numpy(), tiny_oracle.vectors(TEXTS, "mean"), atol=1e-5, rtol=0
        )


def test_set_output_default_changes_nothing(estimator):
    plain = estimator.fit(TEXTS).transform(TEXTS)

    estimator.set_output(transform="default")

    np.testing.assert_array_equal(estimator.transform(TEXTS), plain)


def labelled(count=16):
    texts = [
        ("great fun and the best film" if i % 2 else "dull boring and the worst film")
        + f" {'very ' * (i % 5)}"
        for i in range(count)
    ]
    return texts, np.arange(count) % 2


def test_pipeline_with_logistic_regression(tiny_model_dir):
    texts, labels = labelled()
    pipeline = make_pipeline(vectorizer(tiny_model_dir), LogisticRegression())

    pipeline.fit(texts, labels)

    assert pipeline.predict(texts).shape == (len(texts),)
    assert pipeline.predict_proba(texts).shape == (len(texts), 2)
    names = pipeline[:-1].get_feature_names_out()
    assert list(names[:2]) == ["bertclsvectorizer0", "bertclsvectorizer1"]


def test_grid_search_over_pooling(tiny_model_dir):
    texts, labels = labelled()
    pipeline = Pipeline(
        [("bert", vectorizer(tiny_model_dir)), ("clf", LogisticRegression())]
    )
    search = GridSearchCV(
        pipeline,
        {"bert__pooling": ["cls", "pooler", "mean", "max"]},
        cv=2,
        error_score="raise",
    )

    search.fit(texts, labels)

    assert search.best_params_["bert__pooling"] in {"cls", "pooler", "mean", "max"}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.predict(texts).shape == (len(texts),)


@pytest.mark.parametrize(
    "column", [["review"], "review"], ids=["one-column-frame", "series"]
)
def test_column_transformer(tiny_model_dir, tiny_oracle, column):
    frame = pd.DataFrame({"review": TEXTS, "stars": np.arange(len(TEXTS), dtype=float)})
    transformer = ColumnTransformer(
        [
            ("bert", vectorizer(tiny_model_dir, pooling="mean"), column),
            ("stars", "passthrough", ["stars"]),
        ]
    )

    result = transformer.fit_transform(frame)

    assert result.shape == (len(TEXTS), TINY_HIDDEN_SIZE + 1)
    np.testing.assert_allclose(
        result[:, :TINY_HIDDEN_SIZE],
        tiny_oracle.vectors(TEXTS, "mean"),
        atol=1e-5,
        rtol=0,
    )
    np.testing.assert_array_equal(result[:, -1], frame["stars"])
    names = transformer.get_feature_names_out()
    assert names[0] == "bert__bertclsvectorizer0"
    assert names[-1] == "stars__stars"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("pooling", "sum"),
        ("layers", "last"),
        ("normalize", "yes"),
        ("max_length", 1),
        ("batch_size", 0),
        ("device", 0),
        ("dtype", "float64"),
        ("persist", "nothing"),
        ("model_name_or_path", 42),
    ],
)
def test_invalid_parameters_are_refused_at_fit_with_their_name(
    tiny_model_dir, name, value
):
    from sklearn.utils._param_validation import InvalidParameterError

    estimator = vectorizer(tiny_model_dir).set_params(**{name: value})

    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        estimator.fit(TEXTS)
