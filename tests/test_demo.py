"""``skbert demo`` prints its own concise progress, never scikit-learn's log.

Run on the tiny model and 40 sentences, so it is quick; the real checkpoint
runs it in ``test_cli.py::test_demo_runs_on_a_small_subset`` (slow).
"""

from __future__ import annotations

import re

import pytest
from helpers import use_few_sentences

from skbert._cli import commands as _cli

POOLING_LINE = re.compile(r"^    (cls|pooler|mean|max) +(\d\.\d{3}) ± (\d\.\d{3}) ")


@pytest.fixture
def few_sentences(monkeypatch):
    use_few_sentences(monkeypatch, 20, 980)


@pytest.mark.filterwarnings("ignore::skbert.TruncationWarning")  # the tiny model: 64
@pytest.mark.parametrize("progress", ["--no-progress", "--progress"])
def test_demo_prints_one_line_per_pooling_and_no_cv_log(
    tiny_model_dir, tmp_path, capsys, few_sentences, progress
):
    output = tmp_path / "demo.joblib"

    code = _cli.main(
        ["demo", "--model", str(tiny_model_dir), "--cv", "2", "--output", str(output),
         progress]
    )  # fmt: skip
    out, err = capsys.readouterr()

    assert code == 0, err
    assert "[CV]" not in out + err
    assert "total time" not in out + err
    lines = [POOLING_LINE.match(line) for line in out.splitlines()]
    scores = {m.group(1): float(m.group(2)) for m in lines if m}
    assert sorted(scores) == ["cls", "max", "mean", "pooler"]
    assert sum(1 for m in lines if m) == 4  # once each, when its folds are done
    best = re.search(r"Best pooling: '(\w+)'", out).group(1)
    assert scores[best] == max(scores.values())
    assert "[6/6]" in out and output.exists()
    if progress == "--no-progress":
        assert err == ""


@pytest.mark.filterwarnings("ignore::skbert.TruncationWarning")
@pytest.mark.filterwarnings("ignore:pooling='auto'")  # a bare transformer: cls
def test_demo_leaves_an_untrained_pooler_out(tmp_path, capsys, few_sentences):
    # RoBERTa's pre-training has no sentence-level objective: its checkpoints
    # compute a pooler output, but no objective ever trained it.
    from families import build_family

    roberta = build_family("roberta", tmp_path / "roberta")

    code = _cli.main(
        ["demo", "--model", str(roberta), "--cv", "2", "--no-progress",
         "--output", str(tmp_path / "demo.joblib")]
    )  # fmt: skip
    out, err = capsys.readouterr()

    assert code == 0, err
    assert "trained pooler: no" in out
    lines = [POOLING_LINE.match(line) for line in out.splitlines()]
    assert sorted(m.group(1) for m in lines if m) == ["cls", "max", "mean"]
