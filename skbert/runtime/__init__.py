"""Run an exported skbert pipeline with ONNX Runtime alone: no torch, no
transformers, no scikit-learn.

[`export_onnx`][skbert.export_onnx] (or ``skbert export``) writes a fitted
[`BertCLSVectorizer`][skbert.BertCLSVectorizer], or a ``Pipeline`` that starts with one,
into one ONNX file that carries its tokenizer and a manifest. This module
loads such a file and offers ``predict``, ``predict_proba`` and
``transform`` on lists of strings. It imports only numpy, onnxruntime,
tokenizers, the standard library and skbert's own dependency-free modules, so
a deployment needs ``pip install numpy onnxruntime tokenizers`` and
``pip install --no-deps skbert`` (see the deployment page of the docs).

Texts go the way [`transform`][skbert.BertCLSVectorizer.transform] sends them: the
prompt and lower-casing of the model's recipe, the checkpoint's tokenizer
(``tokenizers`` with its ``tokenizer.json``) without special tokens, cut to
``max_length`` and framed by the checkpoint's special tokens, then
length-sorted batches under the same token budget, padded to their own
longest text; a [`TruncationWarning`][skbert.TruncationWarning] says which
texts were cut.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._core.artefact import ArtefactError, check_ids_known, read_artefact
from .._core.inputs import check_texts
from .._core.plan import CHUNK_SIZE, EncodingSpec, pad_rows, plan_batches, prepare
from .._core.report import EncodingReport, warn_about
from .._core.tokenize import TextTokenizer
from .._core.versions import (
    InconsistentVersionWarning,
    warn_about_changes,
)
from ._ort import open_session

__all__ = ["ArtefactError", "ExportedPipeline", "load"]

#: The packages whose versions decide what the runtime computes.
_RUNTIME_PACKAGES = ("skbert", "onnxruntime", "tokenizers")


def load(
    path: str | os.PathLike, *, threads: int | None = None, sha256: str | None = None
) -> ExportedPipeline:
    """Load an artefact written by [`export_onnx`][skbert.export_onnx].

    Parameters
    ----------
    path : str or os.PathLike
        The ``.onnx`` file.
    threads : int, default=None
        Threads ONNX Runtime uses for one batch; ``None`` lets it choose (one
        per physical core).
    sha256 : str, default=None
        The digest the artefact must have (``report.sha256`` of the export,
        ``"sha256:..."``). Every artefact is checked against the digest it
        carries, which finds damage and edits; pinning the digest from a
        trusted record also refuses a file that someone altered and signed
        again.

    Returns
    -------
    model : ExportedPipeline
        Ready to ``predict``, ``predict_proba`` or ``transform``.

    Raises
    ------
    ArtefactError
        If the file is not an skbert artefact, its graph, tokenizer or manifest
        does not match its digests (or ``sha256``), its manifest holds a field
        or value skbert does not write, its graph reads data from other files,
        or declares inputs and outputs other than its manifest's.

    Examples
    --------
    A file that is not an artefact (here this module's source) is refused:

    >>> from skbert import runtime
    >>> runtime.load(__file__)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    skbert.runtime.ArtefactError: ... is not an skbert artefact ...

    [`export_onnx`][skbert.export_onnx] shows the whole round trip.
    """
    return ExportedPipeline(path, threads=threads, sha256=sha256)


def _require(package: str) -> Any:
    """``package`` imported, or an ImportError that says what to install."""
    import importlib

    try:
        return importlib.import_module(package)
    except ImportError as exc:
        raise ImportError(
            f'skbert.runtime needs {package}: pip install "skbert[runtime]" (numpy, '
            "onnxruntime and tokenizers; in a deployment, then pip install --no-deps "
            f"skbert). ({exc})"
        ) from exc


class _ArtefactTokenizer(TextTokenizer):
    """The artefact's ``tokenizer.json`` behind ``TextTokenizer``'s
    truncation and special-token framing (inherited, so the runtime cuts and
    frames texts with the same code as ``transform``). The template is the one
    the manifest records, read off the checkpoint's tokenizer at export."""

    def __init__(self, definition: str, recipe: dict[str, Any]) -> None:
        Tokenizer = _require("tokenizers").Tokenizer

        # TextTokenizer.__init__ reads a transformers tokenizer; here every
        # setting comes from the manifest instead.
        backend = Tokenizer.from_str(definition)
        backend.no_truncation()
        backend.no_padding()
        self._tokenizer = backend
        self.prefix = list(recipe["prefix"])
        self.suffix = list(recipe["suffix"])
        self.pad_id = recipe["pad_id"]

    @property
    def vocabulary_size(self) -> int:
        return int(self._tokenizer.get_vocab_size(with_added_tokens=True))

    def _all_ids(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        encoded = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [list(item.ids) for item in encoded]


class _ArtefactVersionWarning(InconsistentVersionWarning):
    """An artefact runs with other versions than those it was checked with."""

    def __init__(self, package: str, original: str | None, current: str | None):
        super().__init__(package, original, current)
        self.args = (
            f"This artefact was exported with {package} {original} and runs with "
            f"{package} {current}. Its outputs may differ slightly from those "
            "checked against Python at export; export it again with the installed "
            f"versions, or install {package}=={original}.",
        )


def _warn_about_versions(exported: dict[str, Any]) -> None:
    """Warn, naming both versions, for each runtime package that changed."""
    warn_about_changes(exported, _RUNTIME_PACKAGES, _ArtefactVersionWarning)


def _widths(manifest: dict[str, Any]) -> dict[str, int | None]:
    """The width of each runtime method's output (``None``: one value per text)."""
    return {
        "predict": None,
        "predict_proba": len(manifest["classes"] or ()),
        "transform": manifest["n_features_out"],
        "embed": manifest["spec"]["output_size"],
    }


def _check_signature(session: Any, manifest: dict[str, Any]) -> None:
    """The graph takes the manifest's inputs as any number of texts of any
    length (int64), and its outputs have the widths the manifest gives: a
    declared dimension that differs fails here, not at ``predict``."""
    inputs = {item.name: item for item in session.get_inputs()}
    outputs = {item.name: item for item in session.get_outputs()}
    if set(inputs) != set(manifest["inputs"]) or not set(
        manifest["outputs"].values()
    ) <= set(outputs):
        raise ArtefactError(
            "the artefact's graph does not have the inputs and outputs its "
            "manifest names"
        )
    for name, item in inputs.items():
        shape = list(item.shape or ())
        fixed = [dim for dim in shape if isinstance(dim, int)]
        if item.type != "tensor(int64)" or len(shape) != 2 or fixed:
            raise ArtefactError(
                f"the artefact's graph declares its input {name!r} as {item.type} "
                f"of shape {shape}; skbert's graphs take int64 of shape (texts, "
                "tokens), both of any size"
            )
    widths = _widths(manifest)
    for method, name in manifest["outputs"].items():
        shape = list(outputs[name].shape or ())
        expected = [None] if widths[method] is None else [None, widths[method]]
        if len(shape) != len(expected) or any(
            isinstance(dim, int) and dim != want
            for dim, want in zip(shape, expected, strict=True)
        ):
            raise ArtefactError(
                f"the artefact's graph declares its output {name!r} of shape "
                f"{shape}, but its manifest gives {method} "
                f"{'one value' if widths[method] is None else widths[method]} "
                "per text"
            )


def _spec(fields: dict[str, Any]) -> EncodingSpec:
    """The manifest's spec as the ``EncodingSpec`` the export ran."""
    sequences = {"layers": tuple(fields["layers"]), "modes": tuple(fields["modes"])}
    try:
        return EncodingSpec(**{**fields, **sequences})
    except TypeError as exc:
        raise ArtefactError(
            f"the artefact's manifest has an invalid spec ({exc})"
        ) from None


class ExportedPipeline:
    """A pipeline exported by [`export_onnx`][skbert.export_onnx], run by ONNX Runtime.

    Made by [`load`][skbert.runtime.load]. The methods take texts as
    [`transform`][skbert.BertCLSVectorizer.transform] does (a list, tuple, array
    or pandas Series of ``str``; a bare string is refused).

    Parameters
    ----------
    path : str or os.PathLike
        The artefact.
    threads : int, default=None
        ONNX Runtime's intra-op threads (``None``: its default).
    sha256 : str, default=None
        The digest the artefact must have (see [`load`][skbert.runtime.load]).

    Attributes
    ----------
    manifest : dict
        What the artefact says about itself: the recipe, fingerprints, steps
        and the versions of the libraries that exported it.
    classes_ : ndarray
        The class labels (classifiers only), in the order of the columns of
        [`predict_proba`][skbert.runtime.ExportedPipeline.predict_proba].

    Examples
    --------
    See [`export_onnx`][skbert.export_onnx] for a round trip.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        threads: int | None = None,
        sha256: str | None = None,
    ) -> None:
        onnxruntime = _require("onnxruntime")
        artefact = read_artefact(path, sha256)
        manifest = artefact.manifest
        self._session = open_session(onnxruntime, artefact.model, threads=threads)
        _check_signature(self._session, manifest)
        self.manifest = manifest
        _warn_about_versions(manifest["versions"])
        self._inputs = {item.name for item in self._session.get_inputs()}
        self._spec = _spec(manifest["spec"])
        self._tokenizer = _ArtefactTokenizer(artefact.tokenizer, manifest["tokenizer"])
        check_ids_known(manifest, self._tokenizer.vocabulary_size)
        if manifest["kind"] == "classifier":
            self.classes_ = np.asarray(manifest["classes"])

    def __repr__(self) -> str:
        steps = ", ".join(self.manifest["steps"])
        return f"ExportedPipeline({steps})"

    def predict(self, X: Any) -> np.ndarray:
        """The predicted class of each text.

        Parameters
        ----------
        X : iterable of str
            Texts.

        Returns
        -------
        y : ndarray of shape (n_texts,)
        """
        labels = self._run(X, "predict")
        # the dtype object of classes_ itself (ONNX Runtime's int64 is longlong)
        return labels.astype(self.classes_.dtype)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The probability of each class, columns in the order of ``classes_``.

        Parameters
        ----------
        X : iterable of str
            Texts.

        Returns
        -------
        proba : ndarray of shape (n_texts, n_classes), dtype float32
        """
        return self._run(X, "predict_proba")

    def transform(self, X: Any) -> np.ndarray:
        """The pipeline's output vectors (the sentence vectors for a
        vectorizer alone).

        Parameters
        ----------
        X : iterable of str
            Texts.

        Returns
        -------
        X_new : ndarray of shape (n_texts, n_features), dtype float32
        """
        return self._run(X, "transform")

    def embed(self, X: Any) -> np.ndarray:
        """The sentence vectors, as the pipeline's ``BertCLSVectorizer``
        computes them (before the steps that follow it).

        Parameters
        ----------
        X : iterable of str
            Texts.

        Returns
        -------
        vectors : ndarray of shape (n_texts, vector_size), dtype float32
        """
        return self._run(X, "embed")

    # -- texts -> batches -> graph -------------------------------------------
    def _output(self, method: str) -> str:
        name = self.manifest["outputs"].get(method)
        if name is None:
            available = ", ".join(self.manifest["outputs"])
            raise AttributeError(
                f"This artefact ({self.manifest['steps'][-1]}) has no {method}; it "
                f"offers {available}."
            )
        return name

    def _token_ids(self, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        """What the model reads for ``texts`` (validated), and which were cut."""
        spec = self._spec
        return self._tokenizer.encode(
            prepare(texts, spec),
            spec.max_length,
            long_texts=spec.long_texts,
            head_tokens=spec.head_tokens,
        )

    def _run(self, X: Any, method: str) -> np.ndarray:
        output = self._output(method)
        result, report = self._outputs(check_texts(X), output)
        warn_about(report)
        return self._empty(method) if result is None else result

    def _outputs(
        self, texts: list[str], output: str
    ) -> tuple[np.ndarray | None, EncodingReport]:
        """The graph's ``output`` for ``texts`` (``None`` for no texts), and
        which texts were cut."""
        result = None
        truncated: list[int] = []
        for start in range(0, len(texts), CHUNK_SIZE):
            ids, cut = self._token_ids(texts[start : start + CHUNK_SIZE])
            truncated.extend(start + i for i, flag in enumerate(cut) if flag)
            for rows in plan_batches([len(row) for row in ids], self._spec):
                feeds = self._feeds([ids[i] for i in rows])
                (values,) = self._session.run([output], feeds)
                if result is None:
                    shape = (len(texts), *values.shape[1:])
                    result = np.empty(shape, dtype=values.dtype)
                result[[start + i for i in rows]] = values
        report = EncodingReport(
            n_texts=len(texts), max_length=self._spec.max_length, truncated=truncated
        )
        return result, report

    def _feeds(self, rows: list[list[int]]) -> dict[str, np.ndarray]:
        input_ids, mask = pad_rows(rows, self._tokenizer.pad_id)
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        return feeds

    def _empty(self, method: str) -> np.ndarray:
        """The result for no texts, shaped as for some."""
        if method == "predict":
            return np.empty(0, dtype=self.classes_.dtype)
        return np.empty((0, _widths(self.manifest)[method]), dtype=np.float32)
