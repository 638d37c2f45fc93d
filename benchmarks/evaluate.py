"""SentEval-style evaluation of skbert's sentence vectors on MR and SST-2.

Frozen sentence vectors from :class:`skbert.BertCLSVectorizer`, then an
L2-regularised logistic regression, following the SentEval protocol that the
SBERT paper's Table 5 uses (``usepytorch=False``, i.e. scikit-learn's
``LogisticRegression``; facebookresearch/SentEval, ``senteval/binary.py``,
``senteval/sst.py`` and ``senteval/tools/validation.py``):

* **MR** (10,662 sentences): 10-fold stratified cross-validation over the whole
  set; inside every outer training fold, another 10-fold cross-validation picks
  ``C`` from {0.25, 0.5, 1, 2, 4, 8}; the classifier refitted with that ``C`` on
  the outer training fold is scored on the outer test fold; the result is the
  mean of the 10 test accuracies. Like SentEval, the sentences are first sorted
  by (number of words, label) and both fold splitters use
  ``StratifiedKFold(shuffle=True, random_state=1111)``.
* **SST-2**: trained on the 67,349 training phrases, ``C`` chosen from the same
  grid by accuracy on the 872 dev sentences, accuracy of that classifier on the
  1,821 test sentences.

Ties between values of ``C`` go to the smallest one, after rounding the
accuracies to two decimals, as SentEval does. The classifier minimises the
objective of the solver SentEval's scikit-learn ran (liblinear: L2 penalty on
the weights *and* the intercept); the default solver here, newton-cholesky with
warm starts along the ``C`` grid, reaches the same optimum many times faster.
Texts are whitespace-normalised as SentEval's loaders do
(``" ".join(text.split())``).

Every text is encoded once per layer selection: the vectorizer's embedding
cache stores all poolings of one forward pass, so switching ``pooling`` with
``set_params`` is a cache hit, and ``--cache-dir`` keeps the vectors on disk so
that a re-run (or a run with other classifier settings) encodes nothing.

Reproduce the table of ``docs/evaluation.md`` (the data folder holds
``mr.tsv`` and ``sst2_{train,dev,test}.tsv``, ``text<TAB>label`` with a header;
needs matplotlib for ``--plot``)::

    HF_HUB_OFFLINE=1 python benchmarks/evaluate.py --data-dir DATA \\
        --cache-dir ~/.cache/skbert-evaluate --threads 1 \\
        --json docs/evaluation.json --plot docs/img/evaluation.png

The three layer selections can also run as three processes (``--layers=-1``,
``--layers middle``, ``--layers=1,-1``, each with its own ``--json``), combined
afterwards with ``--merge A.json B.json C.json --json ... --plot ...``. On
BERT-base, where you have it (``--model bert-base-uncased`` or a folder written
by ``save_pretrained()``)::

    python benchmarks/evaluate.py --model bert-base-uncased --data-dir DATA ...
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from _common import default_model, read_tsv

#: SentEval's grid for the split and inner-CV classifiers (usepytorch=False).
C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
SEED = 1111
KFOLD = 10
POOLINGS = ("cls", "pooler", "mean", "max")
#: Published SentEval accuracies (SBERT paper, Table 5): name -> (MR, SST).
PUBLISHED = {
    "Avg. GloVe embeddings": (77.25, 80.18),
    "Avg. BERT embeddings": (78.66, 84.40),
    "BERT CLS-vector": (78.68, 84.13),
    "SBERT-NLI-base": (83.64, 88.96),
}
DATA_FILES = {
    "mr": "mr.tsv",
    "sst_train": "sst2_train.tsv",
    "sst_dev": "sst2_dev.tsv",
    "sst_test": "sst2_test.tsv",
}


@dataclass
class Result:
    layers: str
    pooling: str
    mr: float
    mr_folds: list[float]
    mr_best_c: list[float]
    sst: float
    sst_dev: float
    sst_best_c: float
    seconds_classifier: float
    extra: dict = field(default_factory=dict)


# -- data ---------------------------------------------------------------------
def read_senteval(path: Path) -> tuple[list[str], np.ndarray]:
    """Texts (whitespace-normalised as SentEval does) and labels of one file."""
    texts, labels = read_tsv(path)
    return [" ".join(text.split()) for text in texts], labels


def senteval_order(texts: list[str], labels: np.ndarray) -> np.ndarray:
    """SentEval sorts the samples by (number of words, label) before its folds."""
    return np.asarray(
        sorted(range(len(texts)), key=lambda i: (len(texts[i].split()), labels[i])),
        dtype=np.int64,
    )


def load_data(data_dir: Path, limit: int | None) -> dict:
    data = {}
    for name, filename in DATA_FILES.items():
        path = data_dir / filename
        if not path.is_file():
            raise SystemExit(f"missing data file {path} (see --data-dir)")
        texts, labels = read_senteval(path)
        if limit is not None:  # a quick smoke run; numbers are meaningless
            rng = np.random.default_rng(0)
            keep = np.sort(rng.permutation(len(texts))[:limit])
            texts, labels = [texts[i] for i in keep], labels[keep]
        data[name] = (texts, labels)
    order = senteval_order(*data["mr"])
    texts, labels = data["mr"]
    data["mr"] = ([texts[i] for i in order], labels[order])
    return data


# -- classifier protocol --------------------------------------------------------
def _design(X: np.ndarray, solver: str) -> np.ndarray:
    """X for liblinear's objective, whatever the solver.

    SentEval's ``LogisticRegression(C=reg)`` ran scikit-learn's default solver
    of its time, liblinear, which appends a constant feature (value
    ``intercept_scaling=1``) and penalises its weight, the intercept, like any
    other. Appending that column and fitting without a separate intercept gives
    the other solvers exactly this objective, so every solver finds the same
    classifier. (It matters for nearly constant features: a free intercept
    changes the optimum.)
    """
    if solver == "liblinear":
        return X
    return np.hstack([X, np.ones((len(X), 1), dtype=X.dtype)])


def _logistic_regression(C: float, solver: str):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(
        C=C,
        solver=solver,
        fit_intercept=solver == "liblinear",  # else: the column of _design
        max_iter=1000,
        random_state=SEED,
    )


def _fit(clf, X, y):
    from scipy.linalg import LinAlgWarning
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # newton-cholesky on nearly collinear features switches to lbfgs by
        # itself and says so; the optimum is the same
        warnings.simplefilter("ignore", LinAlgWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(X, y)


def _grid_scores(X_train, y_train, X_test, y_test, solver: str) -> list[float]:
    """Accuracy on (X_test, y_test) for every C, C ascending.

    Each fit starts from the previous C's solution (``warm_start``): the
    optimum is the same, found in fewer iterations.
    """
    scores = []
    clf = _logistic_regression(C_GRID[0], solver)
    clf.warm_start = solver != "liblinear"  # liblinear cannot warm start
    for C in C_GRID:
        _fit(clf.set_params(C=C), X_train, y_train)
        scores.append(clf.score(X_test, y_test))
    return scores


def _best_c(mean_scores: list[float]) -> float:
    rounded = [round(100 * score, 2) for score in mean_scores]
    return C_GRID[int(np.argmax(rounded))]  # first (smallest) C on ties


def mr_protocol(X, y, solver: str) -> tuple[float, list[float], list[float]]:
    """SentEval's InnerKFoldClassifier: 10 outer folds, 10 inner folds for C."""
    from sklearn.model_selection import StratifiedKFold

    X = _design(X, solver)
    outer = StratifiedKFold(n_splits=KFOLD, shuffle=True, random_state=SEED)
    inner = StratifiedKFold(n_splits=KFOLD, shuffle=True, random_state=SEED)
    fold_accuracies, best_cs = [], []
    for train, test in outer.split(X, y):
        X_train, y_train = X[train], y[train]
        per_fold = [
            _grid_scores(
                X_train[in_train], y_train[in_train], X_train[in_test],
                y_train[in_test], solver,
            )
            for in_train, in_test in inner.split(X_train, y_train)
        ]  # fmt: skip
        C = _best_c(list(np.mean(per_fold, axis=0)))
        clf = _fit(_logistic_regression(C, solver), X_train, y_train)
        fold_accuracies.append(round(100 * clf.score(X[test], y[test]), 2))
        best_cs.append(C)
    return round(float(np.mean(fold_accuracies)), 2), fold_accuracies, best_cs


