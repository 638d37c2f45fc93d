"""ONNX Runtime backend: export once per weights fingerprint, fuse, quantize.

The checkpoint as loaded (float32, CPU) is exported to ONNX with a wrapper
that computes BERT's additive attention mask itself (so that the graph has no
shape constants and ONNX Runtime recognises the attention pattern), fused with
``onnxruntime.transformers.optimizer`` (EmbedLayerNormalization, Attention,
SkipLayerNormalization, BiasGelu) and, with ``quantize=True``, quantized to int8
weights per output channel. The files are cached on disk under
``$SKBERT_HOME/onnx/<fingerprint>/`` (default ``~/.cache/skbert``), written
atomically under a file lock, and the float32 graph is checked against torch
before first use.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from ._filelock import file_lock

if TYPE_CHECKING:
    from ._loading import LoadedModel

__all__ = ["load_onnx", "onnx_home"]

#: Bumped when the export recipe changes (older exports are then ignored).
_EXPORT_VERSION = "1"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: Largest difference to torch accepted for the float32 graph.
TOLERANCE = 1e-4
_PROBE_TEXTS = [
    "A quick check that the exported graph matches the model.",
    "short",
    "",
]


def onnx_home() -> Path:
    """Where exported graphs are cached (``$SKBERT_HOME/onnx``)."""
    home = os.environ.get("SKBERT_HOME") or Path("~/.cache/skbert").expanduser()
    return Path(home) / "onnx"


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ImportError(
            "backend='onnx' needs ONNX Runtime: pip install \"skbert[onnx]\" "
            "(onnxruntime, onnx, onnxscript)."
        ) from exc
    return onnxruntime


def _export_module(bert: Any) -> Any:
    """BERT's forward written for export: explicit additive mask, plain layers."""
    import torch

    class ExportedBert(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            mask = attention_mask[:, None, None, :].to(hidden.dtype)
            additive = (1.0 - mask) * -10000.0
            for layer in bert.encoder.layer:
                hidden = layer(hidden, additive)
                if isinstance(hidden, tuple):
                    hidden = hidden[0]
            if bert.pooler is None:
                return (hidden,)
            return hidden, bert.pooler(hidden)

    return ExportedBert()


def _check_architecture(model: Any) -> None:
    if not all(hasattr(model, name) for name in ("embeddings", "encoder", "pooler")):
        raise ValueError(
            f"backend='onnx' supports BERT-architecture encoders; "
            f"{type(model).__name__} is not one. Use backend='torch'."
        )


def _export(loaded: LoadedModel, target: Path) -> None:
    """Export and fuse the float32 graph to ``target`` (atomically)."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model

    model = copy.deepcopy(loaded.model).to("cpu", torch.float32).eval()
    _check_architecture(model)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # the pattern ORT fuses
    else:
        model.config._attn_implementation = "eager"
    example = loaded.tokenizer(["an example", "a longer example text"], padding=True)
    args = tuple(torch.tensor(example[name]) for name in _INPUTS)
    outputs = ["last_hidden_state"] + (["pooler_output"] if loaded.has_pooler else [])
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, outputs[0])}
    if loaded.has_pooler:
        axes["pooler_output"] = {0: "batch"}
    raw = target.with_name(target.name + ".raw.tmp")
    fused = target.with_name(target.name + ".tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _export_module(model),
                args,
                str(raw),
                input_names=list(_INPUTS),
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        config = loaded.model.config
        optimized = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        )
        optimized.save_model_to_file(str(fused))
        os.replace(fused, target)
    finally:
        raw.unlink(missing_ok=True)
        fused.unlink(missing_ok=True)


def _quantize(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_name(target.name + ".tmp")
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer advises pre-processing via root
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(source),
                str(partial),
                weight_type=QuantType.QInt8,
                per_channel=True,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        os.replace(partial, target)
    finally:
        root.setLevel(level)
        partial.unlink(missing_ok=True)


class OnnxModel:
    """An ONNX Runtime session called like a transformers model."""

    def __init__(self, session: Any, has_pooler: bool) -> None:
        self.session = session
        self.has_pooler = has_pooler
        self.input_names = {item.name for item in session.get_inputs()}

    def __call__(self, *, input_ids, attention_mask, token_type_ids=None, **_: Any):
        import torch

        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        feeds = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "token_type_ids": token_type_ids,
        }
        feeds = {
            name: tensor.cpu().numpy().astype(np.int64)
            for name, tensor in feeds.items()
            if name in self.input_names
        }
        outputs = self.session.run(None, feeds)
        return SimpleNamespace(
            last_hidden_state=torch.from_numpy(outputs[0]),
            pooler_output=torch.from_numpy(outputs[1]) if self.has_pooler else None,
            hidden_states=None,
        )


def _session(path: Path) -> Any:
    import torch

    ort = _import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _verify(onnx_model: OnnxModel, loaded: LoadedModel) -> None:
    """Refuse a float32 graph that does not reproduce the torch model."""
    import torch

    encoded = loaded.tokenizer(_PROBE_TEXTS, padding=True, return_tensors="pt")
    batch = {name: encoded[name] for name in _INPUTS if name in encoded}
    with torch.inference_mode():
        expected = loaded.model(**{k: v.to(loaded.device) for k, v in batch.items()})
    found = onnx_model(**batch)
    mask = batch["attention_mask"].bool()
    diff = (
        (found.last_hidden_state - expected.last_hidden_state.float().cpu())
        .abs()[mask]
        .max()
    )
    if loaded.has_pooler:
        pooled = (found.pooler_output - expected.pooler_output.float().cpu()).abs()
        diff = max(diff, pooled.max())
    if float(diff) > TOLERANCE:
        raise RuntimeError(
            f"The ONNX export differs from the torch model by {float(diff):.2e} "
            f"(> {TOLERANCE}); refusing to use it. Use backend='torch'."
        )


def load_onnx(loaded: LoadedModel, *, quantize: bool) -> LoadedModel:
    """The ONNX Runtime twin of ``loaded`` (a float32 CPU torch model)."""
    import torch

    _import_onnxruntime()
    import onnxruntime

    folder = onnx_home() / loaded.fingerprint.replace("sha256:", "")[:32]
    tag = f"v{_EXPORT_VERSION}-ort{onnxruntime.__version__}"
    fused = folder / f"model-{tag}.onnx"
    int8 = folder / f"model-{tag}-int8.onnx"
    with file_lock(folder / "export.lock"):
        if not fused.exists():
            _export(loaded, fused)
            if quantize:  # int8 weights only from a float32 graph that was checked
                _verify(OnnxModel(_session(fused), loaded.has_pooler), loaded)
        if quantize and not int8.exists():
            _quantize(fused, int8)
    model = OnnxModel(_session(int8 if quantize else fused), loaded.has_pooler)
    if not quantize:  # every load: a stale or damaged file is refused too
        _verify(model, loaded)
    return dataclasses.replace(
        loaded,
        model=model,
        device=torch.device("cpu"),
        dtype=torch.float32,
        float32_state=None,
        backend="onnx-int8" if quantize else "onnx",
    )
