"""The tables of docs/choosing.md and docs/evaluation.md, from the JSON rows
that ``evaluate_finetune.py`` and ``compare_setfit.py`` write.

Usage: ``python benchmarks/report_finetune.py mr.json sst2.json imdb.json
--setfit setfit.json`` prints Markdown tables: per task and row, the mean
accuracy over the folds scored, its standard deviation, the folds, and the
median fit and tuning CPU seconds per fold.

``python benchmarks/report_finetune.py --write-docs`` writes the tables between
the ``<!-- name -->`` ... ``<!-- /name -->`` markers of the pages from
``docs/finetune.json`` and ``docs/setfit.json`` (the rows the benchmarks wrote);
``tests/test_docs.py`` checks that the pages hold exactly these tables.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np


def accuracy_table(rows: list[dict]) -> str:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["task"], row["row"])].append(row)
    lines = [
        "| task | row | accuracy (%) | std | folds | fit CPU-s, first fold "
        "/ median | tuning CPU-s / fold |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for (task, name), runs in groups.items():
        scores = 100 * np.array([run["accuracy"] for run in runs])
        fits = [run["fit_cpu_seconds"] for run in runs]
        fit = f"{fits[0]:.0f} / {np.median(fits):.0f}"
        tuning = [run["tuning"]["cpu_seconds"] for run in runs if run.get("tuning")]
        folds = ",".join(str(run["fold"]) for run in runs)
        lines.append(
            f"| {task} | {name} | {scores.mean():.2f} | "
            f"{scores.std(ddof=1) if len(scores) > 1 else 0:.2f} | {folds} "
            f"of {runs[0]['folds']} | {fit} | "
            f"{np.median(tuning) if tuning else 0:.0f} |"
        )
    return "\n".join(lines)


def cost_table(rows: list[dict]) -> str:
    lines = [
        "| row | parameters | texts/s | texts per CPU-second | texts x rounds |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['row']} | {row['parameters'] / 1e6:.1f} M | "
            f"{row['texts_per_second']:.0f} | {row['texts_per_cpu_second']:.0f} | "
            f"{row['texts']} x {row['rounds']} |"
        )
    return "\n".join(lines)


def setfit_table(rows: list[dict]) -> str:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["setting"], row["contender"])].append(row)
    lines = [
        "| setting | contender | accuracy (%) | std | seeds | fit wall s | fit CPU-s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    order = {"setfit": 0, "contrastive": 1, "classification": 2}

    def key(item):
        (setting, contender), _ = item
        count = setting.split()[0]
        return (int(count) if count.isdigit() else 1 << 30, order.get(contender, 9))

    for (setting, contender), runs in sorted(groups.items(), key=key):
        scores = 100 * np.array([run["accuracy"] for run in runs])
        lines.append(
            f"| {setting} | {contender} | {scores.mean():.2f} | "
            f"{scores.std(ddof=1) if len(scores) > 1 else 0:.2f} | {len(runs)} | "
            f"{np.median([r['fit_seconds'] for r in runs]):.0f} | "
            f"{np.median([r['fit_cpu_seconds'] for r in runs]):.0f} |"
        )
    return "\n".join(lines)


#: The pages with generated tables, and the tables each holds.
PAGES = {
    "docs/choosing.md": ("accuracy_table", "cost_table", "setfit_table"),
    "docs/evaluation.md": ("finetune_table",),
}


def docs_tables(root: Path) -> dict[str, str]:
    """Each generated table, by marker name, from the docs' JSON rows."""
    rows = json.loads((root / "docs" / "finetune.json").read_text())
    setfit = json.loads((root / "docs" / "setfit.json").read_text())
    accuracy = accuracy_table([row for row in rows if "accuracy" in row])
    return {
        "accuracy_table": accuracy,
        "finetune_table": accuracy,
        "cost_table": cost_table([row for row in rows if "texts_per_second" in row]),
        "setfit_table": setfit_table(setfit),
    }


def rendered_pages(root: Path) -> dict[str, str]:
    """Each page of :data:`PAGES` with its tables as the JSON rows give them."""
    tables = docs_tables(root)
    pages = {}
    for page, names in PAGES.items():
        text = (root / page).read_text(encoding="utf-8")
        for name in names:
            block = re.compile(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", re.S)
            if not block.search(text):
                raise ValueError(f"{page} has no <!-- {name} --> block")
            text = block.sub(
                lambda match, name=name: f"{match[1]}{tables[name]}\n{match[2]}", text
            )
        pages[page] = text
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", type=Path)
    parser.add_argument("--setfit", type=Path, default=None)
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="write the docs' tables from docs/finetune.json and docs/setfit.json",
    )
    args = parser.parse_args(argv)
    if args.write_docs:
        root = Path(__file__).resolve().parents[1]
        for page, text in rendered_pages(root).items():
            (root / page).write_text(text, encoding="utf-8")
        return 0
    rows = [row for path in args.results for row in json.loads(path.read_text())]
    costs = [row for row in rows if "texts_per_second" in row]
    rows = [row for row in rows if "accuracy" in row]
    if rows:
        print(accuracy_table(rows))
        print(f"\nCPU: {rows[0]['machine']['cpu']}")
    if costs:
        print()
        print(cost_table(costs))
    if args.setfit:
        print()
        print(setfit_table(json.loads(args.setfit.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
