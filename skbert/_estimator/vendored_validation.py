"""scikit-learn's declarative parameter validation, the part skbert uses.

A copy of the behaviour of ``sklearn.utils._param_validation`` and
``sklearn.base._fit_context`` for the constraint kinds that
``BertCLSVectorizer._parameter_constraints`` uses: types, ``None``,
``"boolean"``, ``"random_state"``, ``StrOptions`` and ``Interval``. scikit-learn keeps
those helpers private, so a release may move them; ``_sklearn_compat`` then
falls back to this module. ``tests/test_sklearn_compat.py`` holds the two to
the same verdict for every parameter and a range of values.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Container
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = [
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "fit_context",
    "validate_parameter_constraints",
]


class InvalidParameterError(ValueError, TypeError):
    """A parameter has an invalid type or value (scikit-learn's contract: both a
    ``ValueError`` and a ``TypeError``)."""


class StrOptions:
    """A finite set of strings."""

    def __init__(self, options: Container[str]) -> None:
        self.options = options

    def is_satisfied_by(self, value: object) -> bool:
        return isinstance(value, str) and value in self.options

    def __str__(self) -> str:
        return f"a str among {{{', '.join(repr(o) for o in sorted(self.options))}}}"


class Interval:
    """Numbers of ``type`` between ``left`` and ``right`` (``None``: unbounded)."""

    def __init__(
        self,
        type: type,  # scikit-learn's signature
        left: float | None,
        right: float | None,
        *,
        closed: str,
    ) -> None:
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"closed must be left, right, both or neither: {closed}")
        self.type, self.left, self.right, self.closed = type, left, right, closed

    def is_satisfied_by(self, value: object) -> bool:
        if not isinstance(value, self.type):
            return False
        if not isinstance(value, Integral) and math.isnan(value):
            return False
        # an open end excludes infinity itself, as scikit-learn's does
        left = -math.inf if self.left is None else self.left
        right = math.inf if self.right is None else self.right
        low_ok = value >= left if self.closed in ("left", "both") else value > left
        high_ok = value <= right if self.closed in ("right", "both") else value < right
        return bool(low_ok and high_ok)

    def _bound(self, value: float) -> float:
        return value if self.type is Integral else float(value)

    def __str__(self) -> str:
        kind = "an int" if self.type is Integral else "a float"
        left = "[" if self.closed in ("left", "both") else "("
        right = "]" if self.closed in ("right", "both") else ")"
        low = "-inf" if self.left is None else self._bound(self.left)
        high = "inf" if self.right is None else self._bound(self.right)
        return f"{kind} in the range {left}{low}, {high}{right}"


def _type_name(kind: type) -> str:
    if kind.__module__ == "builtins":
        return kind.__qualname__
    if kind is Integral:
        return "int"
    if kind is Real:
        return "float"
    return f"{kind.__module__}.{kind.__qualname__}"


#: scikit-learn's ``"random_state"``: a seed, a ``RandomState`` or ``None``.
_SEED = Interval(Integral, 0, 2**32 - 1, closed="both")


def _satisfies(constraint: object, value: object) -> bool:
    if constraint is None:
        return value is None
    if constraint == "boolean":
        return isinstance(value, (bool, np.bool_))
    if constraint == "random_state":
        return (
            value is None
            or isinstance(value, np.random.RandomState)
            or _SEED.is_satisfied_by(value)
        )
    if isinstance(constraint, type):
        return isinstance(value, constraint)
    return constraint.is_satisfied_by(value)  # StrOptions, Interval (ours or theirs)


def _describe(constraint: object) -> str:
    if constraint is None:
        return "None"
    if constraint == "boolean":
        return "an instance of 'bool' or an instance of 'numpy.bool'"
    if constraint == "random_state":
        return f"{_SEED}, an instance of 'numpy.random.mtrand.RandomState' or None"
    if isinstance(constraint, type):
        return f"an instance of {_type_name(constraint)!r}"
    return str(constraint)


def validate_parameter_constraints(
    parameter_constraints: dict[str, list[Any]],
    params: dict[str, Any],
    caller_name: str,
) -> None:
    """Raise ``InvalidParameterError`` for the first parameter that meets
    none of its constraints, with scikit-learn's wording."""
    for name, value in params.items():
        constraints = parameter_constraints.get(name)
        if constraints is None or constraints == "no_validation":
            continue
        if any(_satisfies(constraint, value) for constraint in constraints):
            continue
        shown = [_describe(c) for c in constraints]
        wanted = " or ".join([", ".join(shown[:-1]), shown[-1]] if shown[1:] else shown)
        raise InvalidParameterError(
            f"The {name!r} parameter of {caller_name} must be {wanted}. "
            f"Got {value!r} instead."
        )


def fit_context(fit_method: Callable) -> Callable:
    """``_fit_context(prefer_skip_nested_validation=True)``: validate the
    parameters, then fit with nested validation skipped."""
    from sklearn import config_context, get_config

    @functools.wraps(fit_method)
    def wrapper(estimator, *args, **kwargs):
        if not get_config().get("skip_parameter_validation", False):
            validate_parameter_constraints(
                estimator._parameter_constraints,
                estimator.get_params(deep=False),
                caller_name=type(estimator).__name__,
            )
        with config_context(skip_parameter_validation=True):
            return fit_method(estimator, *args, **kwargs)

    return wrapper
