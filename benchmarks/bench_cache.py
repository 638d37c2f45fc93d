"""Cost of a pooling grid search with and without the embedding cache.

Runs, in one process and on the same texts:

1. ``GridSearchCV`` over the 4 poolings x ``cv`` folds with ``cache=None``;
2. the same search with the default in-process cache (``cache="auto"``);
3. the floor: one plain ``transform`` of the texts plus the classifier fits
   of the search on precomputed vectors.

and prints the times and the ratios. Goal: (2) <= 1.5 x (3).

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_cache.py            # shipped UCI yelp
    HF_HUB_OFFLINE=1 python benchmarks/bench_cache.py --data ../shared/data/sst2_dev.tsv
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from _common import default_model, load_texts
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import skbert
from skbert import BertCLSVectorizer

POOLINGS = ["cls", "pooler", "mean", "max"]


def grid_search(model: str, texts, labels, cache, cv: int) -> tuple[float, dict]:
    pipe = Pipeline(
        [
            ("bert", BertCLSVectorizer(model_name_or_path=model, cache=cache)),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    )
    start = time.perf_counter()
    search = GridSearchCV(pipe, {"bert__pooling": POOLINGS}, cv=cv).fit(texts, labels)
    return time.perf_counter() - start, search.best_params_


def floor(model: str, texts, labels, cv: int) -> tuple[float, float]:
    """One plain transform, and the classifier fits of the search."""
    vectorizer = BertCLSVectorizer(model_name_or_path=model, cache=None).fit(texts)
    start = time.perf_counter()
    vectorizer.transform(texts)
    encode = time.perf_counter() - start
    fits = 0.0
    for pooling in POOLINGS:
        X = vectorizer.set_params(pooling=pooling, cache="auto").transform(texts)
        start = time.perf_counter()
        GridSearchCV(LogisticRegression(max_iter=1000), {}, cv=cv).fit(X, labels)
        fits += time.perf_counter() - start
    skbert.clear_cache()
    return encode, fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--data", default=None, help="TSV text<TAB>label")
    parser.add_argument("--n", type=int, default=1000, help="number of texts")
    parser.add_argument("--cv", type=int, default=5)
    args = parser.parse_args()
    if args.model is None:
        args.model = default_model()
    texts, labels = load_texts(args.data, "yelp")
    # A random subset in file order: files sorted by label (mr.tsv) would give
    # one class only. With --n at least the file's size, all texts, in order.
    keep = np.sort(np.random.default_rng(0).permutation(len(texts))[: args.n])
    texts, labels = [texts[i] for i in keep], np.asarray(labels)[keep]

    import torch

    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads")
    print(
        f"model: {args.model}\ntexts: {len(texts)}, cv={args.cv}, poolings={POOLINGS}"
    )
    BertCLSVectorizer(model_name_or_path=args.model).fit(
        ["probe"]
    )  # load once, untimed
    skbert.clear_cache()
    encode, fits = floor(args.model, texts, labels, args.cv)
    cached, best_cached = grid_search(args.model, texts, labels, "auto", args.cv)
    skbert.clear_cache()
    uncached, best_uncached = grid_search(args.model, texts, labels, None, args.cv)
    assert best_cached == best_uncached, (best_cached, best_uncached)
    base = encode + fits
    print(f"one plain transform:          {encode:8.2f} s")
    print(f"classifier fits of the search:{fits:8.2f} s")
    print(f"search, cache=None:           {uncached:8.2f} s")
    print(f"search, cache='auto':         {cached:8.2f} s")
    print(f"speed-up of the cache:        {uncached / cached:8.1f} x")
    print(f"cached search / (transform + fits): {cached / base:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
