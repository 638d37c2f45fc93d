"""ONNX Runtime backend: export once per model identity, fuse, quantize.

The checkpoint as loaded (float32, CPU) is exported to ONNX: a BERT-layout
encoder with a wrapper that computes the additive attention mask itself (so
that the graph has no shape constants and ONNX Runtime recognises the
attention pattern), another family through its own forward; then fused with
``onnxruntime.transformers.optimizer`` (EmbedLayerNormalization, Attention,
SkipLayerNormalization, BiasGelu) and, with ``quantize=True``, quantized to int8
weights per output channel. The files are cached on disk under
``$SKBERT_HOME/onnx/<identity>/`` (default ``~/.cache/skbert``), one folder
per model identity (weights, tokenizer, configuration and recipe) and per
version of the export recipe, torch, transformers and ONNX Runtime, written
atomically under a file lock. The float32 graph is checked against torch on
every load, the int8 graph whenever it is made; the checks tokenize through
:class:`~skbert._core.tokenize.TextTokenizer`, like every other caller.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from .._core import versions as _versions
from .._core.filelock import file_lock
from .._core.options import runner
from .._model.families import BERT_LAYOUT_FAMILIES, onnx_refusal
from .._model.identity import canonical_digest
from .._model.quiet import quiet, quiet_warnings
from ..runtime._ort import SLOW_FUSIONS, open_session
from .batching import collate

if TYPE_CHECKING:
    from .._model.checkpoint import LoadedModel

__all__ = [
    "GraphModel",
    "exported_graph",
    "load_onnx",
    "onnx_home",
    "plain_graph",
    "verify",
]

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
#: Families normalized by RMS norm (no mean subtracted).
_RMS_NORM_FAMILIES = ("t5",)
#: The ONNX opset of every exported graph.
OPSET = 17
#: Largest difference to torch accepted for the float32 graph.
TOLERANCE = 1e-4
#: Smallest cosine to torch's mean-pooled states accepted for an int8 graph
#: (measured 0.95 and more; a damaged or foreign graph is far below).
INT8_MIN_COSINE = 0.9
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


def _export_module(model: Any, layers: tuple[int, ...] | None = None) -> Any:
    """The encoder's forward written for export, taking ``input_ids``,
    ``attention_mask`` and ``token_type_ids``.

    It returns the last hidden state, then the pooler output if the model
    has a pooler; with ``layers`` (indices into the hidden states, 0 = the
    embeddings), the states of those layers instead of the last one. A
    BERT-layout encoder is written layer by layer in the pattern ONNX
    Runtime fuses; another family runs its own forward.
    """
    if model.config.model_type in BERT_LAYOUT_FAMILIES:
        return _bert_layout_module(model, layers)
    return _own_forward_module(model, layers)


def _own_forward_module(model: Any, layers: tuple[int, ...] | None) -> Any:
    """The model's own forward (eager attention), with the outputs of
    :func:`_export_module`. Token types are passed only to a model that takes
    them."""
    import inspect

    import torch

    takes_types = "token_type_ids" in inspect.signature(model.forward).parameters

    class ExportedEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            extra = {"token_type_ids": token_type_ids} if takes_types else {}
            out = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                output_hidden_states=layers is not None,
                return_dict=True,
                **extra,
            )
            if layers is None:
                chosen = (out.last_hidden_state,)
            else:
                chosen = tuple(out.hidden_states[i] for i in layers)
            pooler = getattr(out, "pooler_output", None)
            return chosen if pooler is None else (*chosen, pooler)

    return ExportedEncoder()


def _bert_layout_module(bert: Any, layers: tuple[int, ...] | None) -> Any:
    """The forward of a BERT-layout encoder (BERT, the RoBERTa lineage,
    ELECTRA): explicit additive mask, plain layers."""
    import torch

    project = getattr(bert, "embeddings_project", None)  # ELECTRA
    pooler = getattr(bert, "pooler", None)
    run_layer = (
        _fusable_layer(bert.config)
        if all(_has_bert_layer_layout(layer) for layer in bert.encoder.layer)
        and getattr(bert.config, "position_embedding_type", "absolute") == "absolute"
        else _own_layer
    )

    class ExportedBert(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            if project is not None:
                hidden = project(hidden)
            mask = attention_mask[:, None, None, :].to(hidden.dtype)
            additive = (1.0 - mask) * -10000.0
            states = [hidden]
            for layer in bert.encoder.layer:
                hidden = run_layer(layer, hidden, additive)
                states.append(hidden)
            chosen = (hidden,) if layers is None else tuple(states[i] for i in layers)
            if pooler is None:
                return chosen
            return (*chosen, pooler(hidden))

    return ExportedBert()


def _own_layer(layer: Any, hidden: Any, additive: Any) -> Any:
    """A layer's own forward (the fallback for layouts not written below)."""
    hidden = layer(hidden, additive)
    return hidden[0] if isinstance(hidden, tuple) else hidden


