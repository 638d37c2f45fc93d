"""The documentation site is complete and consistent.

``mkdocs build --strict`` (run by ``.ci/run``) checks links and the API
reference; pytest runs every ``>>>`` example of the pages (``--doctest-glob``).
These tests check what neither does: every page is in the navigation, the API
reference covers the public names, the README points at pages that exist, and
the evaluation table says what the results file says.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import skbert

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def mkdocs_config() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def nav_files(nav: list) -> list[str]:
    files = []
    for entry in nav:
        target = next(iter(entry.values())) if isinstance(entry, dict) else entry
        files.extend(nav_files(target) if isinstance(target, list) else [target])
    return files


def test_every_page_is_in_the_navigation_and_every_entry_exists(mkdocs_config):
    listed = nav_files(mkdocs_config["nav"])
    pending = set(mkdocs_config.get("extra", {}).get("pending_pages", []))
    pages = {path.name for path in DOCS.glob("*.md")}
    assert len(listed) == len(set(listed))
    assert pages <= set(listed), f"pages missing from the nav: {pages - set(listed)}"
    missing = {name for name in listed if not (DOCS / name).is_file()}
    assert missing <= pending, f"nav entries without a page: {missing - pending}"
    assert listed[0] == "index.md"


def test_site_builds_with_warnings_as_errors(mkdocs_config):
    assert mkdocs_config["strict"] is True
    handler = mkdocs_config["plugins"][1]["mkdocstrings"]["handlers"]["python"]
    assert handler["options"]["docstring_style"] == "numpy"
    assert "mkdocs build --strict" in (ROOT / ".ci" / "run").read_text()


def test_api_reference_covers_the_public_names():
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: ([\w.]+)$", api, flags=re.MULTILINE))
    public = {f"skbert.{name}" for name in skbert.__all__ if not name.startswith("_")}
    assert public <= documented, public - documented
    assert "skbert.datasets.load_sentiment_sentences" in documented


def test_examples_of_classes_named_after_the_package_are_collected():
    """Pickled classes are named ``skbert.X`` (public names for pickles and
    skops), so doctest no longer finds their examples in the module that
    defines them. pytest collects them from ``skbert/__init__.py`` instead:
    it reads every name ``dir(skbert)`` lists (loading the lazy ones) before
    it looks for doctests, as done here."""
    import doctest

    for name in dir(skbert):
        getattr(skbert, name)
    collected = {test.name for test in doctest.DocTestFinder().find(skbert)}
    renamed = [
        value
        for value in vars(skbert).values()
        if isinstance(value, type) and value.__module__ == "skbert"
    ]
    assert {"BertCLSVectorizer", "ModelHandle", "ModelSource"} <= {
        value.__name__ for value in renamed
    }
    for value in renamed:
        examples = doctest.DocTestFinder().find(value, module=False)
        if any(test.examples for test in examples):
            assert f"skbert.{value.__name__}" in collected, value


def test_readme_and_pages_link_to_files_that_exist():
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_changelog_names_the_current_version():
    changelog = (DOCS / "changelog.md").read_text(encoding="utf-8")
    assert f"## {skbert.__version__}" in changelog


def evaluation_rows(text: str) -> dict[tuple[str, str], tuple[float, float]]:
    """``(layers, pooling) -> (MR, SST)`` of the results table in evaluation.md."""
    rows = {}
    for line in text.splitlines():
        match = re.match(
            r"^\| `?([\w+]+)`? \| `(\w+)` \| \**([\d.]+)\** \| \**([\d.]+)\** \|", line
        )
        if match:
            layers, pooling, mr, sst = match.groups()
            rows[(layers, pooling)] = (float(mr), float(sst))
    return rows


def test_evaluation_table_matches_its_results_file():
    results = json.loads((DOCS / "evaluation.json").read_text(encoding="utf-8"))
    page = (DOCS / "evaluation.md").read_text(encoding="utf-8")
    table = evaluation_rows(page)
    expected = {
        (row["layers"], row["pooling"]): (row["mr"], row["sst"])
        for row in results["results"]
    }
    assert table == expected
    assert {row["pooling"] for row in results["results"]} == {
        "cls",
        "pooler",
        "mean",
        "max",
    }
    assert results["protocol"]["kfold"] == 10 and results["protocol"]["limit"] is None
    for name, (mr, sst) in results["published"].items():
        assert f"| {name} | {mr:.2f} | {sst:.2f} |" in page
    assert "](img/evaluation.png)" in page
    assert (DOCS / "img" / "evaluation.png").read_bytes()[:4] == b"\x89PNG"
    assert "python benchmarks/evaluate.py" in page


def documented_objects() -> dict[str, object]:
    """Every object the API page renders (``::: name``), with the methods of
    classes that the page lists as members."""
    import importlib
    import inspect

    api = (DOCS / "api.md").read_text(encoding="utf-8")
    found = {}
    for name, members in re.findall(
        r"^::: ([\w.]+)$(?:\n\s+options:\n\s+members: \[([^\]]*)\])?",
        api,
        flags=re.MULTILINE,
    ):
        module, _, attribute = name.rpartition(".")
        obj = getattr(importlib.import_module(module), attribute)
        found[name] = obj
        for member in filter(None, (m.strip() for m in members.split(","))):
            found[f"{name}.{member}"] = getattr(obj, member)
        if inspect.isclass(obj):
            found[f"{name}.__init__"] = obj.__init__
    return found


@pytest.fixture(scope="module")
def mkdocs_hooks():
    """``tools/mkdocs_hooks.py``, the hooks the site build runs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "mkdocs_hooks", ROOT / "tools" / "mkdocs_hooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_docstrings_link_with_the_docs_tool_not_sphinx_roles(mkdocs_hooks):
    objects = documented_objects()
    assert "skbert.BertCLSVectorizer.fit_transform" in objects
    for name, obj in objects.items():
        roles = mkdocs_hooks.sphinx_roles(obj.__doc__ or "")
        assert not roles, f"{name}: {roles} would show as raw text"
    links = re.findall(r"\]\[([\w.]+)\]", skbert.BertCLSVectorizer.__doc__)
    assert "skbert.TruncationWarning" in links


