"""What the session's processes know of a checkpoint folder without loading it.

A process of a session (the parent of a parallel search and its workers)
that loads a checkpoint folder leaves a note in the session: the folder as it
is on disk now (its :func:`~skbert._model.registry.folder_key`: path, names,
sizes and modification times of its files), the device and precision, and
the :class:`~skbert._model.identity.ModelIdentity` and
:class:`~skbert._model.identity.ModelInfo` derived from it. Another process
fitting on the same folder, unchanged, makes its handle from the note
(:meth:`ModelHandle.known <skbert._model.handle.ModelHandle.known>`) and
reads the weights only if a text is missing from the embedding cache, when
they are compared with the noted identity before use. A note that does not
parse is ignored; a folder that changed has another key. A process never
reads its own notes: what it loaded is in its registry, and what it dropped
from there (``clear_model_cache``) it reads again.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._model.handle import ModelHandle
from .._model.identity import ModelIdentity, ModelInfo, canonical_digest
from .._storage import session as _session

if TYPE_CHECKING:
    import torch

    from .._model.checkpoint import LoadedModel
    from .._model.source import ModelSource

__all__ = ["known_handle", "note_loaded"]


def _note_name(folder: tuple, device: torch.device, dtype: torch.dtype) -> str:
    return "model:" + canonical_digest([folder, str(device), str(dtype)])


def note_loaded(
    folder: tuple, device: torch.device, dtype: torch.dtype, loaded: LoadedModel
) -> None:
    """Tell the session what ``folder`` holds (nothing without a session)."""
    _session.write_note(
        _note_name(folder, device, dtype),
        {
            "identity": loaded.identity.to_state(),
            "info": loaded.info.to_state(),
            "pid": os.getpid(),
        },
    )


def known_handle(
    source: ModelSource, folder: tuple, device: torch.device, dtype: torch.dtype
) -> ModelHandle | None:
    """A handle of ``source`` made from the session's note on ``folder``, if
    another process left one (in this one, the registry says what is loaded)."""
    note = _session.read_note(_note_name(folder, device, dtype))
    if note is None or note.get("pid") == os.getpid():
        return None
    try:
        identity = ModelIdentity.from_state(note.get("identity"))
        info = ModelInfo.from_state(note.get("info"))
    except ValueError:
        return None
    return ModelHandle.known(
        source, identity, info, code_allowed=source.trust_remote_code
    )