#: Submodules of a BERT-layout layer, as the fusable forward reads them.
_LAYER_PARTS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "attention.output.LayerNorm",
    "intermediate.dense",
    "intermediate.intermediate_act_fn",
    "output.dense",
    "output.LayerNorm",
)


def _has_bert_layer_layout(layer: Any) -> bool:
    def found(path: str) -> bool:
        target = layer
        for name in path.split("."):
            target = getattr(target, name, None)
            if target is None:
                return False
        return True

    return all(found(path) for path in _LAYER_PARTS)


def _fusable_layer(config: Any) -> Callable[[Any, Any, Any], Any]:
    """A BERT-layout layer's forward in the operator pattern ONNX Runtime's
    optimizer fuses into one ``Attention`` node (separate query/key/value
    projections, heads split by ``view``/``permute``, scores divided by
    sqrt(head size), additive mask, softmax). It computes what the layer
    does in eval mode (no dropout); the float32 graph is checked against
    torch on every load."""
    import math

    import torch

    heads = int(config.num_attention_heads)
    head_size = int(config.hidden_size) // heads
    scale = math.sqrt(head_size)

    def split(x: Any) -> Any:
        return x.view(x.size()[:-1] + (heads, head_size)).permute(0, 2, 1, 3)

    def forward(layer: Any, hidden: Any, additive: Any) -> Any:
        attention = layer.attention.self
        query = split(attention.query(hidden))
        key = split(attention.key(hidden))
        value = split(attention.value(hidden))
        scores = torch.matmul(query, key.transpose(-1, -2)) / scale + additive
        context = torch.matmul(torch.softmax(scores, dim=-1), value)
        context = context.permute(0, 2, 1, 3).contiguous()
        context = context.view(context.size()[:-2] + (heads * head_size,))
        out = layer.attention.output
        hidden = out.LayerNorm(out.dense(context) + hidden)
        inner = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(hidden))
        return layer.output.LayerNorm(layer.output.dense(inner) + hidden)

    return forward


def _check_architecture(model: Any) -> None:
    refusal = onnx_refusal(model.config.model_type, type(model).__name__)
    if refusal is not None:
        raise ValueError(refusal)


def _export(loaded: LoadedModel, target: Path, *, fuse: bool = True) -> None:
    """Export the float32 encoder graph to ``target`` (atomically), fused
    for ONNX Runtime unless ``fuse`` is false."""
    outputs = {"last_hidden_state": {0: "batch", 1: "tokens"}}
    if loaded.info.has_pooler:
        outputs["pooler_output"] = {0: "batch"}
    export_graph(loaded, target, _export_module, outputs, fuse=fuse)


def export_graph(
    loaded: LoadedModel,
    target: Path,
    build: Callable[[Any], Any],
    outputs: dict[str, dict[int, str]],
    *,
    fuse: bool = True,
) -> None:
    """Export ``build(model)`` and fuse it to ``target`` (atomically).

    ``build`` receives a float32 CPU copy of the model (eager attention, the
    pattern ONNX Runtime fuses) and returns a module taking ``input_ids``,
    ``attention_mask`` and ``token_type_ids``; ``outputs`` maps the names of
    its outputs, in order, to their dynamic axes. ``fuse=False`` writes the
    export as torch made it, in standard ONNX operators only (what another
    engine than ONNX Runtime reads best).
    """
    import torch

    model = copy.deepcopy(loaded.model).to("cpu", torch.float32).eval()
    _check_architecture(model)
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # the pattern ORT fuses
    else:
        model.config._attn_implementation = "eager"
    example = _probe_batch(loaded, ["an example", "a longer example text"])
    args = tuple(example[name] for name in _INPUTS)
    axes = {name: {0: "batch", 1: "tokens"} for name in _INPUTS}
    raw = target.with_name(target.name + ".raw.tmp")
    fused = target.with_name(target.name + ".tmp")
    try:
        with quiet_warnings(), torch.no_grad():
            torch.onnx.export(
                build(model),
                args,
                str(raw),
                input_names=list(_INPUTS),
                output_names=list(outputs),
                dynamic_axes={**axes, **outputs},
                opset_version=OPSET,
                dynamo=False,
            )
        if not fuse:
            os.replace(raw, target)
            return
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        config = loaded.model.config
        fusions = FusionOptions("bert")
        for name in SLOW_FUSIONS:
            setattr(fusions, name, False)
        if config.model_type in _RMS_NORM_FAMILIES:
            # fused, an RMS norm is SimplifiedLayerNormalization, an operator of
            # ONNX Runtime's that the ONNX checker (and skl2onnx) refuse
            fusions.enable_layer_norm = False
        optimized = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            optimization_options=fusions,
        )
        optimized.save_model_to_file(str(fused))
        os.replace(fused, target)
    finally:
        raw.unlink(missing_ok=True)
        fused.unlink(missing_ok=True)


