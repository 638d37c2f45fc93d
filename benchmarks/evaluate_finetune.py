"""Does learning from the labels pay? TF-IDF, frozen and fine-tuned vectors on
the same folds with the same classifier.

Every row is a scikit-learn ``Pipeline`` ending in the same
``LogisticRegressionCV`` head, scored on the same outer folds
(``StratifiedKFold(n_splits=--folds, shuffle=True, random_state=0)``; SST-2:
its train/test split). Fine-tuned rows tune inside the Pipeline, on each
fold's training texts only. Results are appended to ``--json`` after every
fold, so an interrupted run keeps what it measured.

Usage (from the repository root; the data are the project's shared sets)::

    python benchmarks/evaluate_finetune.py --task mr --folds 10 \\
        --rows tfidf1,tfidf12,frozen,classification --json mr.json
    python benchmarks/evaluate_finetune.py --task sst2 --rows frozen,classification

``--only-folds 0,1`` scores a subset of the folds (same splits).
``--also-score chunk:512,chunk:256`` scores each fitted encoder (tuned or
frozen) a second time per ``long_texts:max_length`` variant: the training and
test texts encoded with those settings, a fresh head fit on the training
vectors (the encoder tuned as the row says, on the training texts only).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import default_model, read_rows, read_tsv, save_rows

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def cpu_name() -> str:
    """The CPU's model name, family and model (figures depend on them)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor()
    return (
        f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')}, "
        f"model {fields.get('model', '?')})"
    )


def load_task(task: str, limit: int | None) -> dict[str, Any]:
    if task == "mr":
        texts, labels = read_tsv(DATA / "mr.tsv")
        return {"texts": texts, "labels": labels}
    if task == "imdb":
        texts, labels = read_tsv(DATA / "long_reviews.tsv")
        limit = limit or 2000
        return {"texts": texts[:limit], "labels": labels[:limit]}
    if task in ("sst2", "sst2-phrases"):
        train = "sst2_sent_train.tsv" if task == "sst2" else "sst2_train.tsv"
        X_train, y_train = read_tsv(DATA / train)
        X_test, y_test = read_tsv(DATA / "sst2_test.tsv")
        return {"train": (X_train, y_train), "test": (X_test, y_test)}
    raise SystemExit(f"unknown task {task!r}")


def head():
    from sklearn.linear_model import LogisticRegressionCV

    return LogisticRegressionCV(Cs=10, cv=5, max_iter=2000)


def make_row(name: str, args: argparse.Namespace):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline

    from skbert import BertCLSVectorizer

    if name == "tfidf1":
        return Pipeline(
            [("tfidf", TfidfVectorizer(sublinear_tf=True)), ("clf", head())]
        )
    if name == "tfidf12":
        vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))
        return Pipeline([("tfidf", vectorizer), ("clf", head())])
    common = {
        "model_name_or_path": args.model,
        "pooling": args.pooling,
        "max_length": args.max_length,
        "long_texts": args.long_texts,
        "device": "cpu",
        "batch_size": 32,
        "show_progress_bar": False,
    }
    if name == "frozen":
        return Pipeline([("bert", BertCLSVectorizer(**common)), ("clf", head())])
    objective = name.split(":")[0]
    vectorizer = BertCLSVectorizer(
        **common,
        fine_tune=objective,
        tune_epochs=args.epochs,
        tune_learning_rate=args.learning_rate,
        tune_batch_size=args.tune_batch_size,
        tune_pairs=args.pairs,
        tune_max_steps=args.max_steps,
        tune_layers=args.tune_layers,
        tune_max_length=args.tune_max_length,
        random_state=0,
    )
    return Pipeline([("bert", vectorizer), ("clf", head())])


def splits(data: dict[str, Any], folds: int) -> list[tuple[Any, Any, Any, Any]]:
    """(train texts, train labels, test texts, test labels) per fold."""
    from sklearn.model_selection import StratifiedKFold

    if "train" in data:
        return [(*data["train"], *data["test"])]
    texts, labels = data["texts"], data["labels"]
    outer = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    out = []
    for train, test in outer.split(texts, labels):
        out.append(
            (
                [texts[i] for i in train],
                labels[train],
                [texts[i] for i in test],
                labels[test],
            )
        )
    return out


#: The backends ``--cost`` times: ``(backend, quantize)``.
COST_BACKENDS = (("torch", False), ("onnx", False), ("onnx", True), ("openvino", True))


