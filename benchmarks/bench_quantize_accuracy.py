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
    parser.add_argument(
        "--peers",
        type=parse_peers,
        default=[],
        help="peer int8 engines to add (see benchmarks/_peers.py), or 'all'",
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
        "torch float32": {},
        "onnx float32": {"backend": "onnx"},
        "onnx int8": {"backend": "onnx", "quantize": True},
    }
    if importlib.util.find_spec("openvino") and importlib.util.find_spec("nncf"):
        variants["openvino int8"] = {"backend": "openvino", "quantize": True}
    encoders = {
        name: _skbert_encoder(args.model, args.cache_dir, params)
        for name, params in variants.items()
    }
    references = dict.fromkeys(encoders, "torch float32")
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
    results, vectors = {}, {}
    for name, encode in encoders.items():
        start = time.perf_counter()
        vectors[name] = {split: encode(texts) for split, (texts, _) in splits.items()}
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
    print(
        "\n| variant | SST-2 dev | SST-2 test | MR (10-fold) | test / MR minus its "
        "float32 | min / mean cosine to its float32 |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for name, (dev, test, mr_acc, _) in results.items():
        own = references[name]
        a = np.concatenate([vectors[name][s] for s in splits])
        b = np.concatenate([vectors[own][s] for s in splits])
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        cost = f"{test - results[own][1]:+.2f} / {mr_acc - results[own][2]:+.2f}"
        print(
            f"| {name} | {dev:.2f} | {test:.2f} | {mr_acc:.2f} | {cost} | "
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