def _weight_products(path: Path) -> tuple[list[str], list[str]]:
    """The matrix products of the graph at ``path`` that shrink their input
    (a feed-forward block's down-projection) and those that widen it (its
    up-projection), by name; square ones (attention projections) in neither."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {tensor.name: tuple(tensor.dims) for tensor in graph.initializer}
    down, up = [], []
    for node in graph.node:
        weight = [shapes[name] for name in node.input if name in shapes]
        if node.op_type != "MatMul" or not weight or len(weight[0]) != 2:
            continue
        rows, columns = weight[0]
        if rows > columns:
            down.append(node.name)
        elif rows < columns:
            up.append(node.name)
    return down, up


def _make_int8(fused: Path, target: Path, loaded: LoadedModel) -> None:
    """Quantize ``fused`` to ``target``, keeping in float32 what int8 cannot
    carry for this model: every weight product first; if the int8 graph fails
    its check, all but the feed-forward down-projections (whose input, an
    activation with outlier features, loses most to per-tensor int8: MPNet's
    cosine to torch went from 0.82 to 0.96 on the probe texts); then the
    attention projections only. The first plan that passes is kept."""
    down, up = _weight_products(fused)
    failures = []
    for exclude in ([], down, down + up):
        _quantize(fused, target, exclude)
        try:
            verify(_onnx_model(target, loaded), loaded, target)
            return
        except RuntimeError as error:
            failures.append(error)
    target.unlink(missing_ok=True)
    raise failures[-1]


def _quantize(source: Path, target: Path, exclude: list[str] | None = None) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_name(target.name + ".tmp")
    try:
        # the quantizer advises pre-processing through the root logger
        with quiet(""), quiet_warnings():
            quantize_dynamic(
                str(source),
                str(partial),
                weight_type=QuantType.QInt8,
                per_channel=True,
                nodes_to_exclude=list(exclude or ()),
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


class GraphModel:
    """An exported graph, run by some engine, called like a transformers model."""

    def __init__(self, input_names: set[str], has_pooler: bool) -> None:
        self.input_names = input_names
        self.has_pooler = has_pooler

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs (last hidden state, then the pooler's) for ``feeds``."""
        raise NotImplementedError

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
        outputs = self.run(feeds)
        return SimpleNamespace(
            last_hidden_state=torch.from_numpy(outputs[0]),
            pooler_output=torch.from_numpy(outputs[1]) if self.has_pooler else None,
            hidden_states=None,
        )


class OnnxModel(GraphModel):
    """An ONNX Runtime session called like a transformers model."""

    def __init__(self, session: Any, has_pooler: bool) -> None:
        super().__init__({item.name for item in session.get_inputs()}, has_pooler)
        self.session = session

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feeds)


def _session(path: Path) -> Any:
    import torch

    return open_session(
        _import_onnxruntime(), str(path), threads=torch.get_num_threads()
    )


def _probe_batch(loaded: LoadedModel, texts: list[str]) -> dict[str, Any]:
    """``texts`` as one padded CPU batch, tokenized the way ``transform`` does."""
    import torch

    ids, _ = loaded.tokenizer.encode(texts, loaded.info.model_max_length)
    return collate(ids, loaded.tokenizer.pad_id, True, torch.device("cpu"))


