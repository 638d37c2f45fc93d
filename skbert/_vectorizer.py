"""Where skbert 0.1 and 0.2 pickled the vectorizer: kept so those files load.

Pickles written since name the public ``skbert.BertCLSVectorizer``; the class
lives in :mod:`skbert._estimator.vectorizer`.
"""

from ._estimator.vectorizer import BertCLSVectorizer

__all__ = ["BertCLSVectorizer"]
