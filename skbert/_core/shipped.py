"""The labelled sentences shipped in ``skbert/_data``: which files, and how to
read them (the public reader is :mod:`skbert.datasets`; int8 calibration reads
them too). Standard library only.
"""

from __future__ import annotations

import csv
from importlib import resources

__all__ = ["SENTIMENT_SOURCES", "read_sentences"]

#: The UCI "Sentiment Labelled Sentences" files: source name -> file in ``_data``.
SENTIMENT_SOURCES: dict[str, str] = {
    "yelp": "uci_yelp.tsv",
    "amazon": "uci_amazon.tsv",
    "imdb": "uci_imdb.tsv",
}


def read_sentences(filename: str) -> tuple[list[str], list[int]]:
    """Texts and labels of one ``text<TAB>label`` file with CSV quoting."""
    resource = resources.files("skbert").joinpath("_data", filename)
    with resource.open("r", encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        header = next(rows)
        if header != ["text", "label"]:
            raise ValueError(
                f"{filename}: expected the header ['text', 'label'], got {header!r}."
            )
        texts, labels = [], []
        for line, row in enumerate(rows, start=2):
            if len(row) != 2 or row[1] not in ("0", "1"):
                raise ValueError(f"{filename}, line {line}: malformed row {row!r}.")
            texts.append(row[0])
            labels.append(int(row[1]))
    return texts, labels
