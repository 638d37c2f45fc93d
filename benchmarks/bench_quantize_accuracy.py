"""Accuracy cost of ``quantize=True`` (int8 ONNX) on real sentiment data.

The same protocol runs on vectors from the float32 torch path, the float32
ONNX graph and the int8 ONNX graph (mean pooling, all-MiniLM-L6-v2):

* SST-2: LogisticRegression trained on ``sst2_sent_train`` (6,920 full
  sentences; ``--sst-train sst2_train`` for the 67,349 GLUE phrases), C chosen
  on ``sst2_dev``, accuracy on ``sst2_dev`` and ``sst2_test``;
* MR: 10-fold stratified cross-validation, C chosen by an inner 3-fold CV.

It also reports how close the vectors are (cosine to float32 torch).

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_quantize_accuracy.py \\
        --data-dir ../shared/data --cache-dir /tmp/skbert-eval-cache
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import default_model, read_tsv
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold, cross_val_score

from skbert import BertCLSVectorizer

C_GRID = [0.25, 0.5, 1, 2, 4, 8]


def sst(vectors, train_y, dev_y, test_y) -> tuple[float, float]:
    train, dev, test = vectors
    best = max(
        C_GRID,
        key=lambda c: (
            LogisticRegression(C=c, max_iter=2000).fit(train, train_y).score(dev, dev_y)
        ),
    )
    clf = LogisticRegression(C=best, max_iter=2000).fit(train, train_y)
    return 100 * clf.score(dev, dev_y), 100 * clf.score(test, test_y)


def mr(vectors, labels) -> float:
    inner = LogisticRegressionCV(Cs=C_GRID, cv=3, max_iter=2000)
    folds = StratifiedKFold(n_splits=10, shuffle=True, random_state=0)
    return 100 * cross_val_score(inner, vectors, labels, cv=folds).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--cache-dir", default=None, help="embedding cache dir")
    parser.add_argument("--sst-train", default="sst2_sent_train")
    args = parser.parse_args()
    if args.model is None:
        args.model = default_model()
    data = Path(args.data_dir)
    splits = {
        name: read_tsv(data / f"{name}.tsv")
        for name in (args.sst_train, "sst2_dev", "sst2_test", "mr")
    }
    splits["sst2_train"] = splits.pop(args.sst_train)
    variants = {
        "torch float32": {},
        "onnx float32": {"backend": "onnx"},
        "onnx int8": {"backend": "onnx", "quantize": True},
    }
    results, vectors = {}, {}
    for name, params in variants.items():
        vectorizer = BertCLSVectorizer(
            model_name_or_path=args.model,
            pooling="mean",
            max_length=128,
            cache=args.cache_dir,
            show_progress_bar=True,
            **params,
        ).fit(["probe"])
        start = time.perf_counter()
        vectors[name] = {
            split: vectorizer.transform(texts) for split, (texts, _) in splits.items()
        }
        seconds = time.perf_counter() - start
        dev, test = sst(
            [vectors[name][s] for s in ("sst2_train", "sst2_dev", "sst2_test")],
            splits["sst2_train"][1],
            splits["sst2_dev"][1],
            splits["sst2_test"][1],
        )
        results[name] = (dev, test, mr(vectors[name]["mr"], splits["mr"][1]), seconds)
        print(
            f"{name}: SST-2 dev {dev:.2f} test {test:.2f}, MR {results[name][2]:.2f}"
            f" (encoded in {seconds:.0f} s)",
            flush=True,
        )
    reference = vectors["torch float32"]
    print(
        "\n| variant | SST-2 dev | SST-2 test | MR (10-fold) | min / mean cosine "
        "to torch float32 |"
    )
    print("|---|---:|---:|---:|---|")
    for name, (dev, test, mr_acc, _) in results.items():
        a = np.concatenate([vectors[name][s] for s in splits])
        b = np.concatenate([reference[s] for s in splits])
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        print(
            f"| {name} | {dev:.2f} | {test:.2f} | {mr_acc:.2f} | "
            f"{cos.min():.4f} / {cos.mean():.4f} |"
        )


if __name__ == "__main__":
    main()
