"""Where the ``device`` parameter runs, told without importing torch where it can be.

The oracle is torch itself: ``resolve_devices`` and ``resolve_dtype`` ask it;
``place_names`` must give their ``str()`` without asking it where the answer is
the CPU for certain, and must ask it otherwise.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from skbert._model import device as _device


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "auto"])
@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_place_names_are_what_torch_resolves(device, dtype):
    first = _device.resolve_devices(device)[0]
    expected = (str(first), str(_device.resolve_dtype(dtype, first)))

    assert _device.place_names(device, dtype) == expected


def _fake_torch(tmp_path, monkeypatch, version_py: str) -> None:
    package = tmp_path / "torch"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "version.py").write_text(version_py)
    spec = type("Spec", (), {"origin": str(package / "__init__.py")})()
    monkeypatch.setattr(_device.importlib.util, "find_spec", lambda name: spec)
    # Linux, torch not imported yet (this module's view of ``sys`` only)
    monkeypatch.setattr(_device, "sys", SimpleNamespace(platform="linux", modules={}))
    _device._torch_sees_only_the_cpu.cache_clear()


@pytest.mark.parametrize(
    ("version_py", "cpu_only"),
    [
        ("cuda: Optional[str] = None\nhip: Optional[str] = None\n", True),
        ("cuda = None\nhip = None\n", True),
        ("cuda: Optional[str] = '12.8'\nhip: Optional[str] = None\n", False),
        ("cuda: Optional[str] = None\nhip: Optional[str] = '6.3.4'\n", False),
        ("__version__ = '9.0'\n", False),  # a layout not known: ask torch
    ],
)
def test_the_torch_build_is_read_without_importing_it(
    tmp_path, monkeypatch, version_py, cpu_only
):
    _fake_torch(tmp_path, monkeypatch, version_py)
    try:
        assert _device._torch_sees_only_the_cpu() is cpu_only
    finally:
        _device._torch_sees_only_the_cpu.cache_clear()


def test_auto_asks_torch_where_the_build_may_see_an_accelerator(tmp_path, monkeypatch):
    _fake_torch(tmp_path, monkeypatch, "cuda: Optional[str] = '12.8'\nhip = None\n")
    asked = []
    real = _device.resolve_devices

    def resolve(device):
        asked.append(device)
        return real(device)

    monkeypatch.setattr(_device, "resolve_devices", resolve)
    try:
        names = _device.place_names("auto", "float32")
    finally:
        _device._torch_sees_only_the_cpu.cache_clear()

    assert asked == ["auto"]
    assert names == (str(real("auto")[0]), "torch.float32")
