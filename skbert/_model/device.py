"""Turn the ``device`` and ``dtype`` parameters into torch objects."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "cpu_computes_bfloat16",
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


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"`` -> bfloat16 (or float16) on CUDA, bfloat16 on a CPU with
    bfloat16 arithmetic (:func:`cpu_computes_bfloat16`), float32 elsewhere."""
    import torch

    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_computes_bfloat16():
            return torch.bfloat16
        return torch.float32
    return {
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }[dtype]


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
