"""Accuracy cost of ``quantize=True`` (int8) on real sentiment data.

The same protocol runs on vectors from the float32 torch path, the float32
ONNX graph, the int8 ONNX graph and, where OpenVINO and NNCF are installed,
OpenVINO's calibrated int8 model (mean pooling, all-MiniLM-L6-v2):

* SST-2: LogisticRegression trained on ``sst2_sent_train`` (6,920 full
  sentences; ``--sst-train sst2_train`` for the 67,349 GLUE phrases), C chosen
  on ``sst2_dev``, accuracy on ``sst2_dev`` and ``sst2_test``;
* MR: 10-fold stratified cross-validation, C chosen by an inner 3-fold CV.

It also reports how close the vectors are (cosine to float32 torch).

``--peers`` adds the peers' int8 engines (``benchmarks/_peers.py``: the int8
ONNX export of sentence-transformers, OpenVINO's static int8 and its int8
weights) under the same protocol, with sentence-transformers' float32
``encode`` as their reference; each int8 row's cost is its difference to the
float32 row of its own kind (skbert's to skbert's torch float32, a peer's to
sentence-transformers'), so that an engine is charged only for what int8 loses.

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_quantize_accuracy.py \\
        --data-dir ../shared/data --cache-dir /tmp/skbert-eval-cache
    HF_HUB_OFFLINE=1 python benchmarks/bench_quantize_accuracy.py \\
        --peers st-onnx-int8,st-openvino-int8
    HF_HUB_OFFLINE=1 python benchmarks/bench_quantize_accuracy.py \\
        --model /path/to/all-mpnet-base-v2 --variants "openvino int8" \\
        --peers st-openvino-int8
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import default_model, read_tsv
from _peers import _st_encode, parse_peers, peer_contenders
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

from skbert import BertCLSVectorizer

C_GRID = [0.25, 0.5, 1, 2, 4, 8]
#: The skbert row every other skbert row is compared with; it always runs.
REFERENCE = "torch float32"


def sst(vectors, train_y, dev_y, test_y) -> tuple[float, float, np.ndarray]:
    """Dev and test accuracy, and which test texts were classified right."""
    train, dev, test = vectors
    best = max(
        C_GRID,
        key=lambda c: (
            LogisticRegression(C=c, max_iter=2000).fit(train, train_y).score(dev, dev_y)
        ),
    )
    clf = LogisticRegression(C=best, max_iter=2000).fit(train, train_y)
    right = clf.predict(test) == np.asarray(test_y)
    return 100 * clf.score(dev, dev_y), 100 * right.mean(), right


def mr(vectors, labels) -> tuple[float, np.ndarray]:
    """The mean accuracy of the 10 folds (what ``cross_val_score`` averages),
    and which texts their held-out folds classified right."""
    labels = np.asarray(labels)
    folds = StratifiedKFold(n_splits=10, shuffle=True, random_state=0)
    right = np.zeros(len(labels), dtype=bool)
    scores = []
    for train, test in folds.split(vectors, labels):
        inner = LogisticRegressionCV(Cs=C_GRID, cv=3, max_iter=2000)
        inner.fit(vectors[train], labels[train])
        right[test] = inner.predict(vectors[test]) == labels[test]
        scores.append(right[test].mean())
    return 100 * float(np.mean(scores)), right


def interval(right: np.ndarray, reference: np.ndarray, rounds: int = 5000) -> str:
    """The 95% interval of the accuracy difference ``right - reference``
    (points), by a paired bootstrap over the texts: how far the cost of a
    variant could move with another sample of texts of the same kind."""
    rng = np.random.default_rng(0)
    change = right.astype(float) - reference.astype(float)
    means = [
        change[rng.integers(0, len(change), len(change))].mean() for _ in range(rounds)
    ]
    low, high = np.percentile(100 * np.array(means), [2.5, 97.5])
    return f"[{low:+.2f}, {high:+.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--cache-dir", default=None, help="embedding cache dir")
    parser.add_argument("--sst-train", default="sst2_sent_train")
    parser.add_argument(
        "--peers",
        type=parse_peers,
        default=[],
        help="peer int8 engines to add (see benchmarks/_peers.py), or 'all'",
    )
    parser.add_argument(
        "--variants",
        default=None,
        help=f"comma-separated skbert rows to run (default: all; {REFERENCE!r}, "
        "the reference of the others, always runs)",
    )
    parser.add_argument(
        "--peer-cache", default=str(Path(tempfile.gettempdir()) / "peers-export")
    )
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
        REFERENCE: {},
        "onnx float32": {"backend": "onnx"},
        "onnx int8": {"backend": "onnx", "quantize": True},
    }
    if importlib.util.find_spec("openvino") and importlib.util.find_spec("nncf"):
        variants["openvino int8"] = {"backend": "openvino", "quantize": True}
    if args.variants is not None:
        wanted = {name.strip() for name in args.variants.split(",")}
        unknown = wanted - set(variants)
        if unknown:
            parser.error(f"unknown --variants {sorted(unknown)}: {list(variants)}")
        variants = {
            name: params
            for name, params in variants.items()
            if name in wanted or name == REFERENCE
        }
    encoders = {
        name: _skbert_encoder(args.model, args.cache_dir, params)
        for name, params in variants.items()
    }
    references = dict.fromkeys(encoders, REFERENCE)
    if args.peers:
        notes: list[str] = []
        peers = peer_contenders(
            args.peers,
            args.model,
            cache=Path(args.peer_cache),
            max_length=128,
            batch_size=32,
            levels=[],
            int8_config="avx512_vnni",
            calibration_data=str(data / "sst2_train.tsv"),
            calibration_samples=300,
            notes=notes,
            failures=[],
        )
        peers = {
            name: run
            for name, run in peers.items()
            if "int8" in name or name == "st openvino"
        }
        encoders["st float32"] = _st_encode(Path(args.model), "torch", 128, 32, {})
        encoders.update(peers)
        references.update(dict.fromkeys(["st float32", *peers], "st float32"))
        for note in notes:
            print(f"peer: {note}")
    results, vectors, right = {}, {}, {}
    for name, encode in encoders.items():
        start = time.perf_counter()
        vectors[name] = {split: encode(texts) for split, (texts, _) in splits.items()}
        seconds = time.perf_counter() - start
        dev, test, test_right = sst(
            [vectors[name][s] for s in ("sst2_train", "sst2_dev", "sst2_test")],
            splits["sst2_train"][1],
            splits["sst2_dev"][1],
            splits["sst2_test"][1],
        )
        mr_acc, mr_right = mr(vectors[name]["mr"], splits["mr"][1])
        right[name] = (test_right, mr_right)
        results[name] = (dev, test, mr_acc, seconds)
        print(
            f"{name}: SST-2 dev {dev:.2f} test {test:.2f}, MR {results[name][2]:.2f}"
            f" (encoded in {seconds:.0f} s)",
            flush=True,
        )
    print(
        "\n| variant | SST-2 dev | SST-2 test | MR (10-fold) | test / MR minus its "
        "float32 | 95% interval of the test / MR cost | min / mean cosine to its "
        "float32 |"
    )
    print("|---|---:|---:|---:|---:|---|---|")
    for name, (dev, test, mr_acc, _) in results.items():
        own = references[name]
        a = np.concatenate([vectors[name][s] for s in splits])
        b = np.concatenate([vectors[own][s] for s in splits])
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        cost = f"{test - results[own][1]:+.2f} / {mr_acc - results[own][2]:+.2f}"
        spread = " / ".join(
            interval(mine, theirs)
            for mine, theirs in zip(right[name], right[own], strict=True)
        )
        print(
            f"| {name} | {dev:.2f} | {test:.2f} | {mr_acc:.2f} | {cost} | {spread} | "
            f"{cos.min():.4f} / {cos.mean():.4f} |"
        )


def _skbert_encoder(model: str, cache_dir: str | None, params: dict):
    """skbert's vectors of a list of texts (mean pooling, max_length 128)."""
    vectorizer = BertCLSVectorizer(
        model_name_or_path=model,
        pooling="mean",
        max_length=128,
        cache=cache_dir,
        show_progress_bar=True,
        **params,
    ).fit(["probe"])
    return vectorizer.transform


if __name__ == "__main__":
    main()
