"""Small labelled text data sets shipped with skbert, for examples and the demo.

Reading them needs only the standard library and numpy (no torch, no pandas).
"""

from __future__ import annotations

import numpy as np

from ._core.shipped import SENTIMENT_SOURCES, read_sentences

__all__ = ["SENTIMENT_SOURCES", "load_sentiment_sentences"]


def load_sentiment_sentences(source: str = "yelp") -> tuple[list[str], np.ndarray]:
    """Load the UCI "Sentiment Labelled Sentences" (binary, sentence level).

    Each source holds 1,000 short review sentences, 500 positive and 500
    negative, kept exactly as published (nothing lowercased or stripped). They
    were collected for Kotzias et al., *From Group to Individual Labels using
    Deep Features*, KDD 2015; please cite the paper and the UCI data set
    (https://doi.org/10.24432/C57604) when you use them. The licence is not
    stated beyond that request; see ``skbert/_data/CITATION.md``.

    Parameters
    ----------
    source : {"yelp", "amazon", "imdb", "all"}, default="yelp"
        Which reviews: Yelp restaurants, Amazon phones and accessories, IMDb
        movies, or all three concatenated in that order (3,000 sentences).

    Returns
    -------
    texts : list of str
        The sentences, in file order (not shuffled).
    labels : ndarray of shape (n_texts,), dtype int64
        ``1`` for positive, ``0`` for negative.

    Raises
    ------
    ValueError
        If ``source`` is not one of the names above.

    Examples
    --------
    >>> from skbert.datasets import load_sentiment_sentences
    >>> texts, labels = load_sentiment_sentences("yelp")
    >>> len(texts), labels.shape, labels.dtype
    (1000, (1000,), dtype('int64'))
    >>> texts[0], int(labels[0])
    ('Wow... Loved this place.', 1)
    >>> int(labels.sum())
    500
    """
    if source == "all":
        names = list(SENTIMENT_SOURCES)
    elif source in SENTIMENT_SOURCES:
        names = [source]
    else:
        choices = ", ".join(repr(name) for name in [*SENTIMENT_SOURCES, "all"])
        raise ValueError(f"Unknown source {source!r}; choose one of {choices}.")
    texts: list[str] = []
    labels: list[int] = []
    for name in names:
        more_texts, more_labels = read_sentences(SENTIMENT_SOURCES[name])
        texts.extend(more_texts)
        labels.extend(more_labels)
    return texts, np.asarray(labels, dtype=np.int64)
