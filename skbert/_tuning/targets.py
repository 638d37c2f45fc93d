"""The labels a fine-tuning ``fit(X, y)`` learns from: checked, then coded.

Fine-tuning adapts the encoder to class labels (binary or multi-class,
strings or integers); anything else gets an error that names ``fine_tune``
and says what was found, before any work is done.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["class_codes"]

#: scikit-learn's ``type_of_target`` kinds that fine-tuning accepts.
_CLASS_TARGETS = ("binary", "multiclass")


def class_codes(y: Any, n_texts: int, objective: str) -> tuple[np.ndarray, np.ndarray]:
    """``y`` as class codes ``0 .. n_classes - 1`` and the sorted classes.

    Parameters
    ----------
    y : array-like of shape (n_texts,) or None
        One class label per text.
    n_texts : int
        How many texts ``fit`` was given.
    objective : str
        The ``fine_tune`` value, for the messages.

    Returns
    -------
    codes : ndarray of shape (n_texts,), dtype int64
    classes : ndarray of shape (n_classes,)

    Raises
    ------
    ValueError
        If ``y`` is missing, not one class label per text, or holds fewer
        than two classes.
    """
    from sklearn.utils.multiclass import type_of_target

    if y is None:
        raise ValueError(
            f"fine_tune={objective!r} adapts the encoder to class labels, but fit "
            "was called without y. Pass the labels, fit(X, y), or set "
            "fine_tune=None to use the pre-trained encoder as it is."
        )
    kind = type_of_target(y, input_name="y")
    if kind not in _CLASS_TARGETS:
        what = (
            "a regression target (continuous values)"
            if kind.startswith("continuous")
            else f"a {kind!r} target"
        )
        raise ValueError(
            f"fine_tune={objective!r} learns from class labels (binary or "
            f"multi-class, one per text), but y is {what}. Encode the classes as "
            "integers or strings, or set fine_tune=None."
        )
    labels = np.asarray(y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != n_texts:
        raise ValueError(
            f"fine_tune={objective!r}: X has {n_texts} texts but y has "
            f"{len(labels)} labels; pass one label per text."
        )
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"fine_tune={objective!r} needs at least two classes in y; it holds "
            f"only {classes.tolist()!r}."
        )
    return codes.astype(np.int64), classes
