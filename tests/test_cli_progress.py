"""``skbert embed`` tells a person what it is doing: per batch, not per chunk.

A bar (terminal or ``--progress``) advances once per batch of texts done and
says when the model is loading; a log (stderr not a terminal) gets a line
every ``LOG_EVERY`` seconds; the result line counts texts, tokens read by the
model (checked against the tokenizer run on each text alone), truncated
texts and the rate. The Python API stays quiet when not on a terminal.
"""

from __future__ import annotations

import re

import pytest
from helpers import TINY_MAX_LENGTH, vectorizer
from transformers import AutoTokenizer

from skbert._cli import commands as _cli


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = _cli.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def twelve_texts(texts) -> list[str]:
    """Twelve distinct texts, non-empty, one of them longer than the model."""
    chosen = list(dict.fromkeys(text for text in texts if text.strip()))[:11]
    return chosen + [" ".join(["word"] * (2 * TINY_MAX_LENGTH))]


@pytest.fixture
def source(tmp_path, twelve_texts):
    path = tmp_path / "in.txt"
    path.write_text("".join(text.replace("\n", " ") + "\n" for text in twelve_texts))
    return path


def one_line_texts(twelve_texts) -> list[str]:
    return [text.replace("\n", " ") for text in twelve_texts]


class RecordingBar:
    """tqdm's interface, recording every update of a bar counting texts
    (other bars, such as the weight loader's, only iterate)."""

    made: list[RecordingBar] = []

    def __init__(
        self, iterable=(), *args, total=None, disable=False, unit="it", **kwargs
    ) -> None:
        self.iterable, self.total, self.disable = iterable, total, disable
        self.n, self.updates = 0, []
        if unit == "text":
            RecordingBar.made.append(self)

    def __iter__(self):
        return iter(self.iterable)

    def update(self, n=1) -> None:
        self.n += n
        self.updates.append(n)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def test_bar_advances_per_batch_not_per_chunk(
    tiny_model_dir, source, tmp_path, capsys, monkeypatch
):
    import tqdm.auto

    RecordingBar.made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    code, _, err = run_cli(
        ["embed", source, tmp_path / "o.npy", "-m", tiny_model_dir, "--progress",
         "--batch-size", 2, "--chunk-size", 100],
        capsys,
    )  # fmt: skip

    assert code == 0, err
    (bar,) = [made for made in RecordingBar.made if not made.disable]
    assert bar.total == 12 and bar.n == 12
    # one chunk of 12 texts, batches of 2: six steps, none larger than a batch
    assert len([n for n in bar.updates if n]) >= 6
    assert max(bar.updates) <= 2
    assert err.index("loading model") < err.index("model loaded in")


def test_log_gets_a_line_per_interval(
    tiny_model_dir, source, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr("skbert._cli.progress.LOG_EVERY", 0.0)  # a line per batch
    code, _, err = run_cli(
        ["embed", source, tmp_path / "o.npy", "-m", tiny_model_dir,
         "--batch-size", 3, "--chunk-size", 100],
        capsys,
    )  # fmt: skip

    assert code == 0, err
    done = [int(n) for n in re.findall(r"skbert embed: (\d+) of 12 texts", err)]
    assert len(done) >= 4 and done == sorted(done) and done[-1] == 12
    assert "model loaded in" in err  # the load took longer than LOG_EVERY


def test_short_run_in_a_log_writes_only_its_result(
    tiny_model_dir, source, tmp_path, capsys
):
    code, out, err = run_cli(
        ["embed", source, tmp_path / "o.npy", "-m", tiny_model_dir], capsys
    )
    assert code == 0
    assert re.search(r"\d+ of 12 texts,", err) is None and "loading" not in err
    assert out.count("\n") == 1


def test_summary_counts_tokens_truncated_and_rate(
    tiny_model_dir, source, twelve_texts, tmp_path, capsys
):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    lengths = [
        len(tokenizer(text, truncation=True, max_length=TINY_MAX_LENGTH)["input_ids"])
        for text in one_line_texts(twelve_texts)
    ]
    cache = tmp_path / "cache"
    args = ["embed", source, tmp_path / "o.npy", "-m", tiny_model_dir]

    code, out, err = run_cli([*args, "--cache", cache], capsys)

    assert code == 0, err
    assert f"; {sum(lengths)} tokens read by the model, 1 text truncated, " in out
    assert re.search(r"\d+\.\d s \((\d+ texts/s|too fast to time)\)$", out.strip())
    # a second run is served by the cache: the model reads nothing
    code, out, err = run_cli([*args, "--cache", cache], capsys)
    assert "; 0 tokens read by the model, 1 text truncated, " in out


def test_python_api_quiet_when_not_on_a_terminal(tiny_model_dir, texts, capsys):
    model = vectorizer(tiny_model_dir, batch_size=2)  # show_progress_bar=None
    model.fit_transform(texts[:40])
    assert capsys.readouterr().err == ""
