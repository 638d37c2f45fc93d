"""Turn the ``device`` and ``dtype`` parameters into torch objects."""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "cpu_computes_bfloat16",
    "place_names",
    "resolve_device",
    "resolve_devices",
    "resolve_dtype",
]

#: Where Linux lists the CPU's instruction sets.
CPUINFO = Path("/proc/cpuinfo")
#: CPU flags of native bfloat16 arithmetic: AVX512-BF16 (AMD Zen 4 and later,
#: Intel Cooper Lake) and AMX (Intel Sapphire Rapids and later).
_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA, then MPS, else CPU; anything else is checked.

    Raises
    ------
    ValueError
        If the string is not a device torch knows, or names an accelerator
        this machine does not have.
    """
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device string; use 'auto', "
            "'cpu', 'cuda', 'cuda:1' or 'mps'."
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} but CUDA is not available on this machine. Use "
                "device='auto' (picks CUDA when present, else CPU) or device='cpu', "
                "e.g. vectorizer.set_params(device='auto')."
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} but only {torch.cuda.device_count()} CUDA "
                "device(s) are visible."
            )
    if resolved.type == "mps" and not _mps_available():
        raise ValueError(
            f"device={device!r} but MPS is not available; use device='auto' or 'cpu'."
        )
    return resolved


def cpu_computes_bfloat16() -> bool:
    """Whether this machine's CPU has bfloat16 arithmetic (from
    :data:`CPUINFO`; ``False`` where the file is missing, as off Linux)."""
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return not _BF16_FLAGS.isdisjoint(line.partition(":")[2].split())
    return False


def _dtype_name(dtype: str, device_type: str) -> str:
    """The precision ``dtype`` means on a device other than CUDA: ``"auto"``
    is bfloat16 on a CPU with bfloat16 arithmetic, float32 elsewhere."""
    if dtype != "auto":
        return dtype
    if device_type == "cpu" and cpu_computes_bfloat16():
        return "bfloat16"
    return "float32"


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"`` -> bfloat16 (or float16) on CUDA, bfloat16 on a CPU with
    bfloat16 arithmetic (:func:`cpu_computes_bfloat16`), float32 elsewhere."""
    import torch

    if dtype == "auto" and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, _dtype_name(dtype, device.type))


#: A line of torch's generated ``version.py`` naming no accelerator build.
_NO_BUILD = re.compile(r"^(cuda|hip)\s*(:[^=]*)?=\s*None\s*$", re.MULTILINE)


@functools.cache
def _torch_sees_only_the_cpu() -> bool:
    """Whether the installed torch is built for no accelerator ``"auto"``
    picks (no CUDA, no ROCm; MPS only on macOS), read from its ``version.py``
    without importing it; ``False`` where that cannot be told."""
    if sys.platform == "darwin":
        return False
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return False
    if spec is None or spec.origin is None:
        return False
    try:
        text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8")
    except OSError:
        return False
    return {match[0] for match in _NO_BUILD.findall(text)} == {"cuda", "hip"}


def place_names(device: object, dtype: str) -> tuple[str, str]:
    """``str()`` of the first device the ``device`` parameter runs on and of
    the precision ``dtype`` means there, as :func:`resolve_devices` and
    :func:`resolve_dtype` give them, without importing torch where the device
    is certainly the CPU (``"cpu"``, or ``"auto"`` with a torch built for the
    CPU only, not yet imported)."""
    certain = device == "cpu" or (
        device == "auto" and "torch" not in sys.modules and _torch_sees_only_the_cpu()
    )
    if certain:
        return "cpu", f"torch.{_dtype_name(dtype, 'cpu')}"
    first = resolve_devices(device)[0]  # type: ignore[arg-type]
    return str(first), str(resolve_dtype(dtype, first))


def resolve_devices(device: str | list | tuple) -> list[torch.device]:
    """Every device to run on: a list of devices, or ``"cuda"`` on several GPUs.

    ``"cuda"`` (no index) means every visible GPU; ``"auto"``, ``"cuda:1"``,
    ``"cpu"`` or ``"mps"`` mean one device.
    """
    import torch

    if isinstance(device, (list, tuple)):
        if not device:
            raise ValueError("device=[] names no device; use 'auto' or a list.")
        return [resolve_device(str(one)) for one in device]
    if device == "cuda" and torch.cuda.is_available():
        return [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())]
    return [resolve_device(device)]
