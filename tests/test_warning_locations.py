"""Warnings point at the user's line, whatever sits between it and skbert.

Each test calls skbert through one kind of wrapper (``set_output``, a
``Pipeline``, a search, ``joblib.load``, the command line) and checks the file
and line that the warning reports: this file, at the line that made the call.
"""

from __future__ import annotations

import inspect
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from helpers import vectorizer, versions_installed
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

import skbert
import skbert._encoding.batching
from skbert._cli import commands as _cli

LONG = " ".join(["word"] * 40)
TEXTS = ["a great film", LONG, "dull", LONG + " again"]
LABELS = [1, 0, 1, 0]


def caught_at(category, call) -> list[tuple[str, int]]:
    """``(filename, line)`` of each ``category`` warning raised by ``call()``.

    ``call`` is a lambda written on one line, so the line the warning should
    name is the lambda's own.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    found = [(w.filename, w.lineno) for w in caught if w.category is category]
    assert found, f"no {category.__name__} was raised"
    return found


def here(call) -> tuple[str, int]:
    """Where the one-line lambda ``call`` was written."""
    return __file__, inspect.getsourcelines(call)[1]


def truncating(folder, **params):
    return vectorizer(folder, max_length=8, **params)


@pytest.mark.parametrize("output", ["default", "pandas", "polars"])
def test_truncation_warning_through_set_output(tiny_model_dir, output):
    if output == "polars":
        pytest.importorskip("polars")
    estimator = truncating(tiny_model_dir).set_output(transform=output)

    fit_transform = lambda: estimator.fit_transform(TEXTS)  # noqa: E731
    transform = lambda: estimator.transform(TEXTS)  # noqa: E731

    assert caught_at(skbert.TruncationWarning, fit_transform) == [here(fit_transform)]
    assert caught_at(skbert.TruncationWarning, transform) == [here(transform)]


def test_truncation_warning_through_a_pipeline(tiny_model_dir):
    pipeline = make_pipeline(
        truncating(tiny_model_dir).set_output(transform="pandas"),
        LogisticRegression(),
    )

    fit = lambda: pipeline.fit(TEXTS, LABELS)  # noqa: E731
    predict = lambda: pipeline.predict(TEXTS)  # noqa: E731

    assert set(caught_at(skbert.TruncationWarning, fit)) == {here(fit)}
    assert set(caught_at(skbert.TruncationWarning, predict)) == {here(predict)}


def test_truncation_warning_through_cross_validation(tiny_model_dir):
    pipeline = make_pipeline(truncating(tiny_model_dir), LogisticRegression())

    score = lambda: cross_val_score(pipeline, TEXTS * 2, LABELS * 2, cv=2)  # noqa: E731

    assert set(caught_at(skbert.TruncationWarning, score)) == {here(score)}


def test_version_warning_through_joblib_and_pickle(
    tiny_model_dir, tmp_path, monkeypatch
):
    fitted = vectorizer(tiny_model_dir).fit(["probe"])
    with versions_installed(monkeypatch, torch="1.0.0"):  # written elsewhere
        path = tmp_path / "old.joblib"
        joblib.dump(fitted, path)
        old = pickle.dumps(fitted)

    from_joblib = lambda: joblib.load(path)  # noqa: E731
    from_pickle = lambda: pickle.loads(old)  # noqa: E731

    warning = skbert.InconsistentVersionWarning
    assert caught_at(warning, from_joblib) == [here(from_joblib)]
    assert caught_at(warning, from_pickle) == [here(from_pickle)]


def test_out_of_memory_warning_through_the_command_line(
    tiny_model_dir, tmp_path, monkeypatch, capsys
):
    original = skbert._encoding.batching.pool_batch

    def flaky(loaded, batch, *args):
        if int(batch["input_ids"].shape[0]) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return original(loaded, batch, *args)

    monkeypatch.setattr(skbert._encoding.batching, "pool_batch", flaky)
    source = tmp_path / "in.txt"
    source.write_text("".join(text + "\n" for text in TEXTS), encoding="utf-8")
    args = ["embed", str(source), str(tmp_path / "out.npy"), "-m", str(tiny_model_dir)]

    embed = lambda: _cli.main([*args, "--cache", "none"])  # noqa: E731

    assert set(caught_at(RuntimeWarning, embed)) == {here(embed)}
    assert np.load(tmp_path / "out.npy").shape == (len(TEXTS), 32)
    assert "wrote 4 vectors" in capsys.readouterr().out


def test_auto_fallback_warning_through_fit_and_a_pipeline(tiny_model_dir):
    # a bare transformer: pooling="auto" falls back to "cls" and says so
    estimator = vectorizer(tiny_model_dir, pooling="auto")
    pipeline = make_pipeline(vectorizer(tiny_model_dir, pooling="auto"))

    fit = lambda: estimator.fit(["probe"])  # noqa: E731
    fit_transform = lambda: estimator.fit_transform(TEXTS[:1])  # noqa: E731
    in_pipeline = lambda: pipeline.fit(TEXTS[:1])  # noqa: E731

    for call in (fit, fit_transform, in_pipeline):
        with pytest.warns(UserWarning, match="bare transformer") as caught:
            call()
        found = [
            (w.filename, w.lineno)
            for w in caught
            if "bare transformer" in str(w.message)
        ]
        assert found == [here(call)]  # not sklearn/base.py's _fit_context
