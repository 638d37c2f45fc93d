"""Throughput: skbert vs sentence-transformers vs a plain transformers loop.

Every contender encodes the same texts with the same checkpoint in this one
process, in alternating order over several rounds; the median time of each
gives texts/s and the ratio to sentence-transformers (wall-clock and process
CPU time, with the spread over rounds). Vectors are mean-pooled
and L2-normalized (all-MiniLM-L6-v2's own pooling), so every contender's
output is compared to sentence-transformers' (max abs difference, min cosine).
Peak memory is the largest RSS increase seen while a contender runs. The
fraction of the CPU's peak is the model's floating-point work on the real
tokens (projections, feed-forward and attention of every layer) divided by
the CPU time, over the peak FLOP/s of the cores used (``--peak-gflops``, else
measured: the float32 rate of a large matrix product on one thread in ONNX
Runtime, times the cores; without ONNX Runtime, cores x clock x fp32 FLOP per
cycle: 64 with two 512-bit FMA pipes, as AMD Zen 5 and Intel's AVX-512 server
cores have, else 32). Rows with int8 in their name also get the fraction of
the int8 peak (``--peak-int8-gops``, else measured the same way on ONNX
Runtime's dynamically quantized int8 matrix product).

``--peers`` adds other fast engines, built outside the timing from the same
checkpoint (exports cached in ``--peer-cache``): sentence-transformers' ONNX
and OpenVINO backends, their optimized and int8 variants, and fastembed
(``benchmarks/_peers.py`` says what each row is; they need their packages,
see there).

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_throughput.py
    HF_HUB_OFFLINE=1 python benchmarks/bench_throughput.py --device cuda \\
        --dtype bfloat16 --model-size base --max-length 512 --n 20000
    HF_HUB_OFFLINE=1 python benchmarks/bench_throughput.py --peers all
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
from _common import default_model, load_texts, read_tsv
from _peers import LEVELS, parse_peers, peer_contenders, peer_versions


def read_texts(path: str, n: int, seed: int = 0) -> list[str]:
    """``n`` texts of the TSV file ``path`` (``shipped``: skbert's own UCI
    sentences, repeated with a number when ``n`` is larger), shuffled."""
    if path == "shipped":
        texts, _ = load_texts(None, "all")
        texts = [
            f"{text} ({i // len(texts)})"
            for i, text in enumerate(texts * (n // len(texts) + 1))
        ]
    else:
        texts, _ = read_tsv(path)
    rng = np.random.default_rng(seed)
    return [texts[i] for i in rng.permutation(len(texts))[:n]]


class PeakRSS:
    """Largest resident-memory increase while the block runs (sampled), and
    the GPU's mean utilisation when ``gpu`` (percent, from NVML)."""

    def __init__(self, gpu: bool = False) -> None:
        import psutil

        self.process = psutil.Process()
        self.gpu = gpu
        self.utilisation: list[float] = []

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            if self.gpu:
                import torch

                try:
                    self.utilisation.append(float(torch.cuda.utilization()))
                except Exception:  # no NVML: say nothing rather than guess
                    self.gpu = False
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()

    @property
    def mib(self) -> float:
        return (self.peak - self.start) / 2**20


#: Random BERTs of known shapes, for machines without the real checkpoints.
SHAPES = {
    "base": {},  # bert-base-uncased: 12 layers of 768
    "minilm": {  # all-MiniLM-L6-v2: 6 layers of 384
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "num_attention_heads": 12,
        "intermediate_size": 1536,
    },
}


def random_model(folder: Path, tokenizer_from: str, shape: str) -> str:
    """A random BERT of ``shape`` (``SHAPES``) with the tokenizer of
    ``tokenizer_from``: as fast as the real one, without its weights."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(**SHAPES[shape])).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(folder)
    return str(folder)


def plain_transformers(model_path: str, device: str, dtype, max_length: int, batch):
    """The loop users write by hand: sort by length, pad per batch, mean-pool."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path, dtype=dtype).to(device).eval()

    def encode(texts: list[str]) -> np.ndarray:
        lengths = [
            len(ids)
            for ids in tokenizer(texts, truncation=True, max_length=max_length)[
                "input_ids"
            ]
        ]
        order = np.argsort(lengths)[::-1]
        out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch):
                rows = order[start : start + batch]
                enc = tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                ).to(device)
                states = model(**enc).last_hidden_state.float()
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, dim=1)
                out[rows] = pooled.cpu().numpy()
        return out

    return encode