def sst_protocol(X_train, y_train, X_dev, y_dev, X_test, y_test, solver: str):
    """SentEval's SplitClassifier: C chosen on dev, refitted on train, test score."""
    X_train, X_dev, X_test = (_design(X, solver) for X in (X_train, X_dev, X_test))
    dev_scores = _grid_scores(X_train, y_train, X_dev, y_dev, solver)
    C = _best_c(dev_scores)
    clf = _fit(_logistic_regression(C, solver), X_train, y_train)
    test = round(100 * clf.score(X_test, y_test), 2)
    return test, round(100 * max(dev_scores), 2), C


# -- encoding -------------------------------------------------------------------
def parse_layers(text: str, n_layers: int) -> int | tuple[int, ...]:
    """``-1``, ``middle`` (n_layers // 2) or a comma list such as ``1,-1``."""
    if text == "middle":
        return n_layers // 2
    values = tuple(int(part) for part in text.split(","))
    return values[0] if len(values) == 1 else values


def layers_label(layers: int | tuple[int, ...], n_layers: int) -> str:
    def name(layer: int) -> str:
        absolute = layer % (n_layers + 1)
        return "last" if absolute == n_layers else str(absolute)

    if isinstance(layers, int):
        return name(layers)
    return "+".join(name(layer) for layer in layers)


