"""The option vocabularies and defaults: one home for every name a user types.

The estimator's parameter constraints, its docstring, the command line and
the docs all read these tuples, so a pooling (or backend, or dtype) is added
in one place. Dependency-free: ``skbert --help`` imports it without
scikit-learn or torch.
"""

from __future__ import annotations

__all__ = [
    "BACKENDS",
    "CACHED_POOLINGS",
    "CHUNK_COMBINES",
    "AUTO_BATCH_SIZES",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_MAX_BATCH_TOKENS",
    "DTYPES",
    "FINE_TUNE_OBJECTIVES",
    "LONG_TEXTS",
    "PERSIST_OPTIONS",
    "POOLINGS",
    "RUNNERS",
    "TUNING_DEFAULTS",
    "VECTOR_MODES",
    "batch_size_for",
    "on_onnx_runtime",
    "on_openvino",
    "runner",
    "runs_exported_graph",
]

#: Every ``pooling`` value, in the order the docs and the CLI list them.
#: ``"auto"`` is the checkpoint's own recipe (a sentence-transformers folder's).
POOLINGS = ("cls", "pooler", "mean", "max", "auto")
#: Every way a vector is pooled, as a recipe's modes name them: skbert's
#: poolings and those of sentence-transformers folders.
VECTOR_MODES = (
    "cls",
    "pooler",
    "mean",
    "max",
    "mean_sqrt_len",
    "weightedmean",
    "lasttoken",
)
#: Order of the poolings stored together in one embedding-cache entry.
CACHED_POOLINGS = ("cls", "mean", "max", "pooler")
#: ``long_texts`` values: what happens to texts longer than ``max_length``.
LONG_TEXTS = ("truncate", "head_tail", "chunk")
#: ``chunk_combine`` values: how the windows of a long text are combined.
CHUNK_COMBINES = ("mean", "max")
#: ``dtype`` values; ``"auto"`` is bfloat16 (else float16) on CUDA, bfloat16 on a
#: CPU with bfloat16 arithmetic, else float32.
DTYPES = ("float32", "float16", "bfloat16", "auto")
#: ``backend`` values.
BACKENDS = ("torch", "onnx", "openvino")
#: What runs a loaded model (its ``backend`` field, part of the cache keys and
#: the version stamps): a ``backend``; ONNX Runtime with int8 weights
#: (activations quantized on the fly); OpenVINO with int8 weights and
#: calibrated int8 activations.
RUNNERS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-int8")


def runner(backend: str, quantize: bool = False) -> str:
    """The :data:`RUNNERS` name of ``backend`` (``quantize``: int8)."""
    name = f"{backend}-int8" if backend != "torch" and quantize else backend
    if name not in RUNNERS:
        raise ValueError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    return name


def on_onnx_runtime(name: str) -> bool:
    """Whether the :data:`RUNNERS` name ``name`` runs on ONNX Runtime."""
    return name in ("onnx", "onnx-int8")


def on_openvino(name: str) -> bool:
    """Whether the :data:`RUNNERS` name ``name`` runs on OpenVINO."""
    return name in ("openvino", "openvino-int8")


def runs_exported_graph(name: str) -> bool:
    """Whether the :data:`RUNNERS` name ``name`` runs skbert's ONNX export (fused
    by ONNX Runtime's optimizer for ONNX Runtime, as torch wrote it for
    OpenVINO) rather than the torch model."""
    return on_onnx_runtime(name) or on_openvino(name)


#: ``persist`` values: what a pickle of a fitted vectorizer holds.
PERSIST_OPTIONS = ("weights", "reference")
#: ``fine_tune`` values: how ``fit(X, y)`` adapts the encoder to the labels
#: (``None``, the default, learns nothing). ``"classification"``: cross-entropy
#: through a temporary linear head on the pooled vector; ``"contrastive"``:
#: SetFit's recipe, cosine similarity of same-label / different-label pairs.
FINE_TUNE_OBJECTIVES = ("classification", "contrastive")
#: Defaults of the parameters that only fine-tuning reads, and the objective
#: that reads each (``None``: every objective).
TUNING_DEFAULTS = {
    "tune_epochs": (1, None),
    "tune_learning_rate": (5e-5, None),
    "tune_batch_size": (16, None),
    "tune_warmup": (0.1, None),
    "tune_layers": (None, None),
    "tune_pairs": (20, "contrastive"),
    "tune_max_steps": (None, None),
    "tune_max_length": (None, None),
}
#: Texts per forward pass: ``"auto"`` is the fastest measured for the device.
DEFAULT_BATCH_SIZE = "auto"
#: What ``batch_size="auto"`` means on each kind of device. On a CPU, 32 keeps
#: a batch's activations in cache (docs/performance.md: 1.15x the speed of 128
#: on 2 Zen 5 cores, 1.02x to 1.08x on Zen 4); GPUs want large batches
#: (128).
AUTO_BATCH_SIZES = {"cpu": 32, "cuda": 128, "mps": 128}


def batch_size_for(batch_size: int | str, device_type: str) -> int:
    """The texts per forward pass that ``batch_size`` means on ``device_type``."""
    if batch_size == "auto":
        return AUTO_BATCH_SIZES.get(device_type, AUTO_BATCH_SIZES["cuda"])
    return int(batch_size)


#: Padded tokens per forward pass (measured: see docs/performance.md).
DEFAULT_MAX_BATCH_TOKENS = 16384
