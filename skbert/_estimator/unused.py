"""Options that do nothing with the other options chosen, as warning messages.

scikit-learn's text vectorizers tell the user when a parameter is ignored by
the chosen analyzer (``_warn_for_unused_params`` in
``sklearn/feature_extraction/text.py``). :class:`~skbert.BertCLSVectorizer`
does the same for the options of one ``long_texts`` strategy set beside
another: ``stride=32`` with ``long_texts="truncate"`` changes nothing, and
the user should hear so rather than compare vectors to find out.
Dependency-free: a pure function of the parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._core.options import TUNING_DEFAULTS

__all__ = ["unused_option_warnings"]

#: Option -> (its default, which does nothing anywhere; the ``long_texts``
#: strategy that reads it).
_LONG_TEXT_OPTIONS: dict[str, tuple[Any, str]] = {
    "head_tokens": (None, "head_tail"),
    "stride": (0, "chunk"),
    "chunk_combine": ("mean", "chunk"),
}


def unused_option_warnings(params: Mapping[str, Any]) -> list[str]:
    """One message per option in ``params`` set to a value that does nothing.

    Parameters
    ----------
    params : mapping
        The estimator's parameters, as ``get_params(deep=False)`` returns them.

    Returns
    -------
    messages : list of str
        Empty when every option set away from its default is used.

    Examples
    --------
    >>> params = {"long_texts": "truncate", "stride": 32}
    >>> print(*unused_option_warnings(params))  # doctest: +NORMALIZE_WHITESPACE
    stride=32 does nothing with long_texts='truncate': it applies to
    long_texts='chunk' only.
    >>> unused_option_warnings({"long_texts": "chunk", "stride": 32})
    []
    >>> print(*unused_option_warnings({"fine_tune": None, "tune_epochs": 3}))
    tune_epochs=3 does nothing with fine_tune=None: it applies to fine-tuning only.
    """
    strategy = params.get("long_texts", "truncate")
    messages = []
    for name, (default, used_by) in _LONG_TEXT_OPTIONS.items():
        value = params.get(name, default)
        if value != default and strategy != used_by:
            messages.append(
                f"{name}={value!r} does nothing with long_texts={strategy!r}: it "
                f"applies to long_texts={used_by!r} only."
            )
    objective = params.get("fine_tune")
    for name, (default, used_by) in TUNING_DEFAULTS.items():
        value = params.get(name, default)
        if value == default or objective is not None and used_by in (None, objective):
            continue
        applies = "fine-tuning" if used_by is None else f"fine_tune={used_by!r}"
        messages.append(
            f"{name}={value!r} does nothing with fine_tune={objective!r}: it "
            f"applies to {applies} only."
        )
    return messages
