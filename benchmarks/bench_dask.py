"""Throughput of skbert.dask: 1 versus 2 worker processes, and in-process.

On the same texts and the same real checkpoint (all-MiniLM-L6-v2 by default),
with the embedding cache off, this times:

1. in-process ``vectorizer.transform(texts)`` with ``--cores`` torch threads;
2. ``skbert.dask.transform(...).to_parquet(...)`` on a ``LocalCluster`` of one
   worker process with ``--cores`` torch threads;
3. the same on ``--cores`` worker processes with one torch thread each.

Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which makes
glibc map and unmap every tensor buffer of torch's forward pass (20 to 25 % more
CPU time on this model); the workers here run without it unless
``--dask-malloc-trim`` keeps Dask's default. Partitions hold ``--partition-size``
texts: each partition is length-sorted and batched on its own, so partitions of
only a few batches pad far more than one large call does.

Both clusters are started, and every worker has loaded the model, before the
clock starts (cluster start and model load are reported apart as "warm-up").
The three layouts then run in turns, ``--repeat`` rounds, and each keeps its
best time, so that a machine shared with other jobs disturbs them alike. Texts/s
and the ratios are printed, and the Dask vectors are checked against the
in-process ones. CPU seconds per 1,000 texts (all threads of the process or
of the workers) are printed too: unlike texts/s, they hardly change when other
jobs share the machine.

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_dask.py                 # shipped UCI
    HF_HUB_OFFLINE=1 python benchmarks/bench_dask.py \\
        --data ../shared/data/mr.tsv --n 4000
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import tempfile
import time

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from _common import default_model, load_texts
from distributed import Client, LocalCluster, WorkerPlugin

import skbert.dask
from skbert import BertCLSVectorizer


class TorchThreads(WorkerPlugin):
    """Worker plugin: the number of torch threads of each worker process."""

    def __init__(self, n: int) -> None:
        self.n = n

    def setup(self, worker) -> None:
        import torch

        torch.set_num_threads(self.n)


def cpu_seconds() -> float:
    """CPU time of this process so far, all threads (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_cluster(
    stack: contextlib.ExitStack,
    vectorizer,
    texts,
    workers: int,
    threads: int,
    malloc_trim: bool,
) -> tuple[Client, float]:
    """A warm cluster (every worker has loaded the model) and its start-up time."""
    start = time.perf_counter()
    trim_key = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
    with dask.config.set({} if malloc_trim else {trim_key: None}):
        cluster = stack.enter_context(
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
        )
    client = stack.enter_context(Client(cluster, set_as_default=False))
    client.register_plugin(TorchThreads(threads))
    with client.as_current():
        warm = dd.from_pandas(pd.Series(texts[: 8 * workers]), npartitions=workers)
        skbert.dask.transform(vectorizer, warm).compute()
    return client, time.perf_counter() - start


def run_on(client: Client, vectorizer, frame) -> tuple[float, float, np.ndarray]:
    """Seconds and worker CPU seconds of one Parquet job, and the vectors written."""
    with (
        client.as_current(),
        tempfile.TemporaryDirectory(prefix="skbert-bench-") as out,
    ):
        cpu = sum(client.run(cpu_seconds).values())
        start = time.perf_counter()
        skbert.dask.transform(vectorizer, frame).to_parquet(out)
        seconds = time.perf_counter() - start
        cpu = sum(client.run(cpu_seconds).values()) - cpu
        return seconds, cpu, pd.read_parquet(out).sort_index().to_numpy()


def run_in_process(vectorizer, texts) -> tuple[float, float, np.ndarray]:
    cpu = cpu_seconds()
    start = time.perf_counter()
    vectors = vectorizer.transform(texts)
    return time.perf_counter() - start, cpu_seconds() - cpu, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--data", default=None, help="TSV text<TAB>label")
    parser.add_argument("--n", type=int, default=3000, help="number of texts")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--partition-size", type=int, default=2000)
    parser.add_argument(
        "--dask-malloc-trim",
        action="store_true",
        help="keep Dask's MALLOC_TRIM_THRESHOLD_=65536 in the workers",
    )
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backend", default="torch", choices=["torch", "onnx"])
    args = parser.parse_args()
    if args.model is None:
        args.model = default_model()
    texts, _ = load_texts(args.data, "all")
    texts = list(texts)[: args.n]

    import torch

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start"
    )
    print(f"model: {args.model} ({args.backend}, pooling={args.pooling})")
    partitions = max(1, round(len(texts) / args.partition_size))
    trim = "Dask's default" if args.dask_malloc_trim else "unset"
    print(f"texts: {len(texts)}, {partitions} partitions, {args.repeat} rounds")
    print(f"workers' MALLOC_TRIM_THRESHOLD_: {trim}")
    # persist="reference": the workers read the same folder, a few kB travel.
    vectorizer = BertCLSVectorizer(
        model_name_or_path=args.model,
        pooling=args.pooling,
        device="cpu",
        cache=None,
        persist="reference",
        backend=args.backend,
    ).fit(["probe"])
    torch.set_num_threads(args.cores)
    vectorizer.transform(texts[:64])  # load and warm up, untimed
    frame = dd.from_pandas(pd.Series(texts, name="text"), npartitions=partitions)

    layouts = [(1, args.cores), (args.cores, 1)] if args.cores > 1 else [(1, 1)]
    names = ["in-process", *(f"{w} worker(s) x {t} thread(s)" for w, t in layouts)]
    best = dict.fromkeys(names, np.inf)
    best_cpu = dict.fromkeys(names, np.inf)
    warm_up: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        clients = {}
        for name, (workers, threads) in zip(names[1:], layouts, strict=True):
            clients[name], warm_up[name] = start_cluster(
                stack, vectorizer, texts, workers, threads, args.dask_malloc_trim
            )
        for _ in range(args.repeat):
            seconds, cpu, expected = run_in_process(vectorizer, texts)
            best["in-process"] = min(best["in-process"], seconds)
            best_cpu["in-process"] = min(best_cpu["in-process"], cpu)
            for name, client in clients.items():
                seconds, cpu, written = run_on(client, vectorizer, frame)
                best[name] = min(best[name], seconds)
                best_cpu[name] = min(best_cpu[name], cpu)
                gap = float(np.abs(written - expected).max())
                assert gap < 1e-4, f"{name}: vectors differ by {gap} from in-process"

    print(f"{'layout':36} {'seconds':>8} {'texts/s':>8} {'cpu-s/1k':>8} {'warm-up':>8}")
    for name in names:
        speed = len(texts) / best[name]
        cpu = 1000 * best_cpu[name] / len(texts)
        warm = f"{warm_up[name]:7.1f}s" if name in warm_up else ""
        torch_threads = f"{args.cores} threads" if name == "in-process" else ""
        label = f"{name} {torch_threads}".strip()
        print(f"{label:36} {best[name]:8.2f} {speed:8.0f} {cpu:8.2f} {warm:>8}")
    if len(names) == 3:
        one, many = best[names[1]], best[names[2]]
        print(f"{args.cores} workers vs 1 worker:   {one / many:.2f} x")
        print(f"{args.cores} workers vs in-process: {best['in-process'] / many:.2f} x")
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
