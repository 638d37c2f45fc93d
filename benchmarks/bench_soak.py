"""Soak: resident memory over a long stream of texts through one vectorizer.

Streams ``--texts`` distinct short texts (the shipped UCI review sentences,
each made unique by a counter, so that nothing is deduplicated or cached away)
through ``transform`` in chunks of ``--chunk``, the way a batch job or a
server does, and records after every chunk the resident memory (RSS, psutil)
and the process's peak RSS so far (``ru_maxrss``, which also catches peaks
inside a chunk). Goal: after a warm-up chunk, memory stays at

    model + runtime (the baseline) + one chunk's tokens, batches and output
    + the vectors kept (``--keep``) + the embedding cache budget (``--cache auto``)

and does not grow with the number of texts.

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_soak.py                    # real MiniLM
    HF_HUB_OFFLINE=1 python benchmarks/bench_soak.py --model tiny \\
        --texts 200000 --chunk 10000
    HF_HUB_OFFLINE=1 python benchmarks/bench_soak.py --model tiny --cache auto \\
        --cache-mib 64        # in-process cache with a 64 MiB budget
    HF_HUB_OFFLINE=1 python benchmarks/bench_soak.py --model tiny --keep
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _common import default_model

import skbert
from skbert import BertCLSVectorizer
from skbert.datasets import load_sentiment_sentences


def mib(n_bytes: float) -> float:
    return n_bytes / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def model_folder(name: str, scratch: Path) -> str:
    if name == "minilm":
        return default_model()
    if name == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from helpers import build_tiny_bert

        return str(build_tiny_bert(scratch / "tiny-bert"))
    return name


def stream(n_texts: int) -> list[str]:
    sentences, _ = load_sentiment_sentences("all")
    return [f"{sentences[i % len(sentences)]} #{i}" for i in range(n_texts)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="minilm", help="minilm, tiny or a folder")
    parser.add_argument("--texts", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cache", default="none", help="none, auto or a directory")
    parser.add_argument("--cache-mib", type=int, default=1024)
    parser.add_argument("--keep", action="store_true", help="keep every vector")
    args = parser.parse_args()

    import psutil
    import torch

    # Long review sentences exceed the tiny model's 64 tokens; that is expected.
    warnings.simplefilter("ignore", skbert.TruncationWarning)
    process = psutil.Process()
    with tempfile.TemporaryDirectory(prefix="skbert-soak-") as scratch:
        folder = model_folder(args.model, Path(scratch))
        texts = stream(args.texts)
        cache = None if args.cache == "none" else args.cache
        skbert.set_memory_cache_limit(args.cache_mib * 2**20)
        vectorizer = BertCLSVectorizer(
            model_name_or_path=folder,
            device="cpu",
            batch_size=args.batch_size,
            cache=cache,
            show_progress_bar=False,
        ).fit(["probe"])
        weights = sum(p.stat().st_size for p in Path(folder).glob("*.safetensors"))
        width = vectorizer.hidden_size_
        kept = np.empty((len(texts), width), dtype=np.float32) if args.keep else None
        print(
            f"skbert soak | {platform.machine()} | {torch.get_num_threads()} torch "
            f"threads | model {args.model} ({mib(weights):.1f} MiB of weights, "
            f"width {width}) | {len(texts):,} texts in chunks of {args.chunk:,} | "
            f"batch_size {args.batch_size} | cache {args.cache} | keep {args.keep}"
        )
        after_fit = mib(process.memory_info().rss)
        print(f"RSS after fit: {after_fit:.1f} MiB")
        print(
            f"{'chunk':>5} {'texts':>9} {'RSS MiB':>9} {'peak MiB':>9} {'texts/s':>8}"
        )
        rss, peaks = [], []
        started = time.perf_counter()
        for index, start in enumerate(range(0, len(texts), args.chunk)):
            chunk = texts[start : start + args.chunk]
            tick = time.perf_counter()
            vectors = vectorizer.transform(chunk)
            if kept is not None:
                kept[start : start + len(chunk)] = vectors
            rate = len(chunk) / (time.perf_counter() - tick)
            del vectors
            rss.append(mib(process.memory_info().rss))
            peaks.append(peak_rss_mib())
            print(
                f"{index:>5} {start + len(chunk):>9,} {rss[-1]:>9.1f} "
                f"{peaks[-1]:>9.1f} {rate:>8.0f}"
            )
        elapsed = time.perf_counter() - started

    warm = rss[0]
    growth = max(rss[1:], default=warm) - warm
    chunk_output = args.chunk * width * 4
    kept_bytes = len(texts) * width * 4 if args.keep else 0
    cache_budget = args.cache_mib * 2**20 if args.cache == "auto" else 0
    print(f"\n{len(texts):,} texts in {elapsed:.0f} s ({len(texts) / elapsed:.0f}/s)")
    print(f"baseline (RSS after the first chunk, model + runtime): {warm:.1f} MiB")
    print(f"one chunk's output: {mib(chunk_output):.1f} MiB")
    print(f"kept vectors: {mib(kept_bytes):.1f} MiB")
    print(f"embedding cache budget: {mib(cache_budget):.0f} MiB")
    print(
        f"RSS growth after the first chunk: {growth:+.1f} MiB "
        f"(minus kept vectors: {growth - mib(kept_bytes):+.1f} MiB); "
        f"peak RSS {max(peaks):.1f} MiB = baseline {max(peaks) - warm:+.1f} MiB"
    )
    if args.cache == "auto":
        print(f"embedding cache: {skbert.cache_info()}")


if __name__ == "__main__":
    main()
