"""How skbert opens an ONNX Runtime session, and which fusions it keeps out.

ONNX Runtime fuses a BERT graph's residual ``Add`` and ``LayerNormalization``
into one ``SkipLayerNormalization`` node, and a bias ``Add`` before ``Gelu``
into ``BiasGelu``, both when ``onnxruntime.transformers`` optimizes a graph and
again whenever a session loads one. On the CPU, ONNX Runtime 1.32's kernels for
those two fused nodes are slower than the plain operators they replace (on the
project's 2-core AMD EPYC machine, for a ``(32, 28, 384)`` input:
``SkipLayerNormalization`` 1.57 ms against 0.23 ms for ``Add`` +
``LayerNormalization``; ``BiasGelu`` 1.02 ms against 0.76 ms), so with them an
all-MiniLM-L6-v2 forward pass takes 1.17 times the CPU time in float32 and 1.31
times in int8 (``benchmarks/bench_onnx_options.py``). skbert's graphs are
exported without them (:data:`SLOW_FUSIONS`) and every session skbert opens, the
deployment runtime's included, is told not to make them (:func:`open_session`).
The fusions that pay (attention, embeddings, quantized matrix products) are
kept.

Dependency-free apart from the ``onnxruntime`` module the caller passes in, so
:mod:`skbert.runtime` uses it without torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SESSION_DISABLED_OPTIMIZERS", "SLOW_FUSIONS", "open_session"]

#: ``onnxruntime.transformers`` ``FusionOptions`` switched off at export.
SLOW_FUSIONS = (
    "enable_skip_layer_norm",
    "enable_bias_skip_layer_norm",
    "enable_bias_gelu",
)
#: The same fusions by the names of ONNX Runtime's session-level optimizers.
SESSION_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion", "BiasGeluFusion")


def open_session(
    onnxruntime: Any, model: str | bytes, *, threads: int | None = None
) -> Any:
    """An ``InferenceSession`` on the CPU for ``model`` (a path or the bytes of
    a graph): every graph optimization except :data:`SESSION_DISABLED_OPTIMIZERS`,
    ``threads`` intra-op threads (ONNX Runtime's default when None), errors
    only in its log.

    Examples
    --------
    >>> import onnx, onnxruntime
    >>> from onnx import TensorProto, helper
    >>> from skbert.runtime._ort import open_session
    >>> value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    >>> node = helper.make_node("Identity", ["x"], ["y"])
    >>> out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    >>> graph = helper.make_graph([node], "g", [value], [out])
    >>> model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    >>> session = open_session(onnxruntime, model.SerializeToString(), threads=1)
    >>> session.get_inputs()[0].name
    'x'
    """
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: this session's own logger
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    return onnxruntime.InferenceSession(
        model,
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(SESSION_DISABLED_OPTIMIZERS),
    )