def encoding_cost(args: argparse.Namespace, texts: list[str]) -> list[dict]:
    """What encoding costs with ``args.model``: texts per second (wall and CPU,
    median of ``--cost-rounds`` rounds over ``--cost-texts`` texts, no cache)
    per backend that runs the model, and its size in parameters."""
    from skbert import BertCLSVectorizer

    texts = texts[: args.cost_texts]
    rows = []
    for backend, quantize in COST_BACKENDS:
        name = f"{backend}-int8" if quantize else backend
        vectorizer = BertCLSVectorizer(
            model_name_or_path=args.model,
            pooling=args.pooling,
            max_length=args.max_length,
            long_texts=args.long_texts,
            device="cpu",
            batch_size=32,
            backend=backend,
            quantize=quantize,
            cache=None,
            show_progress_bar=False,
        )
        try:
            vectorizer.fit(texts[:1])
        except (ValueError, ImportError) as exc:  # not for this model, or not here
            print(f"cost: {name} does not run here: {exc}", flush=True)
            continue
        walls, cpus = [], []
        for _ in range(args.cost_rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            vectorizer.transform(texts)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        model = vectorizer.model_.torch_model.model
        rows.append(
            {
                "task": args.task,
                "row": f"encode:{name}" + (f"@{args.label}" if args.label else ""),
                "texts": len(texts),
                "texts_per_second": len(texts) / float(np.median(walls)),
                "texts_per_cpu_second": len(texts) / float(np.median(cpus)),
                "rounds": args.cost_rounds,
                "parameters": sum(p.numel() for p in model.parameters()),
            }
        )
        print(
            f"cost: {name}: {rows[-1]['texts_per_second']:.0f} texts/s "
            f"({rows[-1]['texts_per_cpu_second']:.0f} per CPU-second)",
            flush=True,
        )
    return rows


def score_variant(
    vectorizer: Any, variant: str, row: dict[str, Any], fold: tuple[Any, ...]
) -> dict[str, Any]:
    """``row`` again with the fitted encoder reading the texts as ``variant``
    (``long_texts:max_length``) says, and a fresh head on its training vectors."""
    X_train, y_train, X_test, y_test = fold
    long_texts, _, max_length = variant.partition(":")
    vectorizer.set_params(long_texts=long_texts, max_length=int(max_length))
    wall, cpu = time.perf_counter(), time.process_time()
    classifier = head().fit(vectorizer.transform(X_train), y_train)
    accuracy = float(classifier.score(vectorizer.transform(X_test), y_test))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = dict(row, row=f"{row['row']}+{long_texts}{max_length}", accuracy=accuracy)
    out["settings"] = dict(
        row["settings"], scored_long_texts=long_texts, scored_max_length=max_length
    )
    out["score_seconds"], out["score_cpu_seconds"] = wall, cpu
    print(
        f"{row['task']} {out['row']} fold {row['fold']}: {100 * accuracy:.2f} "
        f"(encode + head {wall:.0f} s wall, {cpu:.0f} s CPU)",
        flush=True,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mr")
    parser.add_argument("--rows", default="tfidf1,tfidf12,frozen,classification")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--only-folds", default=None)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--long-texts", default="truncate")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--tune-batch-size", type=int, default=16)
    parser.add_argument("--tune-layers", type=int, default=None)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--tune-max-length", type=int, default=None)
    parser.add_argument("--label", default=None, help="row label suffix in the JSON")
    parser.add_argument(
        "--also-score",
        default="",
        help="long_texts:max_length variants to score each fitted encoder with",
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--cost", action="store_true", help="measure encoding speed, then stop"
    )
    parser.add_argument("--cost-texts", type=int, default=1000)
    parser.add_argument("--cost-rounds", type=int, default=5)
    args = parser.parse_args(argv)
    args.model = args.model or default_model()
    import torch

    data = load_task(args.task, args.limit)
    folds = splits(data, args.folds)
    chosen = range(len(folds))
    if args.only_folds:
        chosen = [int(i) for i in args.only_folds.split(",")]
    results = read_rows(args.json)
    machine = {
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if args.cost:
        texts = data["texts"] if "texts" in data else data["train"][0]
        rows = encoding_cost(args, texts)
        for row in rows:
            row["machine"] = machine
        save_rows(args.json, read_rows(args.json) + rows)
        return 0
    for name in args.rows.split(","):
        for fold in chosen:
            X_train, y_train, X_test, y_test = folds[fold]
            pipe = make_row(name, args)
            wall, cpu = time.perf_counter(), time.process_time()
            pipe.fit(X_train, y_train)
            fit_wall, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
            accuracy = float(pipe.score(X_test, y_test))
            report = getattr(pipe[0], "fine_tune_report_", None)
            row = {
                "task": args.task,
                "row": name + (f"@{args.label}" if args.label else ""),
                "fold": fold,
                "folds": len(folds),
                "accuracy": accuracy,
                "fit_seconds": fit_wall,
                "fit_cpu_seconds": fit_cpu,
                "tuning": report
                and {
                    k: report[k]
                    for k in ("losses", "steps", "seconds", "cpu_seconds", "params")
                },
                "settings": {
                    k: getattr(args, k)
                    for k in (
                        "pooling",
                        "max_length",
                        "long_texts",
                        "tune_max_length",
                        "model",
                    )
                },
                "machine": machine,
            }
            results.append(row)
            print(
                f"{args.task} {row['row']} fold {fold}: {100 * accuracy:.2f} "
                f"(fit {fit_wall:.0f} s wall, {fit_cpu:.0f} s CPU"
                + (f", tuning {report['cpu_seconds']:.0f} CPU-s" if report else "")
                + ")",
                flush=True,
            )
            save_rows(args.json, results)
            for variant in filter(None, args.also_score.split(",")):
                if name.startswith("tfidf"):
                    break
                results.append(
                    score_variant(
                        pipe[0], variant, row, (X_train, y_train, X_test, y_test)
                    )
                )
                save_rows(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
