"""Every encoder family: vectors equal transformers' own model run on each text
alone (pooled with numpy), the pooler allowed only where pre-training trained
it, ONNX equal to torch or refused clearly, and models that are not sentence
encoders refused or reduced to their encoder.

The tiny checkpoints are built in ``families.py`` (random weights, a
WordPiece vocabulary with each family's special tokens, template, padding id
and input names), each also as its masked-LM class, as masked-LM
pre-training leaves it.
"""

from __future__ import annotations

import json
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from families import ENCODERS, LIMIT, build_family
from helpers import numpy_pool, start_python, vectorizer

import skbert

TEXTS = [
    "A great film.",
    "dull",
    "",
    "the story was far too long and the plot never goes anywhere at all",
    "one two three",
]
#: Families whose pre-training trains the pooler (and the MPNet and RoBERTa
#: lineage whose checkpoints carry an untrained one).
TRAINED_POOLER = {"bert", "albert"}
UNTRAINED_POOLER = {"roberta", "xlm-roberta", "camembert", "mpnet"}
NO_POOLER = set(ENCODERS) - TRAINED_POOLER - UNTRAINED_POOLER
#: Written layer by layer in the pattern ONNX Runtime fuses.
BERT_LAYOUT = {"bert", "roberta", "xlm-roberta", "camembert", "electra"}
#: Exported through their own forward (issue 24: MPNet, DistilBERT,
#: DeBERTa-v2/v3, ALBERT, and the others, on the fast backends).
OWN_FORWARD = {"distilbert", "albert", "mpnet", "deberta-v2", "modernbert"}
ONNX = BERT_LAYOUT | OWN_FORWARD
#: Families whose export needs transformers 5.25 (5.4.0 cannot trace their
#: attention mask: the matrix's oldest end refuses them, with the reason).
NEEDS_NEWER_TRANSFORMERS = {"distilbert", "albert", "modernbert", "t5"}
OLD_TRANSFORMERS = tuple(
    int(part) for part in version("transformers").split(".")[:2]
) < (5, 25)


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory) -> dict[tuple[str, bool], Path]:
    root = tmp_path_factory.mktemp("families")
    folders = {}
    for name in ENCODERS:
        for masked_lm in (False, True):
            suffix = "-mlm" if masked_lm else ""
            folders[name, masked_lm] = build_family(
                name, root / f"{name}{suffix}", masked_lm=masked_lm
            )
    for name in ("t5", "gpt2"):
        folders[name, False] = build_family(name, root / name)
    return folders


class Oracle:
    """transformers' own model, one text at a time, pooled with numpy."""

    def __init__(self, folder: Path, model_class: str = "AutoModel") -> None:
        import torch
        import transformers

        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        cls = getattr(transformers, model_class)
        self.model = cls.from_pretrained(folder, dtype=torch.float32).eval()

    def outputs(self, text: str):
        import torch

        encoded = self.tokenizer(
            text, return_tensors="pt", truncation=True, max_length=LIMIT
        )
        with torch.no_grad():
            out = self.model(**encoded, output_hidden_states=True)
        states = [layer[0].double().numpy() for layer in out.hidden_states]
        pooler = getattr(out, "pooler_output", None)
        return states, None if pooler is None else pooler[0].double().numpy()

    def vectors(self, texts, pooling: str, layers=(-1,)) -> np.ndarray:
        rows = []
        for text in texts:
            states, pooler = self.outputs(text)
            if pooling == "pooler":
                rows.append(pooler)
            else:
                rows.append(
                    np.mean([numpy_pool(states[i], pooling) for i in layers], 0)
                )
        return np.stack(rows).astype(np.float32)


def encode(folder, **params) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skbert.TruncationWarning)
        return vectorizer(folder, **params).fit_transform(TEXTS)


