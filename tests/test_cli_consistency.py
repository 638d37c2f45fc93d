"""The command line speaks one language: its own options, 1-based rows, and a
summary that says what it wrote.

Errors name ``--pooling cls``, not ``pooling='cls'``; every row or line number
counts from 1; an input without texts is not a failure but is reported as
such; empty texts are counted; multi-line messages (a recipe to run) keep
their line breaks; a negative ``--layers`` list needs no ``=``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import vectorizer

from skbert._cli import commands as _cli

#: A vectorizer parameter written as Python, ``pooling='cls'`` or ``layers=-1``.
PYTHON_SPELLING = re.compile(
    r"\b(pooling|layers|max_length|quantize|backend|dtype|device|normalize|"
    r"batch_size|max_batch_tokens|model_name_or_path)="
)


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = _cli.main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def source(tmp_path) -> Path:
    return write_lines(tmp_path / "in.txt", ["a great film", "dull", "one two"])


@pytest.mark.parametrize(
    ("model", "args", "needles"),
    [
        ("mlm", ["--pooling", "pooler"], ["--pooling cls", "--pooling mean"]),
        ("bert", ["--layers", "5"], ["--layers 5: index 5 is out of range"]),
        ("bert", ["--max-length", "100"], ["--max-length 100 exceeds", "no --max-"]),
        ("bert", ["--quantize"], ["--quantize needs --backend onnx", "no --quan"]),
        (
            "bert",
            ["--pooling", "pooler", "--layers", "0,-1"],
            ["--pooling pooler reads", "got --layers 0,-1", "Use --layers -1"],
        ),
        (
            "bert",
            ["--backend", "onnx", "--dtype", "float16"],
            ["got --dtype float16", "Use --dtype float32", "--backend torch"],
        ),
        ("bert", ["--device", "0"], ["--device 0 is not a valid"]),
    ],
)
def test_errors_name_command_line_options(
    tiny_model_dir, tiny_mlm_dir, source, tmp_path, capsys, model, args, needles
):
    folder = tiny_mlm_dir if model == "mlm" else tiny_model_dir
    code, _, err = run_cli(
        ["embed", source, tmp_path / "o.npy", "-m", folder, *args], capsys
    )

    assert code == 1
    assert err.startswith("skbert embed: error: ")
    assert not PYTHON_SPELLING.search(err), err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("layers", ["-2,-1", "-1", "1,-1"])
def test_negative_layers_need_no_equals_sign(
    tiny_model_dir, source, tmp_path, capsys, layers
):
    spaced, joined = tmp_path / "spaced.npy", tmp_path / "joined.npy"

    code, _, err = run_cli(
        ["embed", source, spaced, "-m", tiny_model_dir, "--layers", layers], capsys
    )
    assert code == 0, err
    code, _, err = run_cli(
        ["embed", source, joined, "-m", tiny_model_dir, f"--layers={layers}"], capsys
    )
    assert code == 0, err

    values = tuple(int(part) for part in layers.split(","))
    want = vectorizer(tiny_model_dir, layers=values).fit_transform(
        ["a great film", "dull", "one two"]
    )
    np.testing.assert_allclose(np.load(spaced), want, atol=1e-5)
    np.testing.assert_array_equal(np.load(spaced), np.load(joined))


def test_a_negative_value_is_not_taken_for_a_positional(tiny_model_dir, capsys):
    code, _, err = run_cli(["embed", "in.txt", "o.npy", "--layers", "-m"], capsys)
    assert code == 2  # "-m" is an option, not a value of --layers
    assert "--layers" in err


def parquet_with(tmp_path: Path, values: list) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": pa.array(values, pa.string())}), path)
    return path


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("in.jsonl", ['{"text": null}', '{"text": "b"}'], "line 1"),
        ("in.jsonl", ['{"text": "a"}', "", '{"text": 5}'], "line 3"),
        ("in.jsonl", ['{"text": "a"}', '{"text": "\\ud800"}'], "line 2"),
        ("in.csv", ["id,text", "1"], "line 2"),
        ("in.parquet", [None, "b"], "row 1"),
        ("in.parquet", ["a", "b", None], "row 3"),
    ],
)
def test_row_and_line_numbers_count_from_one(
    tiny_model_dir, tmp_path, capsys, name, content, needle
):
    if name.endswith(".parquet"):
        path = parquet_with(tmp_path, content)
    else:
        path = write_lines(tmp_path / name, content)

    code, _, err = run_cli(
        ["embed", path, tmp_path / "o.npy", "-m", tiny_model_dir], capsys
    )

    assert code == 1
    assert err.startswith("skbert embed: error: ")
    assert needle in err, err
    assert "position" not in err


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("header.csv", "text\n"),
        ("header.tsv", "id\ttext\n"),
        ("nothing.csv", ""),
        ("nothing.txt", ""),
        ("nothing.jsonl", ""),
        ("blank-lines.jsonl", "\n\n"),
        ("rows.parquet", None),
    ],
)
def test_an_input_without_texts_writes_an_empty_array_and_says_so(
    tiny_model_dir, tmp_path, capsys, name, content
):
    if content is None:
        path = parquet_with(tmp_path, [])
    else:
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
    output = tmp_path / "o.npy"

    code, out, err = run_cli(["embed", path, output, "-m", tiny_model_dir], capsys)

    assert code == 0, err
    assert np.load(output).shape == (0, 32)
    assert f"wrote 0 vectors of dimension 32 to {output}" in out
    assert "no texts" in out


def test_empty_and_whitespace_texts_are_counted(tiny_model_dir, tmp_path, capsys):
    path = write_lines(tmp_path / "in.txt", ["a", "", "  \t", "b", ""])
    output = tmp_path / "o.npy"

    code, out, err = run_cli(["embed", path, output, "-m", tiny_model_dir], capsys)

    assert code == 0, err
    assert f"wrote 5 vectors of dimension 32 to {output}" in out
    assert "3 of the 5 texts are empty or whitespace only" in out
    code, out, _ = run_cli(
        ["embed", write_lines(tmp_path / "b.txt", ["a"]), output, "-m", tiny_model_dir],
        capsys,
    )
    assert code == 0 and "whitespace only" not in out


def test_a_multi_line_recipe_keeps_its_line_breaks(tiny_model_dir, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "pickled"))
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()

    code, _, err = run_cli(["info", folder], capsys)

    assert code == 1
    lines = err.splitlines()
    assert lines[0].startswith("skbert info: error: Refusing to load the weights")
    assert "    import torch" in lines
    assert "    from safetensors.torch import save_file" in lines
    assert any(line.startswith("    save_file(") for line in lines)


def test_the_vector_modes_are_the_poolings_skbert_computes():
    """``VECTOR_MODES`` (what a manifest's spec may name) is every pooling the
    numpy code computes, plus the model's own pooler; a recipe maps onto it."""
    from skbert._core import options as _options
    from skbert._encoding.pooling import NUMPY_POOLINGS
    from skbert._model import recipe as _recipe

    assert set(_options.VECTOR_MODES) == {*NUMPY_POOLINGS, "pooler"}
    assert set(_recipe._MODES.values()) <= set(_options.VECTOR_MODES)


#: Each option of the vectorizer with a vocabulary, and that vocabulary's home.
OPTION_VOCABULARIES = {
    "pooling": "POOLINGS",
    "dtype": "DTYPES",
    "backend": "BACKENDS",
    "persist": "PERSIST_OPTIONS",
    "long_texts": "LONG_TEXTS",
    "chunk_combine": "CHUNK_COMBINES",
    "fine_tune": "FINE_TUNE_OBJECTIVES",
}


@pytest.mark.parametrize("option", OPTION_VOCABULARIES)
def test_the_docstring_validation_and_docs_name_each_vocabulary_as_its_home_does(
    option,
):
    """The docstring's ``{...}``, the parameter constraints and (for
    ``pooling``) the docs' table list exactly the vocabulary in
    ``skbert._core.options``, in its order."""
    import inspect
    import re
    from pathlib import Path

    from skbert import BertCLSVectorizer
    from skbert._core import options as _options

    vocabulary = getattr(_options, OPTION_VOCABULARIES[option])
    doc = inspect.getdoc(BertCLSVectorizer)
    declared = re.search(rf"^{option} : \{{([^}}]*)\}}", doc, flags=re.M)
    assert declared, f"the docstring gives no {{...}} for {option}"
    assert tuple(re.findall(r'"(\w+)"', declared[1])) == vocabulary
    constraint = BertCLSVectorizer._parameter_constraints[option][0]
    assert constraint.options == set(vocabulary)
    if option == "pooling":
        page = Path(__file__).parents[1] / "docs" / "pooling.md"
        table = re.findall(r'^\| `"(\w+)"`', page.read_text(encoding="utf-8"), re.M)
        assert tuple(table) == vocabulary


def test_the_internal_runner_names_have_one_home():
    """What runs a model is named by ``_options.runner`` only: no module
    spells an ONNX runner itself."""
    from pathlib import Path

    from skbert._core import options as _options

    assert [
        _options.runner(b, q) for b in _options.BACKENDS for q in (False, True)
    ] == [
        "torch",
        "torch",
        "onnx",
        "onnx-int8",
        "openvino",
        "openvino-int8",
    ]
    assert [_options.on_onnx_runtime(name) for name in _options.RUNNERS] == [
        False,
        True,
        True,
        False,
        False,
    ]
    assert [_options.on_openvino(name) for name in _options.RUNNERS] == [
        False,
        False,
        False,
        True,
        True,
    ]
    package = Path(_options.__file__).parents[1]
    for module in package.rglob("*.py"):
        if module != Path(_options.__file__):
            text = module.read_text(encoding="utf-8")
            spelled = ('"onnx-int8"', '"openvino-int8"', 'startswith("onnx")')
            assert not any(name in text for name in spelled), module.name


FRONT_ENDS = [
    "_cli/commands.py",
    "_cli/embed.py",
    "_cli/info.py",
    "_cli/export.py",
    "_cli/options.py",
    "_cli/demo.py",
    "_export/export.py",
    "_export/graph.py",
    "_export/head.py",
    "_estimator/fitted.py",
    "dask.py",
    "runtime/__init__.py",
]


@pytest.mark.parametrize("module", FRONT_ENDS)
def test_no_front_end_calls_a_private_method_of_the_estimator(module):
    """The CLI, the demo, the export, Dask and the runtime ask the fitted
    encoder (``skbert._estimator.fitted``) or the estimator's public API; none reaches
    into the estimator's private methods (issue 22: the CLI called
    ``_encode_and_report``, the export ``_check_model_parameters``)."""
    import ast
    import inspect
    from pathlib import Path

    from skbert import BertCLSVectorizer

    private = {
        name
        for klass in BertCLSVectorizer.__mro__
        if klass.__module__.startswith("skbert")
        for name in vars(klass)
        if name.startswith("_") and not name.startswith("__")
    }
    import skbert

    source = Path(inspect.getfile(skbert)).parent / module
    tree = ast.parse(source.read_text(encoding="utf-8"))
    reached = [
        f"{module}:{node.lineno}: {ast.unparse(node)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in private
        and not (isinstance(node.value, ast.Name) and node.value.id == "self")
    ]
    assert reached == []