def encode_all(vectorizer, texts: list[str], log) -> np.ndarray:
    started = time.perf_counter()
    X = vectorizer.transform(texts)
    elapsed = time.perf_counter() - started
    log(
        f"  pooling={vectorizer.pooling:<6} {len(texts)} texts in {elapsed:7.1f} s "
        f"({len(texts) / max(elapsed, 1e-9):7.0f} texts/s)"
    )
    return X


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    parser.add_argument(
        "--model",
        default=None,
        help="checkpoint folder or Hub id (default: the offline all-MiniLM-L6-v2 "
        "of skbert[demo]); e.g. bert-base-uncased",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder holding mr.tsv and sst2_{train,dev,test}.tsv (text<TAB>label)",
    )
    parser.add_argument(
        "--layers",
        nargs="+",
        default=["-1", "middle", "1,-1"],
        help="layer selections: an index, 'middle' or a comma list "
        "(default: -1 middle 1,-1)",
    )
    parser.add_argument(
        "--poolings", nargs="+", default=list(POOLINGS), choices=POOLINGS
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="persistent embedding cache (default: in memory, lost at exit)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: the vectorizer's"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument(
        "--solver",
        default="newton-cholesky",
        choices=["newton-cholesky", "lbfgs", "liblinear"],
        help="LogisticRegression solver (default: %(default)s, warm-started along "
        "the C grid). All three minimise liblinear's objective (penalised "
        "intercept), which SentEval's scikit-learn path used; newton-cholesky "
        "reaches it in a few Newton steps, liblinear itself is much slower here",
    )
    parser.add_argument(
        "--encode-only",
        action="store_true",
        help="only fill the embedding cache (with --cache-dir)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use only this many texts of each file (smoke test)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch and BLAS threads (default: their own choice; 1 is much faster "
        "on a machine that other jobs keep busy)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--plot", type=Path, default=None, help="write a PNG here")
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=None,
        metavar="JSON",
        help="only combine the --json files of earlier runs (e.g. one per layer "
        "selection, run in parallel) into --json and --plot",
    )
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.json, args.plot)

    from skbert import BertCLSVectorizer

    if args.threads:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    model = args.model
    if model is None:
        model = default_model()
        model_label = "sentence-transformers/all-MiniLM-L6-v2"
    else:
        model_label = model

    def log(message: str) -> None:
        print(message, flush=True)

    if args.data_dir is None:
        parser.error("--data-dir is required (unless --merge)")
    started = time.perf_counter()
    data = load_data(args.data_dir, args.limit)
    all_texts = list(
        dict.fromkeys(text for texts, _ in data.values() for text in texts)
    )
    log(f"model {model_label}; {len(all_texts)} distinct texts")

    options = {} if args.batch_size is None else {"batch_size": args.batch_size}
    vectorizer = BertCLSVectorizer(
        model_name_or_path=model,
        **options,
        device=args.device,
        max_length=args.max_length,
        cache=args.cache_dir if args.cache_dir else "auto",
        show_progress_bar=False,
    ).fit(["probe"])
    n_layers = vectorizer.n_layers_ - 1
    log(
        f"{n_layers} layers, {vectorizer.hidden_size_} dims, trained pooler: "
        f"{vectorizer.has_pooler_}"
    )

    results: list[Result] = []
    encode_seconds = 0.0
    for layers_text in args.layers:
        layers = parse_layers(layers_text, n_layers)
        label = layers_label(layers, n_layers)
        poolings = [
            pooling
            for pooling in args.poolings
            if pooling != "pooler" or (vectorizer.has_pooler_ and label == "last")
        ]
        log(f"layers={layers!r} ({label}): poolings {poolings}")
        for pooling in poolings:
            vectorizer.set_params(layers=layers, pooling=pooling)
            tick = time.perf_counter()
            X_all = encode_all(vectorizer, all_texts, log)
            encode_seconds += time.perf_counter() - tick
            if args.encode_only:
                continue
            results.append(evaluate(X_all, all_texts, data, label, pooling, args))
            result = results[-1]
            log(
                f"  -> MR {result.mr:.2f}  SST {result.sst:.2f} (dev "
                f"{result.sst_dev:.2f}, C={result.sst_best_c})  classifier "
                f"{result.seconds_classifier:.0f} s"
            )
            if args.json:  # after every result: a long run can be inspected
                seconds = {
                    "total": round(time.perf_counter() - started),
                    "encoding": round(encode_seconds),
                }
                write_json(args.json, payload(args, results, model_label, n_layers))
                update_seconds(args.json, seconds)
        if args.cache_dir is None:
            import skbert

            skbert.clear_cache()  # the next layer selection needs the memory

    total = time.perf_counter() - started
    log(f"encoding {encode_seconds:.0f} s, total {total:.0f} s")
    if args.encode_only:
        return 0
    print_table(results, log)
    if args.plot:
        plot(results, args.plot, model_label)
    return 0


