"""The CPU fast paths: oneDNN linear layers for torch, and the ONNX Runtime
fusions skbert keeps out of its graphs and sessions.

Speed itself is measured by ``benchmarks/bench_throughput.py`` (figures in
docs/performance.md), never timed here; these tests check that the fast paths
are taken, compute what transformers and ``F.linear`` compute, and stay
inside the calling thread.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import vectorizer

import skbert._encoding.cpu_linear as cpu_linear

torch = pytest.importorskip("torch")
F = torch.nn.functional
CPU = torch.device("cpu")

needs_onednn = pytest.mark.skipif(
    not cpu_linear.onednn_available(), reason="oneDNN linear not usable here"
)


@pytest.fixture
def counted_calls(monkeypatch):
    """Replace the mode with one that also counts the products it sends to
    oneDNN, per thread: ``{thread ident: count}``."""
    if not cpu_linear.onednn_available():
        pytest.skip("oneDNN linear not usable here")
    calls: dict[int, int] = {}
    real = cpu_linear._mode_class()

    class Counting(real):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is F.linear and cpu_linear._suits(
                *cpu_linear._linear_args(args, kwargs or {})
            ):
                ident = threading.get_ident()
                calls[ident] = calls.get(ident, 0) + 1
            return super().__torch_function__(func, types, args, kwargs)

    monkeypatch.setattr(cpu_linear, "_mode_class", lambda: Counting)
    return calls


@needs_onednn
@pytest.mark.parametrize("shape", [(7, 24), (3, 5, 24), (2, 3, 4, 24)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_onednn_linear_computes_what_f_linear_computes(shape, with_bias, counted_calls):
    generator = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=generator)
    weight = torch.randn(40, 24, generator=generator)
    bias = torch.randn(40, generator=generator) if with_bias else None
    expected = x.double() @ weight.double().T
    if with_bias:
        expected = expected + bias.double()
    with torch.inference_mode(), cpu_linear.onednn_linear(CPU):
        positional = F.linear(x, weight, bias)
        by_name = F.linear(input=x, weight=weight, bias=bias)
        transposed = F.linear(x.transpose(0, -2), weight, bias)
        strided_weight = F.linear(x, torch.stack([weight, weight], 2)[:, :, 0], bias)
    for found in (positional, by_name, strided_weight):
        assert found.dtype == torch.float32 and found.shape == expected.shape
        np.testing.assert_allclose(found.numpy(), expected.numpy(), atol=1e-4)
    np.testing.assert_allclose(
        transposed.numpy(), expected.transpose(0, -2).numpy(), atol=1e-4
    )
    assert sum(counted_calls.values()) == 4  # all of them went to oneDNN


def _odd_biases() -> dict[str, object]:
    """Biases ``F.linear`` accepts (it broadcasts) that oneDNN would misread."""
    dense = torch.arange(80, dtype=torch.float32)
    return {
        "strided": dense[::2],
        "0-d": torch.tensor(1.5),
        "expanded": torch.tensor([1.5]).expand(40),
        "one value": torch.tensor([1.5]),
        "2-d": dense[:40].reshape(1, 40),
    }


@pytest.mark.parametrize("name", list(_odd_biases()))
def test_biases_onednn_would_misread_stay_with_f_linear(name, counted_calls):
    bias = _odd_biases()[name]
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(6, 24, generator=generator)
    weight = torch.randn(40, 24, generator=generator)
    expected = (x.double() @ weight.double().T + bias.double()).numpy()
    with torch.inference_mode(), cpu_linear.onednn_linear(CPU):
        found = F.linear(x, weight, bias)
        empty = F.linear(torch.ones(3, 0), torch.ones(5, 0))  # no input features
    np.testing.assert_allclose(found.numpy(), expected, atol=1e-4)
    assert torch.equal(empty, torch.zeros(3, 5))
    assert counted_calls == {}


def test_the_probe_and_the_mode_respect_the_callers_settings(counted_calls):
    # A float64 default dtype does not make the probe fail (and switch oneDNN
    # off for the process); under CPU autocast the caller's lower precision wins.
    cpu_linear.onednn_available.cache_clear()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert cpu_linear.onednn_available()
    finally:
        torch.set_default_dtype(previous)
    layer = torch.nn.Linear(16, 8).requires_grad_(False)
    x = torch.randn(4, 16)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = layer(x)
        with cpu_linear.onednn_linear(CPU):
            found = layer(x)
    assert found.dtype == expected.dtype == torch.bfloat16
    assert counted_calls == {}


def test_onednn_linear_leaves_other_precisions_and_training_alone(counted_calls):
    layer = torch.nn.Linear(16, 8)
    x = torch.randn(4, 16)
    with cpu_linear.onednn_linear(CPU):
        half = F.linear(x.bfloat16(), layer.weight.bfloat16(), layer.bias.bfloat16())
        trained = layer(x)
        trained.sum().backward()
    assert torch.equal(
        half, F.linear(x.bfloat16(), layer.weight.bfloat16(), layer.bias.bfloat16())
    )
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert counted_calls == {}  # neither went to oneDNN


@needs_onednn
def test_onednn_linear_is_for_the_calling_thread_only(counted_calls):
    x, weight = torch.randn(4, 8), torch.randn(3, 8)
    inside = threading.Event()
    done = threading.Event()
    other: list[int] = []

    def elsewhere() -> None:
        inside.wait(5)
        with torch.inference_mode():
            F.linear(x, weight)
        other.append(threading.get_ident())
        done.set()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    with torch.inference_mode(), cpu_linear.onednn_linear(CPU):
        F.linear(x, weight)
        inside.set()
        assert done.wait(5)
    thread.join()
    assert counted_calls == {threading.get_ident(): 1}, (counted_calls, other)


@needs_onednn
def test_transform_on_the_cpu_runs_its_linear_layers_in_onednn(
    tiny_model_dir, tiny_oracle, texts, counted_calls
):
    found = vectorizer(tiny_model_dir, pooling="mean").fit_transform(texts)
    np.testing.assert_allclose(
        found, tiny_oracle.vectors(texts, "mean"), atol=1e-5, rtol=0
    )
    assert sum(counted_calls.values()) > 0


def _optimized_ops(path, tmp_path, *, skbert_options: bool) -> list[str]:
    """The op types of ``path`` after ONNX Runtime's own session optimizations,
    with skbert's session options or with ONNX Runtime's defaults."""
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    from skbert.runtime._ort import open_session

    saved = tmp_path / f"optimized-{skbert_options}.onnx"

    class SavingOptimized:
        """onnxruntime, but every session also writes its optimized graph."""

        def __getattr__(self, name):
            return getattr(onnxruntime, name)

        def InferenceSession(self, model, options, **kwargs):  # noqa: N802
            options.optimized_model_filepath = str(saved)
            return onnxruntime.InferenceSession(model, options, **kwargs)

    if skbert_options:
        open_session(SavingOptimized(), str(path), threads=1)
    else:
        options = onnxruntime.SessionOptions()
        options.optimized_model_filepath = str(saved)
        onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    return [node.op_type for node in onnx.load(saved).graph.node]


@pytest.mark.parametrize("quantize", [False, True])
def test_onnx_graphs_and_sessions_keep_the_slow_fusions_out(
    tiny_model_dir, tiny_oracle, texts, tmp_path, monkeypatch, quantize
):
    # ONNX Runtime's CPU kernels for SkipLayerNormalization and BiasGelu are
    # slower than the Add, LayerNormalization and Gelu they fuse (see
    # skbert/runtime/_ort.py); the fusions that pay stay.
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    monkeypatch.setenv("SKBERT_HOME", str(tmp_path / "home"))
    found = vectorizer(
        tiny_model_dir, pooling="mean", backend="onnx", quantize=quantize
    ).fit_transform(texts)
    expected = tiny_oracle.vectors(texts, "mean")
    if quantize:
        cosine = (found * expected).sum(1) / (
            np.linalg.norm(found, axis=1) * np.linalg.norm(expected, axis=1)
        )
        assert cosine.min() > 0.9
    else:
        np.testing.assert_allclose(found, expected, atol=1e-4, rtol=0)

    (graph,) = (tmp_path / "home").rglob(
        "model-int8.onnx" if quantize else "model.onnx"
    )
    stored = [node.op_type for node in onnx.load(graph).graph.node]
    ours = _optimized_ops(graph, tmp_path, skbert_options=True)
    for ops in (stored, ours):
        assert "SkipLayerNormalization" not in ops and "BiasGelu" not in ops, ops
        assert "LayerNormalization" in ops
        assert any(op in ops for op in ("Attention", "QAttention")), ops
    # what ONNX Runtime's defaults would have done to the same graph
    assert "SkipLayerNormalization" in _optimized_ops(
        graph, tmp_path, skbert_options=False
    )
