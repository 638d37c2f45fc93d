"""Counts that say how the package is wired (issue 22's before/after figures).

Run from the repository root: ``python benchmarks/architecture_counts.py``.
It prints, as JSON:

- ``transform``: the skbert modules and functions one default ``transform``
  call crosses (a tiny random BERT, the default cache, fitted beforehand; the
  call is traced with ``sys.setprofile``), for a first call (vectors computed)
  and a second call (vectors served from the cache);
- ``vocabulary_spellings``: per option vocabulary of ``_options``, the modules
  that spell two or more of its words together in one literal (a tuple, list,
  set or dict), i.e. that keep a copy of the vocabulary;
- ``local_imports``: imports of skbert's own modules inside functions;
- ``any_annotations``: annotations that mention ``Any``;
- ``modules`` and ``lines``.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skbert"
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _sources() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(ROOT)): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _vocabularies() -> dict[str, frozenset[str]]:
    try:
        from skbert._core import options
    except ImportError:
        from skbert import _options as options
    names = (
        "POOLINGS",
        "VECTOR_MODES",
        "LONG_TEXTS",
        "CHUNK_COMBINES",
        "DTYPES",
        "BACKENDS",
        "RUNNERS",
        "PERSIST_OPTIONS",
        "FINE_TUNE_OBJECTIVES",
    )
    return {name: frozenset(getattr(options, name)) for name in names}


def _literal_words(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Dict):
        items = node.keys
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        items = node.elts
    else:
        return set()
    return {
        item.value
        for item in items
        if isinstance(item, ast.Constant) and isinstance(item.value, str)
    }


def _spellings(trees: dict[str, ast.Module]) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {name: set() for name in _vocabularies()}
    for name, words in _vocabularies().items():
        for path, tree in trees.items():
            for node in ast.walk(tree):
                if len(_literal_words(node) & words) >= 2:
                    found[name].add(path)
    return {name: sorted(paths) for name, paths in found.items()}


def _local_imports(trees: dict[str, ast.Module]) -> int:
    count = 0
    for tree in trees.values():
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                own = isinstance(node, ast.ImportFrom) and (
                    node.level > 0 or (node.module or "").startswith("skbert")
                )
                count += own
    return count


def _any_annotations(trees: dict[str, ast.Module]) -> int:
    count = 0
    for tree in trees.values():
        annotations = []
        for node in ast.walk(tree):
            if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation:
                annotations.append(node.annotation)
            if (
                isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                and node.returns
            ):
                annotations.append(node.returns)
        count += sum(
            any(isinstance(n, ast.Name) and n.id == "Any" for n in ast.walk(annotation))
            for annotation in annotations
        )
    return count


def _crossed(call) -> dict[str, int]:
    seen: set[tuple[str, str]] = set()
    package = str(PACKAGE)

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(package):
            seen.add((frame.f_code.co_filename, frame.f_code.co_qualname))

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return {"modules": len({path for path, _ in seen}), "functions": len(seen)}


def _transform_counts() -> dict[str, dict[str, int]]:
    from helpers import build_tiny_bert

    import skbert

    with tempfile.TemporaryDirectory() as folder:
        os.environ["HF_HOME"] = folder
        model = build_tiny_bert(Path(folder) / "bert")
        vectorizer = skbert.BertCLSVectorizer(model_name_or_path=str(model))
        vectorizer.fit(["probe"])
        texts = [f"a short text number {i}" for i in range(40)]
        return {
            "computed": _crossed(lambda: vectorizer.transform(texts)),
            "from_cache": _crossed(lambda: vectorizer.transform(texts)),
        }


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    trees = _sources()
    spellings = _spellings(trees)
    print(
        json.dumps(
            {
                "modules": len(trees),
                "lines": sum(
                    len(path.read_text().splitlines()) for path in PACKAGE.rglob("*.py")
                ),
                "transform": _transform_counts(),
                "vocabulary_spellings": {k: len(v) for k, v in spellings.items()},
                "vocabulary_modules": spellings,
                "local_imports": _local_imports(trees),
                "any_annotations": _any_annotations(trees),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
