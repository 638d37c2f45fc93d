"""skbert: BERT sentence vectors as a scikit-learn transformer.

``import skbert`` is light: scikit-learn, torch and transformers are imported
only when an estimator is made, fitted or exported (``BertCLSVectorizer`` and
``export_onnx`` are loaded on first access), and :mod:`skbert.runtime` never
imports them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._core.report import TruncationWarning
from ._core.versions import InconsistentVersionWarning, __version__
from ._model.handle import FingerprintMismatchError, ModelHandle
from ._model.registry import clear_model_cache
from ._model.source import ModelSource
from ._storage.cache import cache_info, clear_cache, set_memory_cache_limit

if TYPE_CHECKING:
    from ._estimator.vectorizer import BertCLSVectorizer
    from ._export.export import ExportReport, export_onnx


__all__ = [
    "BertCLSVectorizer",
    "ExportReport",
    "FingerprintMismatchError",
    "InconsistentVersionWarning",
    "ModelHandle",
    "ModelSource",
    "TruncationWarning",
    "__version__",
    "cache_info",
    "clear_cache",
    "clear_model_cache",
    "export_onnx",
    "set_memory_cache_limit",
]

#: Public names whose modules import scikit-learn: loaded on first access.
_LAZY = {
    "BertCLSVectorizer": "._estimator.vectorizer",
    "ExportReport": "._export.export",
    "export_onnx": "._export.export",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
