"""Validate raw text input: texts -> ``list[str]`` or a clear error."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["check_texts"]

_STRING_ERROR = "Iterable over raw text documents expected, string object received."


def _describe(value: object) -> str:
    if value is None:
        return "None"
    if isinstance(value, float) and np.isnan(value):
        return "NaN (float)"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


def _is_polars(X: object) -> bool:
    """Whether ``X`` is a polars object (told without importing polars)."""
    return type(X).__module__.partition(".")[0] == "polars"


def _flatten_one_column(X: object) -> object:
    """Turn a one-column DataFrame or 2-D array into a 1-D sequence."""
    shape = getattr(X, "shape", None)
    if shape is None or len(shape) != 2:
        if shape is not None and len(shape) > 2:
            raise ValueError(
                f"Expected a 1-D sequence of texts or a one-column 2-D array; got an "
                f"array with {len(shape)} dimensions (shape {tuple(shape)})."
            )
        return X
    if shape[1] != 1:
        raise ValueError(
            "Expected a 1-D sequence of texts or a one-column 2-D array/DataFrame "
            f"(as ColumnTransformer passes); got {shape[1]} columns (shape "
            f"{tuple(shape)}). Select the text column, e.g. X['text']."
        )
    if hasattr(X, "iloc"):  # pandas DataFrame
        return X.iloc[:, 0]
    if _is_polars(X):  # polars DataFrame
        return X.to_series(0)
    return np.asarray(X, dtype=object)[:, 0]


def check_texts(X: object) -> list[str]:
    """Return ``X`` as a list of ``str``, or raise naming the first bad element.

    Parameters
    ----------
    X : iterable of str
        A list, tuple, 1-D array, pandas or polars Series, or a one-column 2-D
        array or pandas or polars DataFrame of texts.

    Returns
    -------
    texts : list of str

    Raises
    ------
    ValueError
        If ``X`` is a bare string or has the wrong shape.
    TypeError
        If ``X`` is not iterable or an element is not a ``str``.

    Examples
    --------
    >>> check_texts(("a", "b"))
    ['a', 'b']
    >>> check_texts(["ok", None])
    Traceback (most recent call last):
    ...
    TypeError: Every text must be a str; element at position 1 is None.
    """
    if isinstance(X, str):
        raise ValueError(_STRING_ERROR)
    if isinstance(X, (bytes, bytearray, memoryview)):
        raise TypeError(
            "Iterable over raw text documents expected, "
            f"{type(X).__name__} object received: texts are str; decode the bytes "
            "first (e.g. data.decode('utf-8')) and pass a list of texts."
        )
    if type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"Expected texts; got a scipy sparse matrix (shape {X.shape}), which "
            "holds numbers, such as the output of a vectorizer. Pass the raw texts "
            "(a list, 1-D array or pandas Series of str)."
        )
    if isinstance(X, np.ndarray) and X.ndim == 0:
        raise ValueError(
            f"Expected a 1-D sequence of texts; got a 0-d array (a single value, "
            f"{_describe(X.item())}). Wrap a single text in a list: [text]."
        )
    X = _flatten_one_column(X)
    if _is_polars(X) and hasattr(X, "to_list"):  # polars Series: nulls are None
        X = X.to_list()
    elif hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas Series
        X = X.to_numpy(dtype=object)
    if not isinstance(X, Iterable) or isinstance(X, dict):
        raise TypeError(
            "Expected an iterable of str (list, tuple, 1-D array, pandas Series); "
            f"got {type(X).__name__}."
        )
    texts = list(X)
    for position, value in enumerate(texts):
        if not isinstance(value, str):
            raise TypeError(
                f"Every text must be a str; element at position {position} is "
                f"{_describe(value)}."
            )
        if not value.isascii():
            _check_unicode(value, position)
    # numpy str_ is a str subclass; plain str keeps tokenizers and hashing uniform.
    return [text if type(text) is str else str(text) for text in texts]


def _check_unicode(text: str, position: int) -> None:
    """Refuse lone surrogates: not Unicode, so no tokenizer can encode them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        raise ValueError(
            f"The text at position {position} contains a lone surrogate "
            f"(U+{code:04X} at character {exc.start}), which is not valid Unicode "
            "and cannot be encoded. It usually comes from bytes decoded with "
            "errors='surrogateescape'; decode the original bytes with "
            "errors='replace', or repair the text with "
            "text.encode('utf-8', 'surrogatepass').decode('utf-8', 'replace')."
        ) from None
