"""backend="openvino": skbert's checked ONNX export compiled by OpenVINO.

Expected vectors come from transformers' own BertModel run on each text alone
(``tiny_oracle``); float32 must match it as the ONNX Runtime backend does,
bfloat16 and int8 (``quantize=True``) by cosine. That int8 is int8 is read in
the quantized model on disk with OpenVINO's own reader: its activations pass
through ``FakeQuantize`` nodes (calibrated, static quantization).
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import POOLINGS, vectorizer

import skbert

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SKBERT_HOME", str(tmp_path / "home"))
    skbert.clear_model_cache()
    yield tmp_path / "home"
    skbert.clear_model_cache()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("pooling", POOLINGS)
def test_float32_matches_transformers(
    tiny_model_dir, tiny_oracle, texts, home, pooling
):
    # OpenVINO's own default on a CPU with bfloat16 arithmetic is bfloat16; the
    # float32 backend must not be left to it.
    found = vectorizer(tiny_model_dir, pooling=pooling, backend="openvino")
    found = found.fit_transform(texts)
    assert found.dtype == np.float32
    np.testing.assert_allclose(
        found, tiny_oracle.vectors(texts, pooling), rtol=0, atol=1e-4
    )


def test_bfloat16_points_where_float32_does(tiny_model_dir, tiny_oracle, texts, home):
    found = vectorizer(
        tiny_model_dir, pooling="mean", backend="openvino", dtype="bfloat16"
    ).fit_transform(texts)
    assert cosine(found, tiny_oracle.vectors(texts, "mean")).min() >= 0.999


def test_openvino_vectors_are_not_served_to_torch(tiny_model_dir, texts, home):
    vectorizer(
        tiny_model_dir, backend="openvino", dtype="bfloat16", cache="auto"
    ).fit_transform(texts)
    from_cache = vectorizer(tiny_model_dir, cache="auto").fit_transform(texts)
    np.testing.assert_array_equal(
        from_cache, vectorizer(tiny_model_dir).fit_transform(texts)
    )


def test_a_pickle_runs_openvino_again(tiny_model_dir, tiny_oracle, texts, home):
    fitted = vectorizer(tiny_model_dir, pooling="mean", backend="openvino").fit(texts)
    skbert.clear_model_cache()
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(
        again.transform(texts), tiny_oracle.vectors(texts, "mean"), rtol=0, atol=1e-4
    )


@pytest.mark.parametrize(
    "params, message",
    [
        ({"layers": 1}, "backend='openvino' computes the last layer only"),
        ({"dtype": "float16"}, "float32 or bfloat16"),
        ({"device": "cuda"}, "backend='openvino' runs on the CPU"),
    ],
)
def test_unsupported_options_are_refused(tiny_model_dir, home, params, message):
    with pytest.raises(ValueError, match=message):
        vectorizer(tiny_model_dir, backend="openvino", **params).fit(["a"])


def test_without_openvino_the_error_says_what_to_install(
    tiny_model_dir, home, monkeypatch
):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install 'skbert\[openvino\]'"):
        vectorizer(tiny_model_dir, backend="openvino").fit(["a"])


def test_a_compilation_that_differs_from_torch_is_refused(
    tiny_model_dir, home, monkeypatch
):
    import skbert._encoding.openvino as _openvino

    monkeypatch.setattr(_openvino, "BF16_MIN_COSINE", 1.01)  # nothing passes
    with pytest.raises(RuntimeError, match="OpenVINO's bf16 compilation"):
        vectorizer(tiny_model_dir, backend="openvino", dtype="bfloat16").fit(["a"])


def test_what_openvino_cannot_compile_is_refused_naming_it(
    tiny_model_dir, home, monkeypatch
):
    # Seen with transformers 5.4.0's DeBERTa-v2 export: an If node of dynamic rank.
    import skbert._encoding.openvino as _openvino

    def cannot(*args, **kwargs):
        raise RuntimeError(
            "Exception from src/inference/src/cpp/core.cpp:117:\n"
            "Unexpected: CPU plug-in doesn't support If operation with dynamic rank."
        )

    monkeypatch.setattr(_openvino, "_compile", cannot)
    with pytest.raises(RuntimeError, match="OpenVINO cannot compile") as raised:
        vectorizer(tiny_model_dir, backend="openvino").fit(["a"])
    assert "If operation with dynamic rank" in str(raised.value)
    assert "backend='onnx'" in str(raised.value)


def test_openvino_compiles_the_export_before_onnx_runtimes_fusions(
    tiny_model_dir, home, monkeypatch
):
    # ONNX Runtime's fused operators (com.microsoft Attention with one
    # query/key/value product, SkipLayerNormalization, ...) reach OpenVINO
    # decomposed into a slower graph (a reference-kernel Split per layer):
    # OpenVINO compiles the plain export, checked against torch like the other.
    import onnx

    import skbert._encoding.openvino as _openvino

    compiled = []
    real = _openvino._compile

    def compile_and_note(openvino, graph, config):
        compiled.append(Path(graph))
        return real(openvino, graph, config)

    monkeypatch.setattr(_openvino, "_compile", compile_and_note)
    vectorizer(tiny_model_dir, backend="openvino").fit(["a"])
    (graph,) = compiled
    domains = {node.domain for node in onnx.load(str(graph)).graph.node}
    assert domains <= {"", "ai.onnx"}, domains
    # the ONNX Runtime backend still runs its fused graph
    vectorizer(tiny_model_dir, backend="onnx").fit(["a"])
    fused = {
        node.domain
        for path in home.rglob("model.onnx")
        for node in onnx.load(str(path)).graph.node
    }
    assert "com.microsoft" in fused


def test_float32_needs_no_onnx_runtime(
    tiny_model_dir, tiny_oracle, texts, home, monkeypatch
):
    # the plain export is torch's; nothing of ONNX Runtime makes or runs it
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    found = vectorizer(tiny_model_dir, pooling="mean", backend="openvino")
    np.testing.assert_allclose(
        found.fit_transform(texts), tiny_oracle.vectors(texts, "mean"), atol=1e-4
    )


def quantized_models(home: Path) -> list[Path]:
    """The int8 OpenVINO models written under ``home``."""
    return sorted(home.rglob("openvino-int8*.xml"))


def fake_quantize_nodes(model: Path) -> int:
    import openvino

    ops = openvino.Core().read_model(str(model)).get_ops()
    return sum(op.get_type_name() == "FakeQuantize" for op in ops)


@pytest.mark.slow  # NNCF calibrates in a child process
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_int8_points_where_float32_does(
    tiny_model_dir, tiny_oracle, texts, home, dtype
):
    pytest.importorskip("nncf")
    found = vectorizer(
        tiny_model_dir, pooling="mean", backend="openvino", quantize=True, dtype=dtype
    ).fit_transform(texts)
    expected = tiny_oracle.vectors(texts, "mean")
    assert found.dtype == np.float32
    assert cosine(found, expected).min() >= 0.9  # INT8_MIN_COSINE, as ONNX's int8
    assert np.abs(found - expected).max() > 1e-4  # not the float32 graph
    (model,) = quantized_models(home)
    # weights and activations of every matrix product of the 2 layers: static
    assert fake_quantize_nodes(model) >= 2 * 6


@pytest.mark.slow  # NNCF calibrates in a child process
def test_int8_is_made_once_quietly_and_reused(tiny_model_dir, texts, home, capfd):
    pytest.importorskip("nncf")
    first = vectorizer(tiny_model_dir, backend="openvino", quantize=True).fit(texts)
    vectors = first.transform(texts)
    printed = capfd.readouterr()
    assert printed.out == "" and "Statistics" not in printed.err, printed
    (model,) = quantized_models(home)
    written = os.stat(model).st_mtime_ns
    skbert.clear_model_cache()
    again = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(again.transform(texts), vectors)
    assert os.stat(model).st_mtime_ns == written  # read, not made again
    assert quantized_models(home) == [model]


@pytest.mark.slow  # NNCF calibrates in a child process
def test_int8_vectors_are_not_served_to_float32(
    tiny_model_dir, tiny_oracle, texts, home
):
    pytest.importorskip("nncf")
    vectorizer(
        tiny_model_dir, pooling="mean", backend="openvino", quantize=True, cache="auto"
    ).fit_transform(texts)
    float32 = vectorizer(
        tiny_model_dir, pooling="mean", backend="openvino", cache="auto"
    ).fit_transform(texts)
    np.testing.assert_allclose(
        float32, tiny_oracle.vectors(texts, "mean"), rtol=0, atol=1e-4
    )


def test_without_nncf_int8_says_what_to_install(tiny_model_dir, home, monkeypatch):
    monkeypatch.setitem(sys.modules, "nncf", None)  # not installed
    with pytest.raises(ImportError, match=r"pip install 'skbert\[openvino\]'"):
        vectorizer(tiny_model_dir, backend="openvino", quantize=True).fit(["a"])


@pytest.mark.slow  # NNCF calibrates in a child process
def test_an_int8_model_that_differs_from_torch_is_refused_and_removed(
    tiny_model_dir, home, monkeypatch
):
    pytest.importorskip("nncf")
    import skbert._encoding.openvino as _openvino

    monkeypatch.setattr(_openvino, "INT8_MIN_COSINE", 1.01)  # nothing passes
    with pytest.raises(RuntimeError, match="OpenVINO's int8 quantization"):
        vectorizer(tiny_model_dir, backend="openvino", quantize=True).fit(["a"])
    assert quantized_models(home) == []  # made again next time, not served


def test_nncf_runs_with_its_telemetry_declined(tiny_model_dir, home, monkeypatch):
    # openvino-telemetry, which NNCF reports usage through, declines where
    # CI=true (opt_in_checker._run_in_ci) without a consent file being written
    pytest.importorskip("nncf")
    import skbert._encoding.openvino_int8 as _int8

    seen = {}

    def run(command, **kwargs):
        seen.update(kwargs)
        raise KeyboardInterrupt  # stop before NNCF starts

    monkeypatch.setattr(_int8.subprocess, "run", run)
    with pytest.raises(KeyboardInterrupt):
        vectorizer(tiny_model_dir, backend="openvino", quantize=True).fit(["a"])
    assert seen["env"]["CI"] == "true"
    assert quantized_models(home) == []  # nothing half-written
