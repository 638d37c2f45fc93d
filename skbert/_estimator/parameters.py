"""The estimator's parameters: what each accepts, and which ``fit`` alone reads.

scikit-learn validates the parameters against :data:`PARAMETER_CONSTRAINTS`
(``BertCLSVectorizer._parameter_constraints``); the option words come from
:mod:`skbert._core.options`.
"""

from __future__ import annotations

import os
from numbers import Integral, Real
from typing import Any

from .._core.options import (
    BACKENDS,
    CHUNK_COMBINES,
    DTYPES,
    FINE_TUNE_OBJECTIVES,
    LONG_TEXTS,
    PERSIST_OPTIONS,
    POOLINGS,
)
from .sklearn_compat import Interval, StrOptions

__all__ = ["MODEL_PARAMETERS", "PARAMETER_CONSTRAINTS", "TUNING_PARAMETERS"]

#: The parameters that say which model: read by ``fit`` only.
MODEL_PARAMETERS = (
    "model_name_or_path",
    "revision",
    "local_files_only",
    "trust_remote_code",
)
#: The parameters that say how ``fit`` tunes the encoder (with ``fine_tune``):
#: read by ``fit`` only.
TUNING_PARAMETERS = (
    "fine_tune",
    "tune_epochs",
    "tune_learning_rate",
    "tune_batch_size",
    "tune_warmup",
    "tune_layers",
    "tune_pairs",
    "tune_max_steps",
    "tune_max_length",
    "random_state",
)
#: What each parameter accepts (scikit-learn's ``_parameter_constraints``).
PARAMETER_CONSTRAINTS: dict[str, list[Any]] = {
    "model_name_or_path": [str, os.PathLike],
    "pooling": [StrOptions(set(POOLINGS))],
    "layers": [Integral, tuple, list],
    "normalize": ["boolean"],
    "max_length": [Interval(Integral, 2, None, closed="left"), None],
    "batch_size": [
        Interval(Integral, 1, None, closed="left"),
        StrOptions({"auto"}),
    ],
    "max_batch_tokens": [Interval(Integral, 1, None, closed="left"), None],
    "device": [str, list, tuple],
    "dtype": [StrOptions(set(DTYPES))],
    "backend": [StrOptions(set(BACKENDS))],
    "quantize": ["boolean"],
    "revision": [str, None],
    "local_files_only": ["boolean"],
    "trust_remote_code": ["boolean"],
    "show_progress_bar": ["boolean", None],
    "long_texts": [StrOptions(set(LONG_TEXTS))],
    "head_tokens": [Interval(Integral, 0, None, closed="left"), None],
    "stride": [Interval(Integral, 0, None, closed="left")],
    "chunk_combine": [StrOptions(set(CHUNK_COMBINES))],
    "prompt": [str, None],
    "prompt_name": [str, None],
    "trust_pooler": ["boolean"],
    "persist": [StrOptions(set(PERSIST_OPTIONS))],
    "cache": [str, os.PathLike, None],  # "auto" or a directory
    "fine_tune": [StrOptions(set(FINE_TUNE_OBJECTIVES)), None],
    "tune_epochs": [Interval(Integral, 1, None, closed="left")],
    "tune_learning_rate": [Interval(Real, 0, None, closed="neither")],
    "tune_batch_size": [Interval(Integral, 1, None, closed="left")],
    "tune_warmup": [Interval(Real, 0, 1, closed="left")],
    "tune_layers": [Interval(Integral, 1, None, closed="left"), None],
    "tune_pairs": [Interval(Integral, 2, None, closed="left")],
    "tune_max_steps": [Interval(Integral, 1, None, closed="left"), None],
    "tune_max_length": [Interval(Integral, 2, None, closed="left"), None],
    "random_state": ["random_state"],
}
