"""A pooling search with n_jobs=1 against n_jobs=2, default cache settings.

Each run is a fresh interpreter (cold caches, its own session folder) that
fits ``GridSearchCV(Pipeline(BertCLSVectorizer, LogisticRegression),
{"bert__pooling": [cls, pooler, mean, max]}, cv=5, n_jobs=k)`` on the same
texts; the runs alternate between the two settings, and the median of the
rounds is reported: wall-clock time, and the CPU time of the run and every
worker process it started (reaped children), with the rows forwarded through
the model in all processes.

    python benchmarks/bench_parallel_search.py --n 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import default_model, load_texts

SEARCH = """
import os, sys
import numpy as np
sys.path.insert(0, {tests!r})
from counting import CountingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

texts = {texts!r}
labels = np.asarray({labels!r})
pipe = Pipeline([
    ("bert", CountingVectorizer(model_name_or_path={model!r}, device="cpu",
                                max_length=128)),
    ("clf", LogisticRegression(max_iter=1000)),
])
grid = {{"bert__pooling": ["cls", "pooler", "mean", "max"]}}
GridSearchCV(pipe, grid, cv=5, n_jobs={n_jobs}).fit(texts, labels)
"""


def one_run(code: str, log: Path) -> tuple[float, float, int]:
    """Wall s, CPU s of the run and its reaped workers, rows forwarded."""
    log.unlink(missing_ok=True)
    env = {**os.environ, "SKBERT_TEST_FORWARD_LOG": str(log), "HF_HUB_OFFLINE": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rows = sum(int(n) for n in log.read_text().split()[1::2])
    return wall, cpu, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="TSV; default: shipped yelp")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    texts, labels = load_texts(args.data, "all")
    texts, labels = list(texts[: args.n]), [int(v) for v in labels[: args.n]]
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    codes = {
        k: textwrap.dedent(
            SEARCH.format(
                tests=tests, texts=texts, labels=labels, model=default_model(), n_jobs=k
            )
        )
        for k in (1, 2)
    }
    samples: dict[int, list[tuple[float, float, int]]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "rows.log"
        for round_ in range(args.rounds):
            for k in (1, 2) if round_ % 2 == 0 else (2, 1):
                samples[k].append(one_run(codes[k], log))
                wall, cpu, rows = samples[k][-1]
                print(
                    f"round {round_} n_jobs={k}: {wall:.1f} s wall, {cpu:.1f} s "
                    f"CPU, {rows} rows",
                    flush=True,
                )
    print(f"\n{len(texts)} texts, {len(set(texts))} distinct; load {os.getloadavg()}")
    for k, runs in samples.items():
        walls = [w for w, _, _ in runs]
        cpus = [c for _, c, _ in runs]
        print(
            f"n_jobs={k}: wall median {statistics.median(walls):.1f} s "
            f"({min(walls):.1f}-{max(walls):.1f}), CPU median "
            f"{statistics.median(cpus):.1f} s, rows forwarded {runs[0][2]}"
        )
    ratio = statistics.median([w for w, _, _ in samples[1]]) / statistics.median(
        [w for w, _, _ in samples[2]]
    )
    print(f"n_jobs=2 vs n_jobs=1: {ratio:.2f}x wall-clock")


if __name__ == "__main__":
    main()
