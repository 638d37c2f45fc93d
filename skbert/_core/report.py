"""What happened while texts were encoded, and the warnings that say so.

The encoder returns an :class:`EncodingReport` next to the vectors instead
of warning from deep inside; the estimator (or the command line) decides
what to say. Warnings are raised at the first frame outside skbert and
scikit-learn, so they point at the user's line whether ``transform`` was
called directly, through ``fit_transform``, a ``set_output`` wrapper, a
``Pipeline``, ``joblib.load`` or the command line (``tests/test_warning_locations.py``).
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field

__all__ = ["EncodingReport", "TruncationWarning", "warn_about"]

#: Modules whose frames are not the user's line: the libraries, and the
#: standard library's pure-Python unpicklers (``joblib.load`` runs
#: ``pickle._Unpickler``, ``copy.deepcopy`` calls ``__setstate__``).
_LIBRARY_PREFIXES = ("skbert.", "sklearn.", "joblib.", "pickle.", "copy.", "copyreg.")


class TruncationWarning(UserWarning):
    """Some texts were longer than ``max_length`` tokens and were cut.

    Attributes
    ----------
    positions : list of int
        Positions (in the input, 0-based) of the texts that were cut.
    n_texts : int
        How many texts the call encoded.
    max_length : int
        The token limit that applied.
    """

    def __init__(
        self,
        message: str,
        positions: list[int] | None = None,
        n_texts: int = 0,
        max_length: int = 0,
    ) -> None:
        super().__init__(message)
        self.positions = list(positions or ())
        self.n_texts = n_texts
        self.max_length = max_length

    @property
    def count(self) -> int:
        """How many texts were cut."""
        return len(self.positions)

    def __reduce__(self):
        return type(self), (str(self), self.positions, self.n_texts, self.max_length)


@dataclass
class EncodingReport:
    """What happened during one call of the encoder."""

    n_texts: int = 0
    max_length: int = 0
    #: The ``long_texts`` strategy that applied.
    long_texts: str = "truncate"
    #: Positions (in the input) of the texts that were truncated, ascending.
    truncated: list[int] = field(default_factory=list)
    #: Size of each batch that ran out of device memory and was split.
    out_of_memory_splits: list[int] = field(default_factory=list)
    #: Tokens the model read (special tokens and windows included; texts
    #: served from the cache or repeated in the input read none).
    tokens: int = 0


def user_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside the library modules, as
    seen from the function that calls :func:`warnings.warn` with it."""
    frame = sys._getframe(2)  # the caller of the function that asked
    level = 2
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not (module + ".").startswith(_LIBRARY_PREFIXES):
            return level
        frame = frame.f_back
        level += 1
    return 2


def warn_about(report: EncodingReport) -> None:
    """Warn about truncated texts and out-of-memory retries at the user's line."""
    level = user_stacklevel()
    if report.truncated:
        first = report.truncated[0]
        warnings.warn(
            TruncationWarning(
                f"{len(report.truncated)} of {report.n_texts} texts were longer than "
                f"max_length={report.max_length} tokens and were truncated (first "
                f"at position {first}). "
                + (
                    "Their vectors describe their first and last tokens "
                    '(long_texts="head_tail").'
                    if report.long_texts == "head_tail"
                    else f"Their vectors describe only the first {report.max_length}"
                    ' tokens; long_texts="chunk" covers whole texts.'
                ),
                report.truncated,
                report.n_texts,
                report.max_length,
            ),
            stacklevel=level,
        )
    splits = report.out_of_memory_splits
    if splits:
        warnings.warn(
            f"The device ran out of memory {len(splits)} time(s); each failing batch "
            f"(largest: {max(splits)} texts) was split in halves and retried, and "
            "every text was encoded once. Lower batch_size or set max_batch_tokens "
            "to avoid the retries.",
            RuntimeWarning,
            stacklevel=level,
        )
