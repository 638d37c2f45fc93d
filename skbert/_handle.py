"""Where skbert 0.1 and 0.2 pickled the model handle: kept so those files load.

Pickles written since name the public ``skbert.ModelHandle`` and
``skbert.ModelSource``; the classes live in :mod:`skbert._model.handle`.
"""

from ._model.handle import ModelHandle
from ._model.source import ModelSource

__all__ = ["ModelHandle", "ModelSource"]
