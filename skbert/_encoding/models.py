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

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .._core import versions as _versions
from .._core.options import on_onnx_runtime, on_openvino, runner
from .._model import registry as _registry
from .._model.checkpoint import load_folder
from .._model.handle import FingerprintMismatchError, ModelHandle
from .._model.source import ModelSource
from .known import known_handle, note_loaded

if TYPE_CHECKING:
    import torch

    from .._model.checkpoint import LoadedModel

__all__ = [
    "Located",
    "compute_stamp",
    "deferred_handle",
    "fit_handle",
    "locate",
    "running_model",
    "running_place",
]


class Located(NamedTuple):
    """Where a source's checkpoint is on disk, and its
    :func:`~skbert._model.registry.folder_key` (the folder as it is now)."""

    folder: Path
    key: tuple


def locate(source: ModelSource) -> Located:
    """The folder of ``source`` (downloaded first for a hub id) and its key:
    found once per ``fit``, for :func:`deferred_handle` and :func:`fit_handle`."""
    folder = source.folder()
    return Located(folder, _registry.folder_key(folder, source.trust_remote_code))


def deferred_handle(
    source: ModelSource, located: Located, *, device: str, dtype: str
) -> ModelHandle | None:
    """A handle of ``source`` that reads no weights until a forward pass needs
    them, where this process has not loaded the folder but its session knows
    what the folder, unchanged, holds (:mod:`skbert._encoding.known`);
    ``None`` otherwise. ``device`` and ``dtype`` are their ``str()``: torch is
    not imported here."""
    if _registry.peek(located.key, device, dtype) is not None:
        return None
    return known_handle(source, located.key, device, dtype)


def fit_handle(
    source: ModelSource,
    located: Located,
    *,
    device: torch.device,
    dtype: torch.dtype,
) -> ModelHandle:
    """Load ``source`` (or reuse it from the registry) and make its handle."""
    folder, key = located
    loaded = _registry.obtain(
        digest=None,
        folder=key,
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
    note_loaded(key, device, dtype, loaded)
    return ModelHandle(source, loaded, code_allowed=source.trust_remote_code)


#: The precision ONNX Runtime runs the export in, whatever was asked.
_ONNX_RUNTIME_DTYPE = "float32"


def running_place(
    device: torch.device, dtype: torch.dtype, backend: str, quantize: bool = False
) -> tuple[torch.device, torch.dtype, str]:
    """Where and how :func:`running_model` runs a checkpoint asked for on
    ``device`` in ``dtype`` by ``backend``: ONNX Runtime runs float32 on the
    CPU, OpenVINO the CPU in ``dtype``; the runner is named as
    :data:`~skbert._core.options.RUNNERS` says."""
    import torch

    name = runner(backend, quantize)
    if on_onnx_runtime(name):
        return torch.device("cpu"), getattr(torch, _ONNX_RUNTIME_DTYPE), name
    if on_openvino(name):
        return torch.device("cpu"), dtype, name
    return device, dtype, name


def compute_stamp(
    device: torch.device | str,
    dtype: torch.dtype | str,
    backend: str,
    quantize: bool = False,
) -> str:
    """The :attr:`~skbert._model.checkpoint.LoadedModel.compute` stamp of the
    model :func:`running_model` gives for these arguments (or their ``str()``),
    without loading it or importing torch."""
    name = runner(backend, quantize)
    precision = f"torch.{_ONNX_RUNTIME_DTYPE}" if on_onnx_runtime(name) else str(dtype)
    return _versions.compute_stamp(name, precision)


def running_model(
    handle: ModelHandle,
    device: torch.device,
    dtype: torch.dtype,
    backend: str = "torch",
    quantize: bool = False,
) -> LoadedModel:
    """``handle``'s checkpoint on ``device`` in ``dtype`` (or its ONNX Runtime
    or OpenVINO twin)."""
    if handle.damage:
        raise FingerprintMismatchError(handle.damage)
    device, dtype, backend = running_place(device, dtype, backend, quantize)
    kept = handle.models.get((str(device), str(dtype), backend))
    if kept is not None:
        return kept
    if backend == "torch":
        return handle.torch_model_on(device, dtype)
    # the others are made from the float32 CPU torch model
    import torch

    base = handle.torch_model_on(device, torch.float32)
    if on_openvino(backend):
        from .openvino import load_openvino

        def load() -> LoadedModel:
            return load_openvino(base, dtype=dtype, quantize=quantize)
    else:
        from .onnx import load_onnx

        def load() -> LoadedModel:
            return load_onnx(base, quantize=quantize)

    loaded = _registry.obtain(
        digest=handle.identity.digest,
        folder=None,
        device=device,
        dtype=dtype,
        backend=backend,
        load=load,
    )
    return handle.remember(loaded)
