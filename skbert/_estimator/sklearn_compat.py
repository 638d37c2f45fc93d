"""The scikit-learn helpers skbert needs that scikit-learn keeps private.

Declarative parameter validation (``_parameter_constraints`` with
``StrOptions`` and ``Interval``, checked by ``_fit_context``) lives in
``sklearn.utils._param_validation`` and ``sklearn.base``, private modules that
a release may reorganise. skbert uses scikit-learn's own while they are there,
so its estimator checks and ``InvalidParameterError`` are scikit-learn's, and
falls back to the copy in ``_vendored_validation`` when an import fails. So no
upper bound on scikit-learn is needed. (The ``sklearn-compat`` package would
not remove it: it caps scikit-learn itself, at the next minor release.)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "VENDORED",
    "fit_context",
    "validate_params",
]

try:
    from sklearn.base import _fit_context
    from sklearn.utils._param_validation import (
        Interval,
        InvalidParameterError,
        StrOptions,
        validate_parameter_constraints,
    )
except ImportError:  # a scikit-learn release moved them
    from .vendored_validation import (
        Interval,
        InvalidParameterError,
        StrOptions,
        fit_context,
        validate_parameter_constraints,
    )

    #: Whether the vendored copy is in use (scikit-learn's helpers moved).
    VENDORED = True
else:
    fit_context = _fit_context(prefer_skip_nested_validation=True)
    VENDORED = False


def validate_params(estimator: Any) -> None:
    """Check ``estimator``'s parameters against its ``_parameter_constraints``."""
    validate_parameter_constraints(
        estimator._parameter_constraints,
        estimator.get_params(deep=False),
        caller_name=type(estimator).__name__,
    )