def contenders(args, model_path: str) -> dict[str, Callable[[list[str]], np.ndarray]]:
    import torch
    from sentence_transformers import SentenceTransformer

    from skbert import BertCLSVectorizer

    dtype = {
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }[args.dtype]
    st_dtype = {
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
    }[args.st_dtype or args.dtype]
    st = SentenceTransformer(
        model_path, device=args.device, model_kwargs={"dtype": st_dtype}
    )
    st.max_seq_length = args.max_length
    has_normalize = any(type(m).__name__ == "Normalize" for m in st)
    runs = {
        "sentence-transformers": lambda texts: st.encode(
            texts,
            batch_size=args.batch_size,
            normalize_embeddings=not has_normalize,
            convert_to_numpy=True,
        ),
        "transformers loop": plain_transformers(
            model_path, args.device, dtype, args.max_length, args.batch_size
        ),
    }

    def skbert_run(**params):
        params = {"batch_size": args.batch_size, "dtype": args.dtype, **params}
        vectorizer = BertCLSVectorizer(
            model_name_or_path=model_path,
            pooling="mean",
            normalize=True,
            max_length=args.max_length,
            cache=None,
            device=args.device,
            **params,
        ).fit(["probe"])
        return vectorizer.transform

    runs["skbert torch"] = skbert_run()
    if args.dtype != "float32":  # the precision's gain, side by side
        runs["skbert torch, float32"] = skbert_run(dtype="float32")
    if args.batch_size < 128:
        runs["skbert torch, batch 128"] = skbert_run(batch_size=128)
    if args.max_batch_tokens:
        runs["skbert torch, token budget"] = skbert_run(
            max_batch_tokens=args.max_batch_tokens
        )
    if args.onnx and args.device == "cpu":
        runs["skbert onnx"] = skbert_run(backend="onnx", dtype="float32")
        runs["skbert onnx int8"] = skbert_run(
            backend="onnx", quantize=True, dtype="float32"
        )
        if importlib.util.find_spec("openvino") is not None:
            runs["skbert openvino"] = skbert_run(backend="openvino", dtype="float32")
            runs["skbert openvino bf16"] = skbert_run(
                backend="openvino", dtype="bfloat16"
            )
            if importlib.util.find_spec("nncf") is not None:  # calibrated int8
                runs["skbert openvino int8"] = skbert_run(
                    backend="openvino", quantize=True, dtype="float32"
                )
                if args.dtype == "bfloat16":
                    runs["skbert openvino int8 bf16"] = skbert_run(
                        backend="openvino", quantize=True, dtype="bfloat16"
                    )
    if args.peers:
        runs.update(
            peer_contenders(
                args.peers,
                model_path,
                cache=Path(args.peer_cache),
                max_length=args.max_length,
                batch_size=args.batch_size,
                levels=args.peer_levels,
                int8_config=args.peer_int8_config,
                calibration_data=args.peer_calibration_data,
                calibration_samples=args.peer_calibration_samples,
                notes=args.peer_notes,
                failures=args.peer_failures,
            )
        )
    return runs


def spread(samples: dict[str, list[float]], name: str) -> str:
    """The lowest and highest ratio of a round's ST time to this contender's."""
    ratios = [
        st / own
        for st, own in zip(samples["sentence-transformers"], samples[name], strict=True)
    ]
    return f"{min(ratios):.2f}-{max(ratios):.2f}"


