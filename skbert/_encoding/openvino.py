"""OpenVINO backend: skbert's checked ONNX export, compiled by OpenVINO for the CPU.

``backend="openvino"`` runs the float32 graph that ``backend="onnx"``
fuses, as exported, before ONNX Runtime's fusions (once per model identity,
beside the fused graph; :func:`skbert._encoding.onnx.plain_graph`): OpenVINO
makes its own fusions from the standard operators, while ONNX Runtime's fused
operators reach it decomposed into a slower graph (measured in
docs/performance.md). It is read and compiled by OpenVINO's CPU plugin with
an explicit inference precision: float32 (OpenVINO's own default
is bfloat16 on a CPU that has it, so it is never left to choose), or bfloat16
with ``dtype="bfloat16"`` (``"auto"`` on a CPU with bfloat16 arithmetic).
With ``quantize=True`` it compiles the calibrated int8 model made from that
export (:mod:`skbert._encoding.openvino_int8`), what stays in floating point
computed in ``dtype``. Every compiled model is checked against torch before
first use: float32 within the ONNX tolerance, bfloat16 by the cosine of the
mean-pooled states (:data:`BF16_MIN_COSINE`), int8 by that cosine too
(:data:`INT8_MIN_COSINE`, ONNX Runtime's int8 bound). The compiled model
lives in this process only.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from .._core.options import runner
from .onnx import INT8_MIN_COSINE, GraphModel, plain_graph, verify
from .openvino_int8 import int8_model, remove

if TYPE_CHECKING:
    import torch

    from .._model.checkpoint import LoadedModel

__all__ = ["BF16_MIN_COSINE", "INT8_MIN_COSINE", "OpenVinoModel", "load_openvino"]

#: Smallest cosine to torch's float32 mean-pooled states accepted for the
#: bfloat16 model (the bound ``dtype="auto"`` keeps on the torch path).
BF16_MIN_COSINE = 0.999


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise ImportError(
            "backend='openvino' needs OpenVINO: pip install 'skbert[openvino]' "
            "(or pip install openvino), or use backend='onnx' or 'torch'."
        ) from exc
    return openvino


class OpenVinoModel(GraphModel):
    """An OpenVINO compiled model called like a transformers model.

    One inference request, used by one thread at a time (the registry shares
    a loaded model between the clones and threads of a process).
    """

    def __init__(self, compiled: Any, has_pooler: bool) -> None:
        names = {port.get_any_name() for port in compiled.inputs}
        super().__init__(names, has_pooler)
        self.compiled = compiled
        self._outputs = list(compiled.outputs)
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            result = self._request.infer(feeds)
            # copies: the request reuses its output buffers on the next call
            return [np.array(result[port], dtype=np.float32) for port in self._outputs]


def _precision(dtype: torch.dtype) -> str:
    import torch

    return "bf16" if dtype == torch.bfloat16 else "f32"


def _compile(openvino: Any, graph: Any, config: dict[str, Any]) -> Any:
    """``graph`` (an ONNX file) read and compiled for the CPU with ``config``."""
    core = openvino.Core()
    return core.compile_model(core.read_model(str(graph)), "CPU", config)


def load_openvino(
    loaded: LoadedModel, *, dtype: torch.dtype, quantize: bool = False
) -> LoadedModel:
    """The OpenVINO twin of ``loaded`` (a float32 CPU torch model), computing
    in ``dtype`` (float32 or bfloat16); ``quantize``: its calibrated int8
    model, computing what stays in floating point in ``dtype``."""
    import torch

    openvino = _import_openvino()
    graph = int8_model(loaded) if quantize else plain_graph(loaded)
    precision = _precision(dtype)
    config = {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        "PERFORMANCE_HINT": "LATENCY",
    }
    try:
        compiled = _compile(openvino, graph, config)
    except RuntimeError as exc:  # OpenVINO reports what it cannot run this way
        text = str(exc).strip()  # OpenVINO's last line names the cause
        reason = text.splitlines()[-1] if text else type(exc).__name__
        raise RuntimeError(
            f"OpenVINO cannot compile the ONNX export of this {loaded.info.model_type} "
            f"checkpoint ({reason}). Use backend='onnx' (the same graph on ONNX "
            "Runtime) or backend='torch'."
        ) from exc
    model = OpenVinoModel(compiled, loaded.info.has_pooler)
    if quantize:
        _verify_int8(model, loaded, graph)
    else:
        verify(
            model,
            loaded,
            graph,
            min_cosine=BF16_MIN_COSINE if precision == "bf16" else None,
            what_differs=f"OpenVINO's {precision} compilation of the ONNX export",
        )
    return dataclasses.replace(
        loaded,
        model=model,
        device=torch.device("cpu"),
        dtype=dtype,
        float32_state=None,
        backend=runner("openvino", quantize),
    )


def _verify_int8(model: OpenVinoModel, loaded: LoadedModel, path: Any) -> None:
    """Check the int8 model against torch (every load: a damaged file is
    refused too); one that fails is removed, so that it is made again."""
    try:
        verify(
            model,
            loaded,
            path,
            min_cosine=INT8_MIN_COSINE,
            what_differs="OpenVINO's int8 quantization of the ONNX export",
            advice="It was removed from the cache. Use quantize=False, or "
            "backend='onnx' with quantize=True.",
        )
    except RuntimeError:
        remove(path)
        raise
