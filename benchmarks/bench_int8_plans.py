"""How close each int8 plan of ``backend="onnx", quantize=True`` comes to float32.

The float32 graph skbert exports for ``--model`` is quantized three ways (the
plans ``quantize=True`` tries in turn: every weight product; all but the
feed-forward down-projections; the attention projections only), and each int8
graph's mean-pooled states are compared with the float32 graph's on skbert's
three probe texts and on ``--n`` sentences of ``--data`` (cosine: the probes',
then the minimum and median over the sentences).

    HF_HUB_OFFLINE=1 python benchmarks/bench_int8_plans.py \\
        --model /path/to/all-mpnet-base-v2 --n 60
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from _common import read_tsv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default="../shared/data/mr.tsv")
    parser.add_argument("--n", type=int, default=60)
    args = parser.parse_args()

    import onnxruntime as ort

    from skbert import BertCLSVectorizer
    from skbert._encoding import onnx as backend

    with tempfile.TemporaryDirectory() as home:
        os.environ["SKBERT_HOME"] = home
        fitted = BertCLSVectorizer(
            model_name_or_path=args.model, backend="onnx", max_length=128
        ).fit(["probe"])
        loaded = fitted.model_.torch_model
        (fused,) = Path(home).rglob("model.onnx")
        texts = [*backend._PROBE_TEXTS, *read_tsv(args.data)[0][: args.n]]
        batch = backend._probe_batch(loaded, texts)
        feeds = {name: tensor.numpy() for name, tensor in batch.items()}
        mask = feeds["attention_mask"][..., None]

        def pooled(path: Path) -> np.ndarray:
            session = ort.InferenceSession(
                str(path), providers=["CPUExecutionProvider"]
            )
            names = {item.name for item in session.get_inputs()}
            states = session.run(None, {k: v for k, v in feeds.items() if k in names})[
                0
            ]
            return (states * mask).sum(1) / mask.sum(1)

        reference = pooled(fused)
        down, up = backend._weight_products(fused)
        plans = {
            "every product": [],
            "all but the down-projections": down,
            "attention projections only": down + up,
        }
        probes = len(backend._PROBE_TEXTS)
        for name, exclude in plans.items():
            target = Path(home) / "plan.onnx"
            backend._quantize(fused, target, exclude)
            found = pooled(target)
            cosine = (found * reference).sum(1) / (
                np.linalg.norm(found, axis=1) * np.linalg.norm(reference, axis=1)
            )
            print(
                f"{name:30s} probes {np.round(cosine[:probes], 3)}  "
                f"sentences min {cosine[probes:].min():.3f} "
                f"median {np.median(cosine[probes:]):.4f}"
            )


if __name__ == "__main__":
    main()
