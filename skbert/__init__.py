"""skbert: BERT sentence vectors as a scikit-learn transformer.

``import skbert`` is light: torch and transformers are imported only when a
vectorizer is fitted or used.
"""

from __future__ import annotations

from ._cache import cache_info, clear_cache, set_memory_cache_limit
from ._handle import FingerprintMismatchError
from ._registry import clear_model_cache
from ._report import TruncationWarning
from ._vectorizer import BertCLSVectorizer
from ._versions import InconsistentVersionWarning

__version__ = "0.2.0"

__all__ = [
    "BertCLSVectorizer",
    "FingerprintMismatchError",
    "InconsistentVersionWarning",
    "TruncationWarning",
    "__version__",
    "cache_info",
    "clear_cache",
    "clear_model_cache",
    "set_memory_cache_limit",
]