def model_flops(model_path: str, texts: list[str], max_length: int) -> float:
    """Floating-point operations of one forward pass over ``texts`` (real
    tokens only): per layer and text of L tokens, 8 L H^2 for the four
    attention projections, 4 L H I for the feed-forward and 4 L^2 H for the
    attention scores and their weighted sum."""
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(model_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    lengths = [
        len(ids)
        for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    ]
    h, i = config.hidden_size, config.intermediate_size
    per_layer = sum(8 * n * h * h + 4 * n * h * i + 4 * n * n * h for n in lengths)
    return float(config.num_hidden_layers * per_layer)


def flop_per_cycle() -> int:
    """fp32 FLOP per cycle and core: 64 for full-width AVX-512 (two 512-bit
    FMA pipes: AMD Zen 5, cpu family 26, and Intel server cores), else 32 (two
    256-bit FMA pipes: AVX2 cores and Zen 4, whose AVX-512 is double-pumped)."""
    info = Path("/proc/cpuinfo").read_text()
    fields = dict(line.split(":", 1) for line in info.splitlines()[:30] if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    if " avx512f " not in f" {fields.get('flags', '')} ":
        return 32
    if fields.get("vendor_id") == "AuthenticAMD":
        return 64 if int(fields.get("cpu family", 0)) >= 26 else 32
    return 64


def estimated_peak_gflops(cores: int) -> float:
    """cores x clock x fp32 FLOP per cycle (:func:`flop_per_cycle`), at the
    clock /proc/cpuinfo reports (a virtual machine's base clock: boost
    clocks make the true peak higher, so a fraction near 100% is possible)."""
    mhz = 0.0
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("cpu MHz"):
            mhz = float(line.split(":")[1])
            break
    return cores * mhz / 1000 * flop_per_cycle()


def measured_peak_gflops(cores: int, size: int = 2048) -> float | None:
    """cores x the float32 GFLOP/s of a ``size``-cubed matrix product on one
    thread in ONNX Runtime (MLAS), the best of 7 runs: the rate this machine's
    best float32 kernels reach, a physical bound for any float32 engine
    (``None`` without ONNX Runtime)."""
    try:
        from onnx import helper, numpy_helper
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((size, size), dtype=np.float32)
    node = helper.make_node("MatMul", ["x", "w"], ["y"])
    return _matmul_peak(cores, size, node, [numpy_helper.from_array(weight, "w")])


def measured_int8_peak_gops(cores: int, size: int = 2048) -> float | None:
    """cores x the int8 GOP/s (multiply-adds count 2) of a ``size``-cubed
    ``DynamicQuantizeMatMul`` on one thread in ONNX Runtime, the best of 7
    runs. That is the kernel a dynamically quantized model runs: ONNX
    Runtime's quantizer (skbert's ``quantize=True``, sentence-transformers'
    ``export_dynamic_quantized_onnx_model``) writes DynamicQuantizeLinear +
    MatMulInteger for each MatMul with a constant weight, which the session
    fuses into this op: float32 activations quantized to uint8 on the fly
    (``size``-squared work, negligible) times int8 weights (u8 x s8, on the
    VNNI or AMX instructions where the CPU has them). ``None`` without ONNX
    Runtime."""
    try:
        from onnx import helper, numpy_helper
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, (size, size), dtype=np.int8)
    scale = np.full(size, 0.01, dtype=np.float32)
    node = helper.make_node(
        "DynamicQuantizeMatMul", ["x", "w", "scale"], ["y"], domain="com.microsoft"
    )
    initializers = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(scale, "scale"),
    ]
    return _matmul_peak(cores, size, node, initializers)