@pytest.mark.parametrize("masked_lm", [False, True], ids=["base", "masked-lm"])
@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_every_pooling_equals_the_model_run_on_each_text(family_dirs, name, masked_lm):
    folder = family_dirs[name, masked_lm]
    oracle = Oracle(folder)
    for pooling in ("cls", "mean", "max"):
        np.testing.assert_allclose(
            encode(folder, pooling=pooling),
            oracle.vectors(TEXTS, pooling),
            atol=1e-5,
            rtol=0,
            err_msg=f"{name} {pooling}",
        )
    np.testing.assert_allclose(
        encode(folder, pooling="mean", layers=(1, -1)),
        oracle.vectors(TEXTS, "mean", layers=(1, -1)),
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.parametrize("name", sorted(TRAINED_POOLER))
def test_a_pooler_that_pre_training_trained_is_used(family_dirs, name):
    folder = family_dirs[name, False]
    np.testing.assert_allclose(
        encode(folder, pooling="pooler"),
        Oracle(folder).vectors(TEXTS, "pooler"),
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.parametrize("name", sorted(UNTRAINED_POOLER))
def test_an_untrained_pooler_is_refused_naming_the_family(family_dirs, name):
    folder = family_dirs[name, False]
    with pytest.raises(ValueError) as raised:
        vectorizer(folder, pooling="pooler").fit(TEXTS)
    message = str(raised.value)
    assert name in message and "never trained" in message
    assert "trust_pooler=True" in message

    # The explicit opt-in, for a checkpoint fine-tuned through its pooler.
    np.testing.assert_allclose(
        encode(folder, pooling="pooler", trust_pooler=True),
        Oracle(folder).vectors(TEXTS, "pooler"),
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_a_masked_lm_checkpoint_is_refused_the_pooler_naming_its_class(
    family_dirs, name
):
    folder = family_dirs[name, True]
    with pytest.raises(ValueError) as raised:
        vectorizer(folder, pooling="pooler", trust_pooler=True).fit(TEXTS)
    message = str(raised.value)
    if name in NO_POOLER:
        assert "has no pooler layer" in message
    else:
        assert ENCODERS[name].masked_lm in message and "RANDOM" in message
    assert "BertForMaskedLM" not in message or name == "bert"


def assert_graph_equals_torch(
    folder, backend: str, poolings: tuple[str, ...], mixed_pooling: str
) -> None:
    """``backend`` gives torch's vectors (1e-4) on ``poolings``, and on texts of
    every length up to the limit in one call (batches of mixed lengths: a graph
    traced at one length must not have kept it)."""
    for pooling in poolings:
        np.testing.assert_allclose(
            encode(folder, pooling=pooling, backend=backend),
            encode(folder, pooling=pooling),
            atol=1e-4,
            rtol=0,
        )
    lengths = [" ".join(["film"] * n) for n in (1, 3, 7, 9, 17, 33, 61, 70)]
    with pytest.warns(skbert.TruncationWarning):  # the last is cut, on both
        found = vectorizer(
            folder, pooling=mixed_pooling, backend=backend, batch_size=3
        ).fit(TEXTS)
        found = found.transform(lengths)
    with pytest.warns(skbert.TruncationWarning):
        on_torch = vectorizer(folder, pooling=mixed_pooling).fit(TEXTS)
        on_torch = on_torch.transform(lengths)
    np.testing.assert_allclose(found, on_torch, atol=1e-4, rtol=0)


#: Families whose export under transformers < 5.25 holds an If node of dynamic
#: rank, which OpenVINO's CPU plugin cannot compile (seen with 5.4.0).
OPENVINO_NEEDS_NEWER_TRANSFORMERS = {"deberta-v2"}


@pytest.mark.parametrize("name", sorted(ONNX))
def test_openvino_equals_torch(family_dirs, name, tmp_path, monkeypatch):
    # backend="openvino" compiles the same export: float32 within the ONNX
    # bound, texts of every length in one call, for every family exported.
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    if name in NEEDS_NEWER_TRANSFORMERS and OLD_TRANSFORMERS:
        pytest.skip("exported with transformers 5.25 or newer only")
    monkeypatch.setenv("SKBERT_HOME", str(tmp_path))
    folder = family_dirs[name, False]
    if name in OPENVINO_NEEDS_NEWER_TRANSFORMERS and OLD_TRANSFORMERS:
        with pytest.raises(RuntimeError, match="OpenVINO cannot compile"):
            vectorizer(folder, backend="openvino").fit(TEXTS)
        return
    assert_graph_equals_torch(folder, "openvino", ("cls", "mean"), "max")


@pytest.mark.slow  # NNCF calibrates in a child process
@pytest.mark.parametrize("name", sorted(ONNX))
def test_openvino_int8_points_where_the_model_does(
    family_dirs, name, tmp_path, monkeypatch
):
    # quantize=True on OpenVINO: calibrated int8 for every family exported,
    # within the cosine bound every int8 model is made under
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    if (
        name in NEEDS_NEWER_TRANSFORMERS | OPENVINO_NEEDS_NEWER_TRANSFORMERS
        and OLD_TRANSFORMERS
    ):
        pytest.skip("compiled by OpenVINO with transformers 5.25 or newer only")
    monkeypatch.setenv("SKBERT_HOME", str(tmp_path))
    folder = family_dirs[name, False]
    int8 = encode(folder, pooling="mean", backend="openvino", quantize=True)
    expected = Oracle(folder).vectors(TEXTS, "mean")
    cosine = np.sum(int8 * expected, 1) / (
        np.linalg.norm(int8, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() >= 0.9, cosine
    assert list(tmp_path.rglob("openvino-int8*.xml")), "not the int8 model"


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_onnx_equals_torch_or_is_refused_clearly(
    family_dirs, name, tmp_path, monkeypatch
):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("SKBERT_HOME", str(tmp_path))
    folder = family_dirs[name, False]
    if name not in ONNX:
        with pytest.raises(ValueError, match="backend='torch'"):
            vectorizer(folder, backend="onnx").fit(TEXTS)
        return
    if name in NEEDS_NEWER_TRANSFORMERS and OLD_TRANSFORMERS:
        with pytest.raises(ValueError, match="transformers 5.25 or newer"):
            vectorizer(folder, backend="onnx").fit(TEXTS)
        return
    assert_graph_equals_torch(folder, "onnx", ("cls", "mean", "max"), "mean")
    torch_mean = encode(folder, pooling="mean")
    int8 = encode(folder, pooling="mean", backend="onnx", quantize=True)
    cosine = np.sum(int8 * torch_mean, 1) / (
        np.linalg.norm(int8, axis=1) * np.linalg.norm(torch_mean, axis=1)
    )
    assert cosine.min() >= 0.9, cosine  # the bound an int8 graph is made under
    if name in OWN_FORWARD:
        return
    # written in the pattern ONNX Runtime fuses: one Attention node per layer
    # (transformers' own forward defeats the fusion: none; the fused graph
    # takes 9% less CPU time at 256 tokens)
    onnx = pytest.importorskip("onnx")
    (graph,) = tmp_path.rglob("model.onnx")
    ops = [node.op_type for node in onnx.load(graph).graph.node]
    config = json.loads((folder / "config.json").read_text())
    assert ops.count("Attention") == config["num_hidden_layers"], sorted(set(ops))
    assert "Softmax" not in ops


def test_a_roberta_tokenizer_without_a_limit_truncates_long_texts(tmp_path):
    # max_position_embeddings counts RoBERTa's two offset positions (66 here):
    # the real limit is 64 tokens, and 1,000 tokens must not crash in torch.
    folder = build_family("roberta", tmp_path / "r", declare_limit=False)
    long_text = " ".join(["film"] * 1000)
    assert json.loads((folder / "tokenizer_config.json").read_text()).get(
        "model_max_length"
    ) in (None, int(1e30))

    with pytest.warns(skbert.TruncationWarning, match="max_length=64"):
        found = vectorizer(folder, pooling="mean").fit_transform([long_text, "a"])

    expected = Oracle(folder).vectors([long_text, "a"], "mean")
    np.testing.assert_allclose(found, expected, atol=1e-5, rtol=0)


def test_a_decoder_only_model_is_refused(family_dirs):
    with pytest.raises(ValueError, match="decoder-only"):
        vectorizer(family_dirs["gpt2", False], pooling="mean").fit(TEXTS)


def test_an_encoder_decoder_runs_its_encoder_on_onnx_runtime(
    family_dirs, tmp_path, monkeypatch
):
    """T5's encoder, exported through its own forward: float32 equals torch,
    int8 points the same way."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("SKBERT_HOME", str(tmp_path))
    folder = family_dirs["t5", False]
    if OLD_TRANSFORMERS:
        with pytest.raises(ValueError, match="transformers 5.25 or newer"):
            vectorizer(folder, pooling="mean", backend="onnx").fit(TEXTS)
        return
    texts = [*TEXTS, " ".join(["film"] * 70)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skbert.TruncationWarning)
        torch_mean = vectorizer(folder, pooling="mean").fit(TEXTS).transform(texts)
        on_onnx = vectorizer(folder, pooling="mean", backend="onnx", batch_size=2)
        np.testing.assert_allclose(
            on_onnx.fit(TEXTS).transform(texts), torch_mean, atol=1e-4, rtol=0
        )
        int8 = vectorizer(folder, pooling="mean", backend="onnx", quantize=True)
        int8 = int8.fit(TEXTS).transform(texts)
    cosine = np.sum(int8 * torch_mean, 1) / (
        np.linalg.norm(int8, axis=1) * np.linalg.norm(torch_mean, axis=1)
    )
    assert cosine.min() >= 0.9, cosine


def test_an_encoder_decoder_uses_its_encoder_with_mean_pooling(family_dirs):
    folder = family_dirs["t5", False]
    np.testing.assert_allclose(
        encode(folder, pooling="mean"),
        Oracle(folder, "T5EncoderModel").vectors(TEXTS, "mean"),
        atol=1e-5,
        rtol=0,
    )
    with pytest.raises(ValueError, match="no special token before the text"):
        vectorizer(folder, pooling="cls").fit(TEXTS)


FRESH = """
import json, warnings
import numpy as np
from skbert import BertCLSVectorizer
out = {}
for name, folder in CONFIG["folders"].items():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vectors = BertCLSVectorizer(model_name_or_path=folder, device="cpu",
                                    pooling="mean", cache=None).fit_transform(
            CONFIG["texts"])
    out[name] = vectors.tolist()
print(json.dumps(out))
"""


def test_vectors_are_the_same_in_a_fresh_process_and_no_load_report_shows(
    family_dirs, tmp_path
):
    folders = {
        f"{name}{'-mlm' if mlm else ''}": str(folder)
        for (name, mlm), folder in family_dirs.items()
        if name in ENCODERS
    }
    config = {"folders": folders, "texts": TEXTS}
    child = start_python(f"CONFIG = {config!r}\n" + FRESH, cwd=tmp_path)
    stdout, stderr = child.communicate(timeout=600)
    assert child.returncode == 0, stderr
    seen = json.loads(stdout.strip().splitlines()[-1])
    for name, folder in folders.items():
        np.testing.assert_allclose(
            seen[name], encode(folder, pooling="mean"), atol=1e-6, rtol=0
        )
    for noise in ("LOAD REPORT", "newly initialized", "Loading weights", "MISSING"):
        assert noise not in stderr, stderr[-2000:]


@pytest.mark.parametrize("name", ["roberta", "bert", "distilbert"])
def test_info_says_the_family_and_the_pooler_status_with_its_reason(family_dirs, name):
    from skbert._cli.info import describe

    info = describe(str(family_dirs[name, False]))
    assert info["model_type"] == name
    expected = {"roberta": "untrained", "bert": "trained", "distilbert": "absent"}
    assert info["pooler"]["status"] == expected[name]
    assert info["pooler"]["reason"]
    assert ("pooler" in info["poolings"]) == (name == "bert")
