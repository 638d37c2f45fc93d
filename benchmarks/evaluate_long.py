"""Long reviews: truncate vs head_tail vs chunk, against TF-IDF, on the same folds.

For each data set, each ``max_length`` and each ``long_texts`` strategy, the
reviews are encoded once by skbert's own ``BertCLSVectorizer`` (through a
cache directory, so every pooling and every fold reuses that forward pass;
the time per text of that pass is recorded, wall-clock and process CPU),
then a ``Pipeline(BertCLSVectorizer, LogisticRegression)`` is scored with
10-fold stratified cross-validation, ``C`` chosen by an inner 5-fold search
on the training folds only. The same folds score a TF-IDF + LogisticRegression
baseline and ``FeatureUnion(TfidfVectorizer, BertCLSVectorizer)``.

    python benchmarks/evaluate_long.py --n 2000 --output docs/long_texts.json

Reads ``../shared/data/long_reviews.tsv`` (IMDB reviews) and
``../shared/data/long_reviews_extra_polarity2004.tsv`` (Pang & Lee polarity
v2.0); ``--plot`` writes the figure of docs/long_texts.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from _common import default_model, read_tsv
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import FeatureUnion, Pipeline

import skbert
from skbert import BertCLSVectorizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SOURCES = {
    "imdb": DATA / "long_reviews.tsv",
    "polarity2004": DATA / "long_reviews_extra_polarity2004.tsv",
}
C_GRID = [0.25, 0.5, 1, 2, 4, 8]


def subset(texts, labels, n: int | None, seed: int):
    """A seeded, stratified subset of ``n`` texts, in file order."""
    if n is None or n >= len(texts):
        return texts, labels
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        keep.extend(rng.choice(rows, size=n * len(rows) // len(labels), replace=False))
    keep = sorted(keep)
    return [texts[i] for i in keep], labels[keep]


def scores(estimator, texts, labels, folds) -> list[float]:
    """Outer-fold accuracies, ``C`` searched on the inner folds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skbert.TruncationWarning)
        return cross_val_score(estimator, texts, labels, cv=folds).tolist()


def classifier() -> LogisticRegressionCV:
    """Logistic regression whose ``C`` an inner 5-fold search picks on the
    training folds only (the features are fitted on them too)."""
    return LogisticRegressionCV(Cs=C_GRID, cv=5, max_iter=3000, scoring="accuracy")


def summary(values: list[float]) -> dict:
    values = np.asarray(values)
    return {
        "folds": values.tolist(),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)),
        "sem": float(values.std(ddof=1) / np.sqrt(len(values))),
    }


def tfidf() -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


def run(args: argparse.Namespace) -> dict:
    model = args.model or default_model()
    results = {
        "model": model,
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "versions": skbert._core.versions.installed_versions(),
        "protocol": (
            f"{args.folds}-fold stratified CV (seed {args.seed}), C in "
            f"{C_GRID} by inner 5-fold search; subset n={args.n}"
        ),
        "sets": {},
    }
    for name in args.sets:
        texts, labels = subset(*read_tsv(SOURCES[name]), args.n, args.seed)
        folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
        entry = {"n": len(texts), "runs": []}
        print(f"{name}: {len(texts)} reviews", flush=True)
        base = Pipeline([("tfidf", tfidf()), ("clf", classifier())])
        entry["tfidf"] = summary(scores(base, texts, labels, folds))
        print(f"  tfidf {entry['tfidf']['mean']:.4f}", flush=True)
        for max_length in args.max_lengths:
            for strategy in args.strategies:
                params = dict(
                    model_name_or_path=model,
                    max_length=max_length,
                    long_texts=strategy,
                    cache=args.cache,
                    device="cpu",
                )
                vectorizer = BertCLSVectorizer(**params).fit(["probe"])
                wall, cpu = time.perf_counter(), time.process_time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", skbert.TruncationWarning)
                    vectorizer.transform(texts)  # the one forward pass
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                for pooling in args.poolings:
                    bert = BertCLSVectorizer(**params, pooling=pooling)
                    pipe = Pipeline([("bert", bert), ("clf", classifier())])
                    run_entry = {
                        "max_length": max_length,
                        "long_texts": strategy,
                        "pooling": pooling,
                        "seconds_per_text": wall / len(texts),
                        "cpu_seconds_per_text": cpu / len(texts),
                        "bert": summary(scores(pipe, texts, labels, folds)),
                    }
                    if (pooling, strategy, max_length) == (
                        args.union_pooling,
                        args.union_strategy,
                        args.union_max_length,
                    ):
                        union = Pipeline(
                            [
                                (
                                    "features",
                                    FeatureUnion(
                                        [("tfidf", tfidf()), ("bert", clone_of(bert))]
                                    ),
                                ),
                                ("clf", classifier()),
                            ]
                        )
                        run_entry["union"] = summary(
                            scores(union, texts, labels, folds)
                        )
                    entry["runs"].append(run_entry)
                    results["sets"][name] = entry
                    if args.output:  # a long run keeps what it has measured
                        Path(args.output).write_text(json.dumps(results, indent=1))
                    print(
                        f"  {max_length} {strategy:9} {pooling:5} "
                        f"{run_entry['bert']['mean']:.4f} "
                        f"± {run_entry['bert']['sem']:.4f}  "
                        f"{wall / len(texts):.3f} s/text"
                        + (
                            f"  union {run_entry['union']['mean']:.4f}"
                            if "union" in run_entry
                            else ""
                        ),
                        flush=True,
                    )
        results["sets"][name] = entry
    return results