def verify(
    onnx_model: GraphModel,
    loaded: LoadedModel,
    path: Path,
    *,
    min_cosine: float | None = None,
    what_differs: str = "The ONNX export",
    advice: str | None = None,
) -> None:
    """Refuse a graph that does not reproduce the torch model: float32 within
    :data:`TOLERANCE` of it, int8 (an approximation) pointing the same way;
    ``min_cosine``: any graph checked as an approximation with that bound;
    ``advice``: what the error tells the user to do (by default: torch, or
    delete the file to export it again)."""
    import torch

    batch = _probe_batch(loaded, _PROBE_TEXTS)
    with torch.inference_mode():
        expected = loaded.model(**{k: v.to(loaded.device) for k, v in batch.items()})
    found = onnx_model(**batch)
    mask = batch["attention_mask"].bool()
    pairs = [(found.last_hidden_state, expected.last_hidden_state.float().cpu())]
    if loaded.info.has_pooler:
        pairs.append((found.pooler_output, expected.pooler_output.float().cpu()))
    if min_cosine is None and path.name.endswith("int8.onnx"):
        min_cosine = INT8_MIN_COSINE
    if min_cosine is not None:
        weights = mask.unsqueeze(-1).float()
        mean = [(state * weights).sum(1) for state in pairs[0]]
        cosine = torch.nn.functional.cosine_similarity(*mean, dim=-1).min()
        ok, what = float(cosine) >= min_cosine, f"cosine {float(cosine):.4f}"
        bound = f"< {min_cosine}"
    else:
        diff = max(
            (a - b).abs()[mask].max() if a.dim() == 3 else (a - b).abs().max()
            for a, b in pairs
        )
        ok, what = float(diff) <= TOLERANCE, f"{float(diff):.2e}"  # NaN refused
        bound = f"> {TOLERANCE}"
    if not ok:
        advice = advice or (
            f"Use backend='torch', or delete {str(path)!r} to export it again."
        )
        raise RuntimeError(
            f"{what_differs} differs from the torch model ({what} {bound}); "
            f"refusing to use it. {advice}"
        )


def export_folder(loaded: LoadedModel) -> Path:
    """Where the graphs of ``loaded`` are cached: one folder per model identity
    and per version of the export recipe and of the libraries it runs on."""
    versions = _versions.installed_versions()
    key = {
        "identity": loaded.identity.digest,
        "export": _versions.ONNX_EXPORT_VERSION,
        **{name: versions[name] for name in _versions.relevant_packages("onnx")},
    }
    return onnx_home() / canonical_digest(key).removeprefix("sha256:")[:32]


def load_onnx(loaded: LoadedModel, *, quantize: bool) -> LoadedModel:
    """The ONNX Runtime twin of ``loaded`` (a float32 CPU torch model)."""
    import torch

    _import_onnxruntime()
    fused = exported_graph(loaded, quantize=quantize)
    int8 = fused.with_name("model-int8.onnx")
    path = int8 if quantize else fused
    model = _onnx_model(path, loaded)
    verify(model, loaded, path)  # every load: a damaged file is refused too
    return dataclasses.replace(
        loaded,
        model=model,
        device=torch.device("cpu"),
        dtype=torch.float32,
        float32_state=None,
        backend=runner("onnx", quantize),
    )


def exported_graph(loaded: LoadedModel, *, quantize: bool = False) -> Path:
    """The fused float32 graph of ``loaded`` (a float32 CPU torch model),
    exported now if it is not on disk yet; ``quantize``: its int8 twin too,
    made (and checked) beside it."""
    _import_onnxruntime()  # its optimizer fuses the graph
    folder = export_folder(loaded)
    fused = folder / "model.onnx"
    int8 = folder / "model-int8.onnx"
    with file_lock(folder / "export.lock"):
        if not fused.exists():
            _export(loaded, fused)
        if quantize and not int8.exists():
            # int8 weights only from a float32 graph that was checked, and the
            # int8 graph is checked too (loosely: int8 is an approximation)
            verify(_onnx_model(fused, loaded), loaded, fused)
            _make_int8(fused, int8, loaded)
    return fused


def plain_graph(loaded: LoadedModel) -> Path:
    """The float32 graph of ``loaded`` before ONNX Runtime's fusions
    (standard ONNX operators only; what OpenVINO compiles), exported now if
    it is not on disk yet, beside the fused graph. Its callers check it
    against torch, as the fused graph is checked."""
    folder = export_folder(loaded)
    plain = folder / "model-plain.onnx"
    with file_lock(folder / "export.lock"):
        if not plain.exists():
            _export(loaded, plain, fuse=False)
    return plain


def _onnx_model(path: Path, loaded: LoadedModel) -> OnnxModel:
    return OnnxModel(_session(path), loaded.info.has_pooler)
