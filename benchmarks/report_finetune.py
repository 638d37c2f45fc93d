"""The tables of docs/choosing.md and docs/fine_tuning.md, from the JSON rows
that ``evaluate_finetune.py`` and ``compare_setfit.py`` write.

Usage: ``python benchmarks/report_finetune.py mr.json sst2.json imdb.json
--setfit setfit.json`` prints Markdown tables: per task and row, the mean
accuracy over the folds scored, its standard deviation, the folds, and the
median fit and tuning CPU seconds per fold.
"""

from __future__ import annotations

import argparse
import json
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", type=Path)
    parser.add_argument("--setfit", type=Path, default=None)
    args = parser.parse_args(argv)
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
