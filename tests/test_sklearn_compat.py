"""No upper bound on scikit-learn: its private validation helpers have a copy.

``skbert._estimator.sklearn_compat`` uses scikit-learn's ``_param_validation`` and
``_fit_context`` while they exist and ``skbert._estimator.vendored_validation``
otherwise. scikit-learn's own functions are the oracle for the copy: both
must accept and refuse the same values of every parameter, with the same
wording.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from numbers import Integral
from pathlib import Path

import numpy as np
import pytest
from helpers import run_python
from sklearn import config_context, get_config
from sklearn.utils import _param_validation as sklearn_validation

from skbert import BertCLSVectorizer
from skbert._estimator import sklearn_compat as _sklearn_compat
from skbert._estimator import vendored_validation as vendored

CONSTRAINTS = BertCLSVectorizer._parameter_constraints
VALUES = [
    None, True, False, np.bool_(True), 0, 1, 2, -1, 7, 2**40, np.int64(3),
    np.int32(0), 1.5, 2.0, float("nan"), float("inf"), Decimal(3), "cls", "mean",
    "pooler", "sum", "", "auto", "cpu", "float32", "float64", "onnx", "weights",
    "reference", b"bytes", Path("/tmp"), (0, -1), [1, 2], (), {"a": 1}, object(),
]  # fmt: skip


def with_vendored_objects(constraints: list) -> list:
    """The same constraints built from the vendored classes."""
    rebuilt = []
    for constraint in constraints:
        if isinstance(constraint, sklearn_validation.StrOptions):
            constraint = vendored.StrOptions(constraint.options)
        elif isinstance(constraint, sklearn_validation.Interval):
            constraint = vendored.Interval(
                constraint.type,
                constraint.left,
                constraint.right,
                closed=constraint.closed,
            )
        rebuilt.append(constraint)
    return rebuilt


def verdict(validate, constraints: dict, name: str, value: object) -> str | None:
    """``None`` when accepted, else the message of the error."""
    try:
        validate(constraints, {name: value}, caller_name="BertCLSVectorizer")
    except sklearn_validation.InvalidParameterError as exc:
        assert not isinstance(exc, vendored.InvalidParameterError)
        return str(exc)
    except vendored.InvalidParameterError as exc:
        assert isinstance(exc, ValueError) and isinstance(exc, TypeError)
        return str(exc)
    return None


def message_shape(message: str | None) -> list[str] | None:
    """The message without the order of the options in a set."""
    return None if message is None else sorted(re.sub(r"[{},]", " ", message).split())


@pytest.mark.parametrize("name", sorted(CONSTRAINTS))
def test_vendored_validation_agrees_with_scikit_learn(name):
    ours = {name: with_vendored_objects(CONSTRAINTS[name])}
    for value in VALUES:
        expected = verdict(
            sklearn_validation.validate_parameter_constraints, CONSTRAINTS, name, value
        )
        # the vendored function on scikit-learn's objects and on its own
        for constraints in (CONSTRAINTS, ours):
            got = verdict(
                vendored.validate_parameter_constraints, constraints, name, value
            )
            assert message_shape(got) == message_shape(expected), (name, value)


def test_vendored_interval_bounds_and_nan():
    closed_left = vendored.Interval(Integral, 1, None, closed="left")
    open_both = vendored.Interval(float, 0.0, 1.0, closed="neither")

    assert closed_left.is_satisfied_by(1) and not closed_left.is_satisfied_by(0)
    assert not closed_left.is_satisfied_by(1.0)
    assert open_both.is_satisfied_by(0.5)
    assert not open_both.is_satisfied_by(0.0) and not open_both.is_satisfied_by(1.0)
    assert not open_both.is_satisfied_by(float("nan"))
    assert str(closed_left) == "an int in the range [1, inf)"
    with pytest.raises(ValueError, match="closed"):
        vendored.Interval(Integral, 0, 1, closed="up")


class Recorder:
    """A minimal estimator: what a vendored ``fit_context`` did around fit."""

    _parameter_constraints = {
        "size": [vendored.Interval(Integral, 1, None, closed="left")]
    }

    def __init__(self, size=1):
        self.size = size

    def get_params(self, deep=True):
        return {"size": self.size}

    @vendored.fit_context
    def fit(self):
        """Fit."""
        self.skip_inside_ = get_config()["skip_parameter_validation"]
        return self


def test_vendored_fit_context_validates_then_skips_nested_validation():
    fitted = Recorder(size=3).fit()

    assert fitted.skip_inside_ is True
    assert get_config()["skip_parameter_validation"] is False
    assert Recorder.fit.__doc__ == "Fit."
    with pytest.raises(vendored.InvalidParameterError, match="'size' parameter"):
        Recorder(size=0).fit()
    with config_context(skip_parameter_validation=True):
        assert Recorder(size=0).fit().size == 0  # the user turned validation off


def test_installed_scikit_learn_helpers_are_used_while_they_exist():
    assert _sklearn_compat.VENDORED is False
    assert _sklearn_compat.InvalidParameterError is (
        sklearn_validation.InvalidParameterError
    )


MOVED_CHILD = """
import json
import sys
import types

import sklearn.base
import sklearn.utils._param_validation as validation

# While skbert is imported, scikit-learn looks like a release that moved its
# private helpers; scikit-learn itself gets them back afterwards.
fit_context = sklearn.base._fit_context
del sklearn.base._fit_context
sys.modules["sklearn.utils._param_validation"] = types.ModuleType("moved")
from skbert import BertCLSVectorizer
from skbert._estimator import sklearn_compat as _sklearn_compat
sys.modules["sklearn.utils._param_validation"] = validation
sklearn.base._fit_context = fit_context

result = {"vendored": _sklearn_compat.VENDORED}
try:
    BertCLSVectorizer(model_name_or_path=CONFIG["model"], pooling="sum").fit(["probe"])
except _sklearn_compat.InvalidParameterError as exc:
    result["error"] = str(exc)
fitted = BertCLSVectorizer(model_name_or_path=CONFIG["model"], device="cpu")
result["shape"] = list(fitted.fit_transform(["a great film"]).shape)
print(json.dumps(result))
"""


@pytest.mark.slow
def test_skbert_still_validates_when_scikit_learn_moves_its_helpers(
    tiny_model_dir, tmp_path
):
    config = {"model": str(tiny_model_dir)}
    output = run_python(f"CONFIG = {config!r}\n" + MOVED_CHILD, cwd=tmp_path)
    result = json.loads(output.strip().splitlines()[-1])

    assert result["vendored"] is True
    assert result["error"].startswith(
        "The 'pooling' parameter of BertCLSVectorizer must be a str among"
    )
    assert result["shape"] == [1, 32]