def evaluate(X_all, all_texts, data, label, pooling, args) -> Result:
    """Both protocols on the vectors of one (layers, pooling)."""
    row = {text: i for i, text in enumerate(all_texts)}

    def vectors(name):
        texts, labels = data[name]
        return X_all[[row[text] for text in texts]], labels

    tick = time.perf_counter()
    mr, mr_folds, mr_cs = mr_protocol(*vectors("mr"), args.solver)
    sst, sst_dev, sst_c = sst_protocol(
        *vectors("sst_train"), *vectors("sst_dev"), *vectors("sst_test"), args.solver
    )
    seconds = round(time.perf_counter() - tick, 1)
    return Result(label, pooling, mr, mr_folds, mr_cs, sst, sst_dev, sst_c, seconds)


def print_table(results: list[Result], log) -> None:
    """The results and the published rows as Markdown (docs/evaluation.md)."""
    log("\n| layers | pooling | MR | SST-2 |")
    log("|---|---|---:|---:|")
    for result in results:
        cells = [f"`{result.layers}`", f"`{result.pooling}`"]
        cells += [f"{result.mr:.2f}", f"{result.sst:.2f}"]
        log("| " + " | ".join(cells) + " |")
    log("\n| published (SBERT paper, Table 5) | MR | SST-2 |")
    log("|---|---:|---:|")
    for name, (mr, sst) in PUBLISHED.items():
        log(f"| {name} | {mr:.2f} | {sst:.2f} |")


def payload(args, results, model_label, n_layers) -> dict:
    import sklearn
    import torch
    import transformers

    import skbert

    return {
        "model": model_label,
        "n_layers": n_layers,
        "protocol": {
            "C_grid": list(C_GRID),
            "kfold": KFOLD,
            "seed": SEED,
            "solver": args.solver,
            "limit": args.limit,
        },
        "published": {name: list(values) for name, values in PUBLISHED.items()},
        "results": [asdict(result) for result in results],
        "versions": {
            "python": platform.python_version(),
            "skbert": skbert.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "command": "python benchmarks/evaluate.py " + " ".join(sys.argv[1:]),
    }


def write_json(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def update_seconds(path: Path, seconds: dict) -> None:
    content = json.loads(path.read_text(encoding="utf-8"))
    content["seconds"] = seconds
    write_json(path, content)


def merge(paths: list[Path], out_json: Path | None, out_plot: Path | None) -> int:
    """Combine the JSON files of runs over different layer selections."""
    contents = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    merged = dict(contents[0])
    merged["results"] = [row for content in contents for row in content["results"]]
    merged["command"] = [content["command"] for content in contents]
    merged["seconds"] = [content.get("seconds") for content in contents]
    results = [Result(**row) for row in merged["results"]]
    print_table(results, print)
    if out_json:
        write_json(out_json, merged)
    if out_plot:
        plot(results, out_plot, merged["model"])
    return 0


def plot(results: list[Result], path: Path, model_label: str) -> None:
    """Accuracy by layer selection and pooling, next to the published rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layer_names = list(dict.fromkeys(result.layers for result in results))
    colors = {
        "cls": "#4c72b0",
        "pooler": "#8172b3",
        "mean": "#55a868",
        "max": "#dd8452",
    }
    width = 0.2
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, title, key, column in (
        (axes[0], "MR (10-fold CV)", "mr", 0),
        (axes[1], "SST-2 (test set)", "sst", 1),
    ):
        for j, pooling in enumerate(POOLINGS):
            xs, heights = [], []
            for i, layer in enumerate(layer_names):
                for result in results:
                    if result.layers == layer and result.pooling == pooling:
                        xs.append(i + (j - 1.5) * width)
                        heights.append(getattr(result, key))
            if xs:
                bars = ax.bar(xs, heights, width, color=colors[pooling], label=pooling)
                ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
        for name, style in (
            ("BERT CLS-vector", ":"),
            ("Avg. BERT embeddings", "--"),
            ("SBERT-NLI-base", "-."),
        ):
            ax.axhline(
                PUBLISHED[name][column],
                color="grey",
                linestyle=style,
                linewidth=1,
                label=f"{name} (published)",
            )
        ax.set_xticks(range(len(layer_names)), [f"layers: {n}" for n in layer_names])
        ax.set_title(title)
        lowest = min(getattr(result, key) for result in results)
        ax.set_ylim(min(70, 5 * int(lowest // 5)), 92)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, fontsize=8)
    fig.suptitle(f"Frozen {model_label} vectors + logistic regression (SentEval)")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
