"""The names pickles and skops files record for skbert's classes."""

from __future__ import annotations

from typing import TypeVar

_T = TypeVar("_T", bound=type)


def public(cls: _T) -> _T:
    """Name ``cls`` after the package (``skbert.<name>``), as numpy names its types.

    A pickle records a class by its module and name; a public name keeps stored
    models loading when private modules move, and gives skops users names to
    trust that the docs can promise. The class must be importable from
    ``skbert`` (``__all__``).
    """
    cls.__module__ = "skbert"
    return cls
