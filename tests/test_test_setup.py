"""The test environment the README installs runs every test it has.

``pip install -e ".[test]"`` must bring every optional module a test imports
with ``pytest.importorskip`` (a skipped test checks nothing), and the warning
filters of pyproject.toml may hide third-party warnings only narrowly: by
message and module, never a whole category.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def optional_modules() -> set[str]:
    found = set()
    for path in (ROOT / "tests").glob("*.py"):
        found |= set(
            re.findall(r"importorskip\(\s*\"([\w.]+)\"", path.read_text("utf-8"))
        )
    return found


def test_the_test_extra_installs_every_module_a_test_may_skip_without():
    modules = optional_modules()
    assert {"matplotlib", "polars", "pyarrow", "onnxruntime"} <= modules

    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)

    assert not missing, f"add to the 'test' extra of pyproject.toml: {missing}"


def test_third_party_warnings_are_filtered_by_message_and_module(pytestconfig):
    for entry in pytestconfig.getini("filterwarnings"):
        action, message, category, module, *_ = [*entry.split(":"), "", "", ""]
        if action != "ignore":
            continue
        assert message and category and module, f"too broad: {entry!r}"
        assert not module.startswith(("skbert", ".*")), entry


def test_the_readme_runs_the_fast_suite_and_ci_runs_everything(pytestconfig):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = readme.split("<!-- test-command -->", 1)[1].split("<!--", 1)[0]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")

    addopts = pytestconfig.getini("addopts")
    assert addopts[addopts.index("-m") + 1] == "not slow"
    assert command.rstrip("`\n ").endswith("python -m pytest")  # the fast default
    assert "full_tests=\"$tests -m 'slow or not slow'" in ci
    assert 'eval "$full_tests"' in ci
    assert any(m.startswith("slow:") for m in pytestconfig.getini("markers"))
