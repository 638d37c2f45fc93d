"""Float32 linear layers through oneDNN on x86-64 CPUs, for the calling thread.

A CPU ``torch.nn.Linear`` in float32 runs through torch's BLAS, MKL in the
official wheels. On AMD processors MKL takes a generic code path: on the
project's AMD EPYC (Zen 5) machine it multiplies a ``(800, 384) x (384, 1536)``
product at about 100 GFLOP/s per core, while oneDNN, which the same wheels
ship for their CPU kernels, reaches about 220 GFLOP/s with the same float32
arithmetic. The linear layers are about 85% of a BERT forward pass on the CPU,
so the whole pass takes about 45% less time.

:func:`onednn_linear` is a context for the calling thread (a
``TorchFunctionMode``; torch keeps the mode stack per thread) that sends each
float32 ``F.linear`` on the CPU to oneDNN's ``mkldnn::_linear_pointwise`` and
leaves every other call, and every call of another thread, as it was. Nothing
in the model or in torch's process-wide settings changes, so the same loaded
model can be exported to ONNX or trained while another thread encodes.

The operator is private to torch (it is what torch's own compiler uses for
frozen CPU graphs). It is used only where :func:`onednn_available` finds it,
on an x86-64 processor, and only after it has reproduced ``F.linear`` on a
probe product in this process; anywhere else the context does nothing.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["onednn_available", "onednn_linear"]

_X86_64 = frozenset({"x86_64", "amd64", "x86-64"})


@functools.cache
def onednn_available() -> bool:
    """Whether oneDNN's linear operator is present here and reproduces
    ``F.linear`` (float32, within 1e-4 relative) on a probe product."""
    if platform.machine().lower() not in _X86_64:
        return False
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    try:
        operator = torch.ops.mkldnn._linear_pointwise
        # explicit dtype and device, no autocast: whatever the calling thread's
        # defaults, the probe is a float32 CPU product
        made = {"dtype": torch.float32, "device": "cpu"}
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(3, 5, 24, generator=generator, **made)
        weight = torch.randn(40, 24, generator=generator, **made)
        bias = torch.randn(40, generator=generator, **made)
        with torch.inference_mode(), torch.autocast("cpu", enabled=False):
            found = operator(x, weight, bias, "none", [], "")
            expected = torch.nn.functional.linear(x, weight, bias)
            return found.shape == expected.shape and bool(
                torch.allclose(found, expected, rtol=1e-4, atol=1e-5)
            )
    except (AttributeError, RuntimeError, TypeError):
        return False


def _linear_args(args: tuple, kwargs: dict) -> tuple[Any, Any, Any]:
    names = ("input", "weight", "bias")
    values = list(args) + [None] * (3 - len(args))
    for position, name in enumerate(names):
        if name in kwargs:
            values[position] = kwargs[name]
    return values[0], values[1], values[2]


def _suits(x: Any, weight: Any, bias: Any) -> bool:
    """Whether oneDNN computes exactly this ``F.linear``: float32 dense CPU
    tensors outside autograd, ``x`` of at least 2 dimensions, and no bias or a
    contiguous one of ``out_features`` values (``F.linear`` broadcasts other
    shapes; oneDNN would read them wrongly)."""
    import torch

    tensors = (x, weight) if bias is None else (x, weight, bias)
    if not all(
        isinstance(t, torch.Tensor)
        and t.dtype == torch.float32
        and t.device.type == "cpu"
        and t.layout == torch.strided
        and not t.requires_grad
        for t in tensors
    ):
        return False
    return (
        x.dim() >= 2
        and weight.dim() == 2
        and x.shape[-1] == weight.shape[1] > 0
        and (
            bias is None
            or (
                bias.dim() == 1
                and bias.shape[0] == weight.shape[0]
                and bias.is_contiguous()
            )
        )
    )


@contextlib.contextmanager
def onednn_linear(device: torch.device) -> Iterator[None]:
    """Within the block, this thread's float32 CPU ``F.linear`` calls run in
    oneDNN (see the module docstring); a no-op off the CPU, under CPU autocast,
    or where :func:`onednn_available` is false.

    Examples
    --------
    >>> import torch
    >>> from skbert._encoding.cpu_linear import onednn_linear
    >>> layer = torch.nn.Linear(4, 3).requires_grad_(False)
    >>> x = torch.ones(2, 4)
    >>> with torch.inference_mode(), onednn_linear(torch.device("cpu")):
    ...     fast = layer(x)
    >>> bool(torch.allclose(fast, layer(x), atol=1e-6))
    True
    """
    if (
        device.type != "cpu"
        or _autocast_on_the_cpu()  # the caller asked for lower precision
        or not onednn_available()
    ):
        yield
        return
    with _mode_class()():
        yield


def _autocast_on_the_cpu() -> bool:
    import torch

    try:
        return bool(torch.is_autocast_enabled("cpu"))
    except TypeError:  # torch before 2.4
        return bool(torch.is_autocast_cpu_enabled())


@functools.cache
def _mode_class() -> type:
    """The ``TorchFunctionMode`` subclass (made on first use, as torch is
    imported only then)."""
    import torch
    from torch.overrides import TorchFunctionMode

    linear = torch.nn.functional.linear
    operator = torch.ops.mkldnn._linear_pointwise

    class _OneDNNLinear(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            kwargs = kwargs or {}
            if func is linear:
                x, weight, bias = _linear_args(args, kwargs)
                if _suits(x, weight, bias):
                    return operator(x, weight, bias, "none", [], "")
            return func(*args, **kwargs)

    return _OneDNNLinear
