"""ONNX Runtime options, each measured on the graphs skbert exports.

The float32 and int8 graphs of the model (exported by skbert into a fresh
``$SKBERT_HOME``) run the same length-sorted batches of the benchmark texts
under several session settings, in alternating order over several rounds;
each is reported as the median process-CPU and wall time relative to skbert's
own settings (``ORT_ENABLE_ALL`` without the fusions of
``skbert.runtime._ort.SESSION_DISABLED_OPTIMIZERS``, one intra-op thread per
core, memory arena on). "ONNX Runtime's own fusions" runs the same graph with
ONNX Runtime's defaults, which fuse ``SkipLayerNormalization`` and ``BiasGelu``
again. The ``transform`` rows measure what skbert adds around the session
(tokenizing, batching, pooling: ``transform`` minus the session's own time).

    HF_HUB_OFFLINE=1 python benchmarks/bench_onnx_options.py --n 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import default_model
from bench_throughput import read_texts


def batches(tokenizer, texts: list[str], size: int, max_length: int) -> list[dict]:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = []
    for start in range(0, len(order), size):
        encoded = tokenizer(
            [texts[i] for i in order[start : start + size]],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
        )
        out.append({name: value.astype(np.int64) for name, value in encoded.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/mr.tsv")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    home = tempfile.TemporaryDirectory()
    os.environ["SKBERT_HOME"] = home.name
    import onnxruntime as ort
    import torch
    from transformers import AutoTokenizer

    from skbert import BertCLSVectorizer
    from skbert.runtime._ort import SESSION_DISABLED_OPTIMIZERS

    model = default_model()
    texts = read_texts(args.data, args.n)
    for quantize in (False, True):  # export both graphs
        BertCLSVectorizer(
            model_name_or_path=model, backend="onnx", quantize=quantize, cache=None
        ).fit(["probe"])
    (fused,) = Path(home.name).rglob("model.onnx")
    int8 = fused.with_name("model-int8.onnx")
    feeds = batches(
        AutoTokenizer.from_pretrained(model), texts, args.batch_size, args.max_length
    )
    threads = torch.get_num_threads()

    def session(path: Path, **settings) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.get("threads", threads)
        options.graph_optimization_level = settings.get(
            "level", ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        )
        options.enable_cpu_mem_arena = settings.get("arena", True)
        if "spin" in settings:
            options.add_session_config_entry(
                "session.intra_op.allow_spinning", settings["spin"]
            )
        disabled = settings.get("disabled", SESSION_DISABLED_OPTIMIZERS)
        return ort.InferenceSession(
            str(path),
            options,
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(disabled),
        )

    variants = {}
    for name, path in (("float32", fused), ("int8", int8)):
        variants[f"{name}: skbert's settings"] = session(path)
        variants[f"{name}: ONNX Runtime's own fusions"] = session(path, disabled=())
        variants[f"{name}: memory arena off"] = session(path, arena=False)
        variants[f"{name}: basic graph optimizations"] = session(
            path, level=ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        )
        variants[f"{name}: no thread spinning"] = session(path, spin="0")
        variants[f"{name}: 1 thread"] = session(path, threads=1)
    transforms = {
        precision: BertCLSVectorizer(
            model_name_or_path=model,
            backend="onnx",
            quantize=precision == "int8",
            pooling="mean",
            max_length=args.max_length,
            batch_size=args.batch_size,
            cache=None,
        ).fit(["probe"])
        for precision in ("float32", "int8")
    }

    def run(sess: ort.InferenceSession) -> None:
        names = {item.name for item in sess.get_inputs()}
        for feed in feeds:
            sess.run(None, {name: feed[name] for name in names if name in feed})

    contenders = {name: (lambda s=sess: run(s)) for name, sess in variants.items()}
    for precision, fitted in transforms.items():
        contenders[
            f"{precision}: skbert transform (session + tokenizing + pooling)"
        ] = lambda fitted=fitted: fitted.transform(texts)
    wall = {name: [] for name in contenders}
    cpu = {name: [] for name in contenders}
    names = list(contenders)
    for name in names:  # warm-up
        contenders[name]()
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            w, c = time.perf_counter(), time.process_time()
            contenders[name]()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    print(
        f"{len(texts)} texts, batch {args.batch_size}, max_length {args.max_length}, "
        f"{threads} threads, {args.rounds} rounds; load {os.getloadavg()[0]:.1f}"
    )
    print("| variant | CPU s (median, range) | wall s (median) | CPU vs skbert's |")
    print("|---|---:|---:|---:|")
    for name in names:
        base = "float32" if name.startswith("float32") else "int8"
        reference = statistics.median(cpu[f"{base}: skbert's settings"])
        print(
            f"| {name} | {statistics.median(cpu[name]):.2f} "
            f"({min(cpu[name]):.2f}-{max(cpu[name]):.2f}) | "
            f"{statistics.median(wall[name]):.2f} | "
            f"{reference / statistics.median(cpu[name]):.2f}x |"
        )


if __name__ == "__main__":
    main()
