"""Deployment figures: the exported artefact and ``skbert.runtime`` against
``joblib.load`` of the same pipeline.

A sentiment pipeline (all-MiniLM-L6-v2 with ``pooling="auto"``, then
``LogisticRegression``) is fitted on SST-2's training sentences, saved with
joblib and exported with ``skbert.export_onnx`` (float32 and int8). Then:

* cold start, in fresh processes: import + load + the first prediction (one
  sentence), for the runtime (in this environment and, with
  ``--runtime-python``, in one that holds only numpy, onnxruntime, tokenizers
  and skbert without dependencies) and for ``joblib.load`` + ``predict``;
* throughput in one process: ``predict`` on ``--n-texts`` SST-2 test
  sentences (the pipeline with its embedding cache off);
* accuracy on SST-2 dev and test: the Python pipeline, the float32 and the
  int8 artefact, and how often the artefacts agree with Python;
* sizes: the artefacts, the joblib file and, given their interpreters, the
  virtual environments.

Every timing is the median of ``--rounds`` rounds with the contenders
alternating; wall-clock and CPU time (this process's, or the child's) are
both reported, with the load average seen.

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_runtime.py --data-dir ../shared/data \\
        --runtime-python /tmp/rt-venv/bin/python \\
        --full-python /tmp/full-venv/bin/python --output /tmp/bench_runtime.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from _common import default_model, read_tsv

#: A fresh process: import, load, one prediction; its own split of the time.
COLD_START = """
import json, time
start = time.perf_counter()
{imports}
imported = time.perf_counter()
model = {load}({path!r})
loaded = time.perf_counter()
model.predict(["The food was delicious."])
done = time.perf_counter()
print(json.dumps([imported - start, loaded - imported, done - loaded]))
"""
#: How each contender imports and loads.
LOADERS = {
    "runtime": ("from skbert import runtime", "runtime.load"),
    "joblib": ("import joblib", "joblib.load"),
}


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def cold_start(python: str, code: str, env: dict[str, str]) -> dict[str, float]:
    """One fresh process: wall and CPU time of the whole process, and its own
    split into import, load and first prediction."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [python, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"child failed:\n{done.stderr}")
    imported, loaded, first = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall": wall,
        "cpu": cpu,
        "import": imported,
        "load": loaded,
        "first_prediction": first,
    }


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(row[key] for row in rows) for key in rows[0]}


def timed(call) -> dict[str, float]:
    start, cpu = time.perf_counter(), time.process_time()
    call()
    return {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}


def venv_size(python: str) -> int:
    """Bytes under the environment's prefix (``du``-style, files only)."""
    prefix = subprocess.run(
        [python, "-c", "import sys; print(sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return sum(
        entry.stat().st_size
        for entry in Path(prefix).rglob("*")
        if entry.is_file() and not entry.is_symlink()
    )


def accuracy(predict, texts, labels) -> tuple[float, np.ndarray]:
    predicted = np.asarray(predict(texts))
    return float(np.mean(predicted == labels)), predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n-texts", type=int, default=500)
    parser.add_argument("--runtime-python", default=None)
    parser.add_argument("--full-python", default=None)
    parser.add_argument("--output", default=None, help="write the figures as JSON")
    args = parser.parse_args()

    import joblib
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from skbert import BertCLSVectorizer, TruncationWarning, export_onnx, runtime

    warnings.simplefilter("ignore", TruncationWarning)
    data = Path(args.data_dir)
    train, train_y = read_tsv(data / "sst2_sent_train.tsv")
    dev, dev_y = read_tsv(data / "sst2_dev.tsv")
    test, test_y = read_tsv(data / "sst2_test.tsv")
    model_path = args.model or default_model()
    figures: dict = {"load_average": {"start": load_average()}, "model": model_path}

    print(f"fitting on {len(train)} SST-2 sentences ...", flush=True)
    pipeline = make_pipeline(
        BertCLSVectorizer(model_name_or_path=model_path, pooling="auto", cache=None),
        LogisticRegression(C=2.0, max_iter=2000),
    ).fit(train, train_y)
    folder = Path(tempfile.mkdtemp(prefix="skbert-bench-runtime-"))
    joblib_file = folder / "sentiment.joblib"
    joblib.dump(pipeline, joblib_file)
    reports = {}
    for name, quantize in (("float32", False), ("int8", True)):
        start = time.perf_counter()
        report = export_onnx(
            pipeline, folder / f"sentiment-{name}.onnx", quantize=quantize
        )
        reports[name] = report
        print(report, f"\n  ({time.perf_counter() - start:.1f} s)", flush=True)
    figures["sizes"] = {
        "joblib": joblib_file.stat().st_size,
        **{f"onnx_{name}": report.n_bytes for name, report in reports.items()},
    }

    # -- accuracy --------------------------------------------------------------
    contenders = {"python": pipeline.predict}
    for name, report in reports.items():
        contenders[f"onnx_{name}"] = runtime.load(report.path).predict
    figures["accuracy"] = {}
    for split, texts, labels in (("dev", dev, dev_y), ("test", test, test_y)):
        found = {}
        for name, predict in contenders.items():
            score, predicted = accuracy(predict, texts, labels)
            found[name] = predicted
            figures["accuracy"].setdefault(name, {})[split] = score
        for name in reports:
            agreement = float(np.mean(found[f"onnx_{name}"] == found["python"]))
            figures["accuracy"][f"onnx_{name}"][f"{split}_agreement"] = agreement
    print(json.dumps(figures["accuracy"], indent=1), flush=True)

    # -- throughput --------------------------------------------------------------
    texts = test[: args.n_texts]
    runs = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, predict in contenders.items():
            runs[name].append(timed(lambda predict=predict: predict(texts)))
    figures["throughput"] = {
        name: {
            **medians(rows),
            "texts_per_second": len(texts) / medians(rows)["wall"],
            "n_texts": len(texts),
        }
        for name, rows in runs.items()
    }
    figures["load_average"]["after_throughput"] = load_average()
    print(json.dumps(figures["throughput"], indent=1), flush=True)

    # -- cold start ------------------------------------------------------------
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    children = {
        "runtime": (sys.executable, "runtime", reports["float32"].path),
        "runtime_int8": (sys.executable, "runtime", reports["int8"].path),
        "joblib": (sys.executable, "joblib", joblib_file),
    }
    if args.runtime_python:
        children["runtime_minimal_venv"] = (
            args.runtime_python,
            "runtime",
            reports["float32"].path,
        )
    starts = {name: [] for name in children}
    for _ in range(args.rounds):
        for name, (python, loader, path) in children.items():
            imports, load = LOADERS[loader]
            code = COLD_START.format(imports=imports, load=load, path=str(path))
            starts[name].append(cold_start(python, code, env))
    figures["cold_start"] = {name: medians(rows) for name, rows in starts.items()}
    figures["load_average"]["end"] = load_average()
    print(json.dumps(figures["cold_start"], indent=1), flush=True)

    # -- environments ------------------------------------------------------------
    figures["venv_bytes"] = {}
    for name, python in (("runtime", args.runtime_python), ("full", args.full_python)):
        if python:
            figures["venv_bytes"][name] = venv_size(python)
    print(json.dumps({"sizes": figures["sizes"], "venv_bytes": figures["venv_bytes"]}))
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
