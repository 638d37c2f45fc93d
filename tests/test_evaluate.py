"""``benchmarks/evaluate.py`` follows the SentEval protocol, and runs end to end.

The protocol is checked against a plain re-implementation of SentEval's loops
(``senteval/tools/validation.py``: ``InnerKFoldClassifier`` and
``SplitClassifier`` with ``usepytorch=False``) with the solver SentEval's
scikit-learn ran, liblinear (its default before 0.22), fitted cold for every
``C``; the evaluation's warm-started Newton fits must choose the same ``C`` and
give the same accuracies. The end-to-end run uses the tiny random BERT on
made-up data (the real data is never read by the tests).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def evaluate():
    spec = importlib.util.spec_from_file_location(
        "skbert_benchmark_evaluate", ROOT / "benchmarks" / "evaluate.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    sys.path.insert(0, str(ROOT / "benchmarks"))  # as when run as a script
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
        sys.modules.pop(spec.name, None)
        sys.modules.pop("_common", None)


def noisy_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] + rng.normal(scale=1.5, size=n) > 0).astype(np.int64)
    return X, y


def senteval_lr(C: float) -> LogisticRegression:
    """SentEval's ``LogisticRegression(C=reg, random_state=seed)`` of its time,
    solved to a tight tolerance so that the comparison is about the objective."""
    return LogisticRegression(
        C=C, random_state=1111, solver="liblinear", tol=1e-10, max_iter=10_000
    )


def senteval_inner_kfold(X, y, grid):
    """SentEval's InnerKFoldClassifier.run, sklearn path, one fit per C."""
    skf = StratifiedKFold(n_splits=10, shuffle=True, random_state=1111)
    innerskf = StratifiedKFold(n_splits=10, shuffle=True, random_state=1111)
    testresults = []
    for train_idx, test_idx in skf.split(X, y):
        X_train, X_test = X[train_idx], X[test_idx]
        y_train, y_test = y[train_idx], y[test_idx]
        scores = []
        for reg in grid:
            regscores = []
            for inner_train_idx, inner_test_idx in innerskf.split(X_train, y_train):
                clf = senteval_lr(reg)
                clf.fit(X_train[inner_train_idx], y_train[inner_train_idx])
                regscores.append(
                    clf.score(X_train[inner_test_idx], y_train[inner_test_idx])
                )
            scores.append(round(100 * np.mean(regscores), 2))
        optreg = grid[np.argmax(scores)]
        clf = senteval_lr(optreg)
        clf.fit(X_train, y_train)
        testresults.append(round(100 * clf.score(X_test, y_test), 2))
    return round(np.mean(testresults), 2), testresults


def senteval_split(X_train, y_train, X_dev, y_dev, X_test, y_test, grid):
    """SentEval's SplitClassifier.run, sklearn path."""
    scores = []
    for reg in grid:
        clf = senteval_lr(reg).fit(X_train, y_train)
        scores.append(round(100 * clf.score(X_dev, y_dev), 2))
    optreg = grid[np.argmax(scores)]
    clf = senteval_lr(optreg).fit(X_train, y_train)
    return round(100 * clf.score(X_test, y_test), 2), optreg


def test_grid_and_constants_are_senteval_s(evaluate):
    assert evaluate.C_GRID == tuple(2.0**t for t in range(-2, 4))
    assert (evaluate.KFOLD, evaluate.SEED) == (10, 1111)


def test_ties_go_to_the_smallest_c_after_rounding(evaluate):
    assert evaluate._best_c([0.5, 0.7, 0.7, 0.6, 0.69999, 0.1]) == 0.5
    assert evaluate._best_c([0.5, 0.700001, 0.7, 0.6, 0.1, 0.1]) == 0.5
    assert evaluate._best_c([0.8, 0.8, 0.8, 0.8, 0.8, 0.8]) == 0.25


def test_mr_protocol_equals_senteval_loops(evaluate):
    X, y = noisy_problem(240, seed=0)

    accuracy, folds, best_cs = evaluate.mr_protocol(X, y, "newton-cholesky")

    want, want_folds = senteval_inner_kfold(X, y, evaluate.C_GRID)
    assert accuracy == want
    assert folds == want_folds
    assert len(best_cs) == 10 and set(best_cs) <= set(evaluate.C_GRID)


