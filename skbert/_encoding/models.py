"""The models that run a handle's checkpoint: one per device, precision and backend.

``fit`` resolves the source, loads it (or finds it in the process registry
under its folder's stamp) and makes a :class:`~skbert._model.handle.ModelHandle`.
``transform`` asks the handle for a model on each device it runs on: kept by
the handle, else found in the registry under the handle's identity, else
loaded from the handle's checkpoint (its bundle, or its source again) and
compared with the stored identity before it is registered or used. ONNX
Runtime models are made from the float32 CPU torch model
(:mod:`skbert._encoding.onnx`) and registered under the same identity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core.options import on_onnx_runtime, runner
from .._model import registry as _registry
from .._model.checkpoint import load_folder
from .._model.handle import FingerprintMismatchError, ModelHandle
from .._model.source import ModelSource

if TYPE_CHECKING:
    import torch

    from .._model.checkpoint import LoadedModel

__all__ = ["fit_handle", "running_model"]


def fit_handle(
    source: ModelSource, *, device: torch.device, dtype: torch.dtype
) -> ModelHandle:
    """Load ``source`` (or reuse it from the registry) and make its handle."""
    folder = source.folder()
    loaded = _registry.obtain(
        digest=None,
        folder=_registry.folder_key(folder, source.trust_remote_code),
        device=device,
        dtype=dtype,
        load=lambda: load_folder(
            folder,
            device=device,
            dtype=dtype,
            trust_remote_code=source.trust_remote_code,
            description=source.name,
        ),
    )
    return ModelHandle(source, loaded, code_allowed=source.trust_remote_code)


def running_model(
    handle: ModelHandle,
    device: torch.device,
    dtype: torch.dtype,
    backend: str = "torch",
    quantize: bool = False,
) -> LoadedModel:
    """``handle``'s checkpoint on ``device`` in ``dtype`` (or its ONNX twin)."""
    import torch

    if handle.damage:
        raise FingerprintMismatchError(handle.damage)
    backend = runner(backend, quantize)
    if on_onnx_runtime(backend):
        device, dtype = torch.device("cpu"), torch.float32
    kept = handle.models.get((str(device), str(dtype), backend))
    if kept is not None:
        return kept
    if backend == "torch":
        loaded = _registry.obtain(
            digest=handle.identity.digest,
            folder=None,
            device=device,
            dtype=dtype,
            load=lambda: _load_checked(handle, device, dtype),
        )
    else:
        from .onnx import load_onnx

        base = running_model(handle, device, dtype)
        loaded = _registry.obtain(
            digest=handle.identity.digest,
            folder=None,
            device=device,
            dtype=dtype,
            backend=backend,
            load=lambda: load_onnx(base, quantize=quantize),
        )
    return handle.remember(loaded)


def _load_checked(
    handle: ModelHandle, device: torch.device, dtype: torch.dtype
) -> LoadedModel:
    """Read the handle's checkpoint again; refuse it unless it is the same model,
    before it is registered (damaged weights are never kept under the
    expected identity)."""
    with handle.checkpoint() as (folder, code_allowed, description):
        loaded = load_folder(
            folder,
            device=device,
            dtype=dtype,
            trust_remote_code=code_allowed,
            description=description,
        )
    handle.check(loaded)
    return loaded