def timing(args: argparse.Namespace) -> dict:
    """Seconds per review of each strategy without any cache, on ``--time-n``
    reviews, the strategies in turns over ``--time-rounds`` rounds (medians)."""
    import statistics

    model = args.model or default_model()
    out: dict = {}
    for name in args.sets:
        texts, _ = subset(*read_tsv(SOURCES[name]), args.n, args.seed)
        texts = texts[: args.time_n]
        configs = [(m, s) for m in args.max_lengths for s in args.strategies]
        samples: dict = {config: ([], []) for config in configs}
        for round_ in range(args.time_rounds):
            for max_length, strategy in configs if round_ % 2 == 0 else configs[::-1]:
                vectorizer = BertCLSVectorizer(
                    model_name_or_path=model,
                    max_length=max_length,
                    long_texts=strategy,
                    cache=None,
                    device="cpu",
                ).fit(["probe"])
                wall, cpu = time.perf_counter(), time.process_time()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", skbert.TruncationWarning)
                    vectorizer.transform(texts)
                walls, cpus = samples[max_length, strategy]
                walls.append((time.perf_counter() - wall) / len(texts))
                cpus.append((time.process_time() - cpu) / len(texts))
        out[name] = {
            f"{m}/{s}": {
                "wall": statistics.median(samples[m, s][0]),
                "cpu": statistics.median(samples[m, s][1]),
                "wall_range": [min(samples[m, s][0]), max(samples[m, s][0])],
            }
            for m, s in configs
        }
        for key, value in out[name].items():
            print(
                f"{name} {key}: {value['wall']:.3f} s/text wall, "
                f"{value['cpu']:.3f} CPU",
                flush=True,
            )
    return out


def clone_of(estimator):
    from sklearn.base import clone

    return clone(estimator)


def plot(results: dict, target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(results["sets"])
    figure, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4), squeeze=False)
    for axis, name in zip(axes[0], sets, strict=True):
        entry = results["sets"][name]
        runs = [r for r in entry["runs"] if r["pooling"] == "mean"]
        labels = [f"{r['long_texts']}\n{r['max_length']}" for r in runs]
        means = [100 * r["bert"]["mean"] for r in runs]
        errors = [100 * r["bert"]["sem"] for r in runs]
        axis.bar(range(len(runs)), means, yerr=errors, color="#4878a8")
        axis.axhline(
            100 * entry["tfidf"]["mean"], color="#b04040", ls="--", label="TF-IDF + LR"
        )
        axis.set_xticks(range(len(runs)), labels, fontsize=8)
        axis.set_ylabel("accuracy (%), mean pooling, ± s.e. over folds")
        axis.set_title(f"{name} ({entry['n']} reviews)")
        low = min(means + [100 * entry["tfidf"]["mean"]]) - 3
        axis.set_ylim(low, max(means + [100 * entry["tfidf"]["mean"]]) + 2)
        axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(target, dpi=110)


def markdown(results: dict) -> str:
    """The tables of docs/long_texts.md."""
    lines = []
    for name, entry in results["sets"].items():
        tfidf = entry["tfidf"]
        lines += [
            f"**{name}** ({entry['n']} reviews; TF-IDF + LR: "
            f"{100 * tfidf['mean']:.1f} ± {100 * tfidf['sem']:.1f})",
            "",
            "| max_length | long_texts | pooling | accuracy (%) ± s.e. | "
            "TF-IDF + skbert (%) | s/text (wall) | CPU s/text |",
            "|---|---|---|---|---|---|---|",
        ]
        for run in entry["runs"]:
            union = run.get("union")
            lines.append(
                f"| {run['max_length']} | `{run['long_texts']}` | {run['pooling']} | "
                f"{100 * run['bert']['mean']:.1f} ± {100 * run['bert']['sem']:.1f} | "
                + (
                    f"{100 * union['mean']:.1f} ± {100 * union['sem']:.1f}"
                    if union
                    else ""
                )
                + f" | {run['seconds_per_text']:.3f}"
                + f" | {run['cpu_seconds_per_text']:.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--sets", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--n", type=int, default=None, help="seeded subset per set")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-lengths", type=int, nargs="+", default=[256, 512])
    parser.add_argument(
        "--strategies", nargs="+", default=["truncate", "head_tail", "chunk"]
    )
    parser.add_argument("--poolings", nargs="+", default=["mean", "cls"])
    parser.add_argument("--union-pooling", default="mean")
    parser.add_argument("--union-strategy", default="chunk")
    parser.add_argument("--union-max-length", type=int, default=256)
    parser.add_argument("--cache", default="/tmp/skbert-evaluate-long")
    parser.add_argument("--output", default=None)
    parser.add_argument("--plot", default=None)
    parser.add_argument(
        "--markdown", default=None, help="only print the tables of this JSON file"
    )
    parser.add_argument(
        "--timing",
        default=None,
        help="only time the strategies (no cache) and add the times to this JSON",
    )
    parser.add_argument("--time-n", type=int, default=200)
    parser.add_argument("--time-rounds", type=int, default=3)
    args = parser.parse_args()
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    if args.timing:
        results = json.loads(Path(args.timing).read_text())
        timed = results.setdefault("timing", {"sets": {}})
        timed.update(n=args.time_n, rounds=args.time_rounds, load=os.getloadavg())
        for name, times in timing(args).items():
            timed["sets"].setdefault(name, {}).update(times)
            for entry in results["sets"].get(name, {}).get("runs", []):
                measured = times.get(f"{entry['max_length']}/{entry['long_texts']}")
                if measured:  # configurations timed by an earlier call keep theirs
                    entry["seconds_per_text"] = measured["wall"]
                    entry["cpu_seconds_per_text"] = measured["cpu"]
        Path(args.timing).write_text(json.dumps(results, indent=1))
        return
    # scikit-learn 1.9 announces LogisticRegressionCV's attributes of 1.10
    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
    results = run(args)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, Path(args.plot))


if __name__ == "__main__":
    main()