def test_the_docs_hook_flags_a_raw_sphinx_role(mkdocs_hooks, caplog):
    class Page:
        class file:
            src_uri = "api.md"

    html = "<p>as for :meth:<code>transform</code>, see :func:`skbert.x`</p>"
    with caplog.at_level("WARNING", logger="mkdocs.hooks.skbert"):
        assert mkdocs_hooks.on_page_content(html, page=Page) == html
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert ":meth:`transform`" in caplog.records[0].getMessage()
    assert mkdocs_hooks.sphinx_roles("<p>[<code>transform</code>][x]</p>") == []


# -- every figure says where it comes from -----------------------------------
#: ``<!-- measured: DATE | MACHINE | SCRIPT -->``: when, where and with what a
#: page's figures were measured.
MEASURED = re.compile(r"<!-- measured: (\S+) \| ([^|]+?) \| (\S+) -->")
#: A Markdown table row with a number in a cell (a measured figure).
FIGURE_ROW = re.compile(r"^\|.*\| *[0-9][0-9.,]*( ?%| s| MiB| GiB| MB|x)? *\|", re.M)


def test_every_page_with_figures_says_when_where_and_with_what():
    """A page whose tables hold figures carries a ``measured`` marker naming
    the date, the machine and the benchmark script (which exists)."""
    import datetime

    root = DOCS.parent
    for page in [root / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        markers = MEASURED.findall(text)
        if FIGURE_ROW.search(text) and page.name != "changelog.md":
            assert markers, f"{page.name} has figures but no <!-- measured: --> marker"
        for date, machine, script in markers:
            assert datetime.date.fromisoformat(date) <= datetime.date.today()
            assert "core" in machine or "GPU" in machine, (page.name, machine)
            assert (root / script).is_file(), (page.name, script)


def test_the_generated_tables_are_the_benchmarks_json():
    """The fine-tuning, cost and SetFit tables are exactly what
    ``report_finetune.py`` makes of docs/finetune.json and docs/setfit.json."""
    import sys

    sys.path.insert(0, str(DOCS.parent / "benchmarks"))
    try:
        import report_finetune
    finally:
        sys.path.pop(0)
    for page, text in report_finetune.rendered_pages(DOCS.parent).items():
        assert (DOCS.parent / page).read_text(encoding="utf-8") == text, (
            f"{page}: run `python benchmarks/report_finetune.py --write-docs`"
        )
