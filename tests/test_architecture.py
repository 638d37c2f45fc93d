"""The layers of docs/architecture.md hold: every import follows its table.

The rules are read from the page itself (its "The layers" and "Modules"
tables), so the page and the code cannot drift apart: a module the page does
not list, an import of a layer the page does not allow (at module level,
inside a function or under ``TYPE_CHECKING``), a third-party import where the
page names only the standard library and numpy, or an import cycle between
modules fails here.
"""

from __future__ import annotations

import ast
import functools
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skbert"
PAGE = ROOT / "docs" / "architecture.md"


def _table(heading: str) -> list[list[str]]:
    """The body rows of the first table after ``heading``, cell by cell."""
    text = PAGE.read_text(encoding="utf-8")
    lines = text.split(f"## {heading}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[2:]  # the header and its rule


def _names(cell: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", cell))


LAYERS = {row[0].strip("`"): row for row in _table("The layers")}
ALLOWED = {layer: _names(row[2]) for layer, row in LAYERS.items()}
OUTSIDE = {layer: row[3] for layer, row in LAYERS.items()}
MODULES = {row[0].strip("`"): _names(row[1]) for row in _table("Modules")}


def layer_of(module: str) -> str:
    """``skbert._core.plan`` -> ``_core``; public modules -> ``package``."""
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return "package"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def sources() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every import in ``path``, at any depth."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            # ``from package import module`` imports the module
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                known = candidate in sources()
                found.append((node.lineno, candidate if known else target))
    return found


def test_the_page_names_every_layer_and_every_module():
    on_disk: dict[str, set[str]] = {}
    for module, path in sources().items():
        stem = "__init__" if path.name == "__init__.py" else path.stem
        on_disk.setdefault(layer_of(module), set()).add(stem)
    assert set(MODULES) == set(LAYERS) == set(on_disk)
    for layer, modules in on_disk.items():  # every layer has its __init__
        listed = MODULES[layer] | {"__init__"}
        assert listed == modules, (layer, modules ^ listed)


@pytest.mark.parametrize("module", sorted(sources()))
def test_imports_follow_the_layers(module):
    layer = layer_of(module)
    broken = [
        f"{module}:{line} imports {target} ({layer_of(target)})"
        for line, target in imports(sources()[module])
        if target.split(".")[0] == "skbert"
        and layer_of(target) != layer
        and layer_of(target) not in ALLOWED[layer]
    ]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize(
    "layer", [name for name, rule in OUTSIDE.items() if "standard library" in rule]
)
def test_closed_layers_import_only_what_the_page_names(layer):
    """``_core``, ``_storage`` and the runtime: the standard library and the
    packages the page names, at any depth (the runtime's onnxruntime and
    tokenizers are imported when a file is loaded)."""
    allowed = _names(OUTSIDE[layer]) | {"skbert", "__future__"}
    broken = [
        f"{module}:{line} imports {target}"
        for module, path in sources().items()
        if layer_of(module) == layer
        for line, target in imports(path)
        if target
        and target.split(".")[0] not in allowed
        and target.split(".")[0] not in sys.stdlib_module_names
    ]
    assert not broken, "\n".join(broken)


def test_no_import_cycles():
    """Between modules, counting every import (function-local ones too)."""
    graph = {
        module: {
            target
            for _, target in imports(path)
            if target in sources() and target != module
        }
        for module, path in sources().items()
    }
    # a module's package __init__ runs first; importing it is not a cycle
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(trail[trail.index(target) :] + [target])
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, cycles


def test_the_rule_checker_catches_a_forbidden_import(tmp_path, monkeypatch):
    """The checker can fail: a ``_core`` module importing ``_model``, written
    in each form the package uses, is reported."""
    forms = [
        "from .._model.checkpoint import LoadedModel\n",
        "def f():\n    from .._model import registry\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    import skbert._model.identity\n",
    ]
    path = PACKAGE / "_core" / "plan.py"
    for form in forms:
        monkeypatch.setattr(Path, "read_text", lambda self, text=form, **kw: text)
        targets = {target for _, target in imports(path)}
        monkeypatch.undo()
        assert any(layer_of(t) == "_model" for t in targets), form
        assert "_model" not in ALLOWED["_core"]