def test_the_default_solver_minimises_liblinears_objective(evaluate):
    """The intercept is penalised, as in liblinear: the same classifier, also on
    nearly constant features (like a middle-layer [CLS] state), where a free
    intercept would give another one."""
    X, y = noisy_problem(600, seed=2)
    X[:, 0] = 9.6 + 1e-3 * X[:, 0]
    solver = "newton-cholesky"
    for C in evaluate.C_GRID:
        ours = evaluate._fit(
            evaluate._logistic_regression(C, solver), evaluate._design(X, solver), y
        )
        theirs = senteval_lr(C).fit(X, y)
        np.testing.assert_allclose(ours.coef_[0, :-1], theirs.coef_[0], atol=1e-4)
        np.testing.assert_allclose(ours.coef_[0, -1], theirs.intercept_[0], atol=1e-4)


def test_sst_protocol_equals_senteval_loops(evaluate):
    X, y = noisy_problem(900, seed=1)
    parts = (X[:600], y[:600], X[600:750], y[600:750], X[750:], y[750:])

    test, dev, best_c = evaluate.sst_protocol(*parts, "newton-cholesky")

    want_test, want_c = senteval_split(*parts, evaluate.C_GRID)
    assert (test, best_c) == (want_test, want_c)
    assert 0 <= dev <= 100


def test_samples_are_ordered_as_senteval_does(evaluate):
    texts = ["a b c", "a", "a b", "b", "c d"]
    labels = np.array([0, 1, 0, 0, 1])
    order = evaluate.senteval_order(texts, labels)
    assert [texts[i] for i in order] == ["b", "a", "a b", "c d", "a b c"]


def test_layer_names(evaluate):
    assert evaluate.parse_layers("middle", 6) == 3
    assert evaluate.parse_layers("1,-1", 6) == (1, -1)
    assert evaluate.layers_label(-1, 6) == "last"
    assert evaluate.layers_label((1, -1), 6) == "1+last"
    assert evaluate.layers_label(3, 6) == "3"


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["text", "label"])
        writer.writerows(rows)


def made_up_reviews(n: int, seed: int) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    good, bad = ["good", "great", "fun", "best"], ["bad", "dull", "boring", "worst"]
    filler = ["the", "film", "story", "was", "very", "and", "music", "cast"]
    rows = []
    for index in range(n):
        label = index % 2
        words = list(rng.choice(filler, size=4)) + [rng.choice(good if label else bad)]
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


def test_end_to_end_on_the_tiny_model(evaluate, tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    write_tsv(data / "mr.tsv", made_up_reviews(120, seed=0))
    write_tsv(data / "sst2_train.tsv", made_up_reviews(100, seed=1))
    write_tsv(data / "sst2_dev.tsv", made_up_reviews(40, seed=2))
    write_tsv(data / "sst2_test.tsv", made_up_reviews(40, seed=3))
    out = tmp_path / "results.json"
    args = [
        "--model", str(tiny_model_dir), "--data-dir", str(data),
        "--layers", "-1", "1,-1", "--poolings", "cls", "pooler",
        "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--json", str(out),
    ]  # fmt: skip

    assert evaluate.main(args) == 0

    results = json.loads(out.read_text())
    rows = {(row["layers"], row["pooling"]) for row in results["results"]}
    # pooler only exists on the last layer
    assert rows == {("last", "cls"), ("last", "pooler"), ("1+last", "cls")}
    for row in results["results"]:
        assert 0 <= row["mr"] <= 100 and 0 <= row["sst"] <= 100
        assert len(row["mr_folds"]) == 10
    assert results["published"]["BERT CLS-vector"] == [78.68, 84.13]
    log = capsys.readouterr().out
    assert "| `last` | `pooler` |" in log

    # a second run finds the vectors in the cache directory: the same numbers
    import skbert

    again = tmp_path / "again.json"
    misses = skbert.cache_info(tmp_path / "cache")["misses"]
    rerun = ["--layers", "-1", "--poolings", "pooler", "--json", str(again)]
    assert (
        evaluate.main([*args[:4], "--cache-dir", str(tmp_path / "cache"), *rerun]) == 0
    )
    assert skbert.cache_info(tmp_path / "cache")["misses"] == misses
    first = json.loads(out.read_text())["results"][1]
    assert first["pooling"] == "pooler"
    assert json.loads(again.read_text())["results"][0]["mr"] == first["mr"]

    pytest.importorskip("matplotlib")
    plot = tmp_path / "plot.png"
    merged = tmp_path / "merged.json"
    assert (
        evaluate.main(["--merge", str(out), "--json", str(merged), "--plot", str(plot)])
        == 0
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(json.loads(merged.read_text())["results"]) == 3