def _matmul_peak(cores: int, size: int, node, initializers: list) -> float | None:
    """cores x 2 size^3 over the best of 7 single-thread runs of ``node``,
    a float32 ``x`` (size x size) times its constant ``initializers``."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    graph = helper.make_graph(
        [node],
        "peak",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])],
        initializers,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    session.run(None, {"x": x})
    best = min(_timed(lambda: session.run(None, {"x": x})) for _ in range(7))
    return cores * 2 * size**3 / best / 1e9


def _timed(call: Callable[[], object]) -> float:
    start = time.process_time()
    call()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default="../shared/data/mr.tsv",
        help="a text<TAB>label file, or 'shipped' for skbert's own sentences",
    )
    parser.add_argument(
        "--st-dtype",
        default=None,
        choices=["float32", "float16", "bfloat16"],
        help="sentence-transformers' precision (default: --dtype)",
    )
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="with --model-size random-*: the folder whose tokenizer to use",
    )
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-batch-tokens", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--dtype", default="float32", choices=["float32", "float16", "bfloat16"]
    )
    parser.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2")
    parser.add_argument(
        "--model-size",
        choices=["minilm", "base", "random-minilm", "random-base"],
        default="minilm",
        help="base or random-base: a random bert-base-sized BERT; random-minilm: "
        "a random BERT of all-MiniLM-L6-v2's shape",
    )
    parser.add_argument("--no-onnx", dest="onnx", action="store_false")
    parser.add_argument(
        "--only",
        type=lambda value: [name.strip() for name in value.split(",")],
        default=None,
        help="comma-separated contender names to time (sentence-transformers, "
        "the reference, always is); default: every contender",
    )
    parser.add_argument(
        "--peak-gflops",
        type=float,
        default=None,
        help="the cores' peak fp32 GFLOP/s (default: measured, see "
        "measured_peak_gflops; else estimated from the clock)",
    )
    parser.add_argument(
        "--peak-int8-gops",
        type=float,
        default=None,
        help="the cores' peak int8 GOP/s, for the int8 rows (default: measured, "
        "see measured_int8_peak_gops)",
    )
    parser.add_argument(
        "--peers",
        type=parse_peers,
        default=[],
        help="comma-separated peer engines to add, or 'all': st-onnx, "
        "st-onnx-int8, st-openvino, st-openvino-int8, fastembed (CPU only; "
        "see benchmarks/_peers.py)",
    )
    parser.add_argument(
        "--peer-cache",
        default=str(Path(tempfile.gettempdir()) / "peers-export"),
        help="where the peers' exports are written once and reused",
    )
    parser.add_argument(
        "--peer-levels",
        type=lambda text: [level for level in text.split(",") if level],
        default=["O1", "O2", "O3"],
        help=f"st-onnx: the optimization levels to add as rows, of {','.join(LEVELS)} "
        "('' for none; O4 is float16, made for GPUs)",
    )
    parser.add_argument(
        "--peer-int8-config",
        default="avx512_vnni",
        choices=["arm64", "avx2", "avx512", "avx512_vnni"],
        help="st-onnx-int8: the dynamic quantization configuration",
    )
    parser.add_argument(
        "--peer-calibration-data",
        default="../shared/data/sst2_train.tsv",
        help="st-openvino-int8: the text<TAB>label file to calibrate on (the "
        "default holds the SST-2 sentences sentence-transformers calibrates on)",
    )
    parser.add_argument(
        "--peer-calibration-samples",
        type=int,
        default=300,
        help="st-openvino-int8: the number of calibration texts (optimum-intel's "
        "default: 300)",
    )
    args = parser.parse_args()
    unknown = set(args.peer_levels) - set(LEVELS)
    if unknown:
        parser.error(f"--peer-levels: unknown {', '.join(sorted(unknown))}")
    if args.peers and args.device != "cpu":
        parser.error("--peers runs on the CPU only")
    args.peer_notes, args.peer_failures = [], []

    import torch

    model_path = args.model or default_model()
    tmp = tempfile.TemporaryDirectory()
    if args.model_size in ("base", "random-base", "random-minilm"):
        shape = "minilm" if args.model_size == "random-minilm" else "base"
        tokenizer = args.tokenizer or args.model or default_model()
        model_path = random_model(Path(tmp.name) / shape, tokenizer, shape)
    texts = read_texts(args.data, args.n)
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()},"
        f" {torch.get_num_threads()} torch threads, device {args.device}"
    )
    if args.device.startswith("cuda"):
        print(f"gpu: {torch.cuda.get_device_name()}")
    print(
        "versions: "
        + ", ".join(
            f"{name} {version(name)}"
            for name in (
                "skbert",
                "torch",
                "transformers",
                "sentence-transformers",
                "onnxruntime",
            )
        )
    )
    if args.peers:
        print(f"peer versions: {peer_versions()}")
    print(
        f"model: {model_path}\ntexts: {len(texts)} from {args.data}, max_length "
        f"{args.max_length}, batch {args.batch_size}, dtype {args.dtype}"
    )

    runs = contenders(args, model_path)
    if args.only:
        unknown = set(args.only) - set(runs)
        if unknown:
            parser.error(f"--only: no contender {', '.join(sorted(unknown))}")
        keep = {"sentence-transformers", *args.only}
        runs = {name: run for name, run in runs.items() if name in keep}
    work = model_flops(model_path, texts, args.max_length)
    cores = torch.get_num_threads()
    measured = None if args.peak_gflops else measured_peak_gflops(cores)
    peak_gflops = args.peak_gflops or measured or estimated_peak_gflops(cores)
    how = "given" if args.peak_gflops else "measured" if measured else "estimated"
    print(
        f"peak: {peak_gflops:.0f} GFLOP/s ({how}; the clock's estimate is "
        f"{estimated_peak_gflops(cores):.0f})"
    )
    peak_int8 = args.peak_int8_gops or measured_int8_peak_gops(cores)
    if peak_int8:
        how = "given" if args.peak_int8_gops else "measured"
        print(
            f"int8 peak: {peak_int8:.0f} GOP/s ({how}; {peak_int8 / peak_gflops:.1f}x "
            "the float32 peak)"
        )
    print(f"model work: {work / 1e9:.1f} GFLOP for the texts")
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    peaks: dict[str, float] = {name: 0.0 for name in runs}
    busy: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, np.ndarray] = {}
    for run in runs.values():  # warm-up (ONNX export, lazy init)
        run(texts[:64])
    for round_ in range(args.rounds):
        order = list(runs) if round_ % 2 == 0 else list(runs)[::-1]
        for name in order:
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            with PeakRSS(gpu=args.device.startswith("cuda")) as peak:
                start, start_cpu = time.perf_counter(), time.process_time()
                outputs[name] = np.asarray(runs[name](texts))
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
            peaks[name] = max(peaks[name], peak.mib)
            if peak.utilisation:
                busy[name].append(statistics.mean(peak.utilisation))
    reference = outputs["sentence-transformers"]
    base = statistics.median(times["sentence-transformers"])
    base_cpu = statistics.median(cpu["sentence-transformers"])
    width = max(26, *(len(name) for name in runs))
    print(
        f"\n{'contender':{width}} {'texts/s':>8} {'vs ST':>7} {'(range)':>13} "
        f"{'CPU vs ST':>10} {'(range)':>13} {'% peak':>7} {'% i8pk':>7} "
        f"{'max|diff|':>10} {'min cos':>8} {'peak RSS+':>10}"
    )
    for name in runs:
        median = statistics.median(times[name])
        out = outputs[name]
        cosine = (out * reference).sum(1) / (
            np.linalg.norm(out, axis=1) * np.linalg.norm(reference, axis=1)
        )
        median_cpu = statistics.median(cpu[name])
        core_flops = peak_gflops * 1e9 / torch.get_num_threads()
        int8_fraction = ""
        if peak_int8 and "int8" in name:
            core_ops = peak_int8 * 1e9 / torch.get_num_threads()
            int8_fraction = f"{100 * work / median_cpu / core_ops:6.1f}%"
        print(
            f"{name:{width}} {len(texts) / median:8.0f} {base / median:6.2f}x "
            f"{spread(times, name):>13} "
            f"{base_cpu / median_cpu:9.2f}x {spread(cpu, name):>13} "
            f"{100 * work / median_cpu / core_flops:6.1f}% {int8_fraction:>7} "
            f"{np.abs(out - reference).max():10.2e} {cosine.min():8.4f} "
            f"{peaks[name]:8.0f} MiB"
        )
    print(
        "(vs ST: ratio of median wall-clock times; CPU vs ST: ratio of median "
        "process CPU times, steadier when other jobs share the machine; (range): "
        "the lowest and highest ratio of a round to the same round's ST; % peak: "
        "model FLOP / process CPU s over one core's peak; % i8pk: the same over "
        "one core's int8 peak, for int8 rows; min cos: lowest cosine to "
        "sentence-transformers' vectors)"
    )
    for note in args.peer_notes:
        print(f"peer: {note}")
    for failure in args.peer_failures:
        print(f"peer left out: {failure}")
    if any(busy.values()):
        print(
            "GPU utilisation (mean of NVML samples while running): "
            + "; ".join(f"{k} {statistics.median(v):.0f}%" for k, v in busy.items())
        )
    print(
        f"(median of {args.rounds} alternating rounds; wall s: "
        + "; ".join(f"{k} " + "/".join(f"{t:.2f}" for t in v) for k, v in times.items())
        + ")"
    )


if __name__ == "__main__":
    main()
