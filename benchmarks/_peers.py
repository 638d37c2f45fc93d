"""Peer contenders for ``bench_throughput.py --peers`` (issue 24).

sentence-transformers' own fast backends (ONNX Runtime through optimum-onnx,
OpenVINO through optimum-intel) and fastembed, each built here, outside the
timed loop, from the same checkpoint folder. Every export is written once
into ``cache`` (``--peer-cache``) and reused by later runs; delete a model's
folder there to export it again (after upgrading an exporter, say).

Peers (``--peers``, comma-separated, or ``all``):

* ``st-onnx``: ``SentenceTransformer(..., backend="onnx")``, float32, plus
  the files ``export_optimized_onnx_model`` writes for each level of
  ``levels`` (O1: basic graph optimizations; O2: transformer fusions; O3: O2
  with the approximate GELU; O4: O3 in float16, meant for GPUs).
* ``st-onnx-int8``: ``export_dynamic_quantized_onnx_model`` with
  ``int8_config`` (``avx512_vnni`` by default): int8 weights, activations
  quantized on the fly.
* ``st-openvino``: ``backend="openvino"`` in float32 (the inference
  precision pinned to f32) and again with OpenVINO's default precision, which
  is bf16 on CPUs with AVX512-BF16 or AMX.
* ``st-openvino-int8``: ``export_static_quantized_openvino_model`` (int8
  weights and activations, calibrated on ``calibration_samples`` texts of a
  local copy of ``calibration_data``: no hub needed), and int8 weight-only
  compression (optimum-intel's ``load_in_8bit``), both at OpenVINO's default
  precision for what stays in floating point.
* ``fastembed``: ``TextEmbedding`` on the ``st-onnx`` float32 export,
  registered with ``add_custom_model`` (mean pooling, normalized) and loaded
  with ``specific_model_path``, its truncation set to ``max_length`` through
  the ``tokenizer_config.json`` of its folder.

Every contender is CPU only, takes the texts, encodes them with the same
``max_length`` and ``batch_size`` and returns float32 L2-normalized vectors.
The imports are lazy: without these packages installed the benchmark runs as
before, and a peer whose package is missing or whose export fails is left out
with the reason printed (``failures``).

Installing (checked 2026-12-06): no release of optimum-onnx installs beside
transformers 5 (0.1.0 wants ``transformers<4.58``, while sentence-transformers
6 wants ``>=5``), and optimum-intel 2.2.0 wants ``transformers<5.6`` and
``huggingface-hub<1.22`` (with transformers 5.25 its import fails). What runs
every peer here: transformers 5.5.4, huggingface-hub 1.21.0, tokenizers
0.22.2, sentence-transformers 6.3.0, optimum 2.3.0, optimum-intel 2.2.0,
openvino 2026.4.1, nncf, datasets, fastembed 0.9.1 (``--no-deps``: it wants
``huggingface-hub<2``) and optimum-onnx from the ``transformers-v5`` branch of
its repository (``--no-deps``), with :func:`_optimum_onnx_mask_fix` for its
export.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

PEERS = ("st-onnx", "st-onnx-int8", "st-openvino", "st-openvino-int8", "fastembed")
LEVELS = ("O1", "O2", "O3", "O4")
PACKAGES = (
    "optimum",
    "optimum-onnx",
    "optimum-intel",
    "openvino",
    "nncf",
    "fastembed",
    "datasets",
)

Encode = Callable[[list[str]], np.ndarray]


def parse_peers(text: str | None) -> list[str]:
    """The peers of ``--peers`` (``all``: every one), in :data:`PEERS` order."""
    if not text:
        return []
    names = {name.strip() for name in text.split(",") if name.strip()}
    if "all" in names:
        return list(PEERS)
    unknown = names - set(PEERS)
    if unknown:
        raise SystemExit(
            f"--peers: unknown {', '.join(sorted(unknown))} (known: "
            f"{', '.join(PEERS)}, all)"
        )
    return [name for name in PEERS if name in names]


def peer_versions() -> str:
    """``name version`` of each peer package installed."""
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(found) or "no peer package installed"


def peer_contenders(
    peers: list[str],
    model_path: str,
    *,
    cache: Path,
    max_length: int,
    batch_size: int,
    levels: list[str],
    int8_config: str,
    calibration_data: str,
    calibration_samples: int,
    notes: list[str],
    failures: list[str],
) -> dict[str, Encode]:
    """Name -> encode function of every row of ``peers``; what each built
    goes to ``notes``, what could not be built to ``failures``."""
    _check_mean_pooling(model_path)
    folder = cache / _slug(model_path)
    folder.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Encode] = {}

    def attempt(name: str, build: Callable[[], Encode]) -> None:
        try:
            runs[name] = build()
        except Exception as error:  # a peer that cannot run is reported, not fatal
            message = f"{name}: {type(error).__name__}: {error}".splitlines()[0]
            failures.append(message[:400])
            print(f"peer left out: {message[:400]}", flush=True)

    onnx_dir = folder / "st-onnx"
    if {"st-onnx", "st-onnx-int8", "fastembed"} & set(peers):
        try:
            _export_onnx(model_path, onnx_dir)
        except Exception as error:
            message = f"ONNX export: {type(error).__name__}: {error}".splitlines()[0]
            failures.append(message[:400])
            print(f"peers left out: {message[:400]}", flush=True)
            peers = [
                p for p in peers if p not in ("st-onnx", "st-onnx-int8", "fastembed")
            ]

    def st_run(path: Path, backend: str, **model_kwargs) -> Encode:
        return _st_encode(path, backend, max_length, batch_size, model_kwargs)

    if "st-onnx" in peers:
        attempt(
            "st onnx", lambda: st_run(onnx_dir, "onnx", file_name="onnx/model.onnx")
        )
        for level in levels:
            attempt(
                f"st onnx {level}",
                lambda level=level: st_run(
                    onnx_dir,
                    "onnx",
                    file_name=_optimized_onnx(onnx_dir, level),
                ),
            )
    if "st-onnx-int8" in peers:
        attempt(
            "st onnx int8",
            lambda: st_run(
                onnx_dir, "onnx", file_name=_quantized_onnx(onnx_dir, int8_config)
            ),
        )
        if "st onnx int8" in runs:
            notes.append(f"st onnx int8: dynamic quantization, config {int8_config}")

    ov_dir = folder / "st-openvino"

    def ov_run(**options) -> Encode:
        return _ov_run(ov_dir, model_path, max_length, batch_size, notes, **options)

    if "st-openvino" in peers:
        attempt("st openvino", lambda: ov_run(f32=True))
        attempt("st openvino default", ov_run)
    if "st-openvino-int8" in peers:
        attempt(
            "st openvino int8 static",
            lambda: ov_run(
                file_name=_static_openvino(
                    ov_dir,
                    model_path,
                    folder,
                    calibration_data,
                    calibration_samples,
                ),
            ),
        )
        attempt(
            "st openvino int8 weights",
            lambda: ov_run(file_name=_weight_int8_openvino(ov_dir, model_path)),
        )
    if "fastembed" in peers:
        attempt(
            "fastembed",
            lambda: _fastembed_run(onnx_dir, folder, max_length, batch_size),
        )
    return runs


def _check_mean_pooling(model_path: str) -> None:
    """The rows compare mean-pooled vectors (fastembed is set up for mean
    pooling): refuse a checkpoint whose Pooling module does otherwise."""
    config = Path(model_path) / "1_Pooling" / "config.json"
    if config.exists():
        modes = json.loads(config.read_text())
        chosen = [
            key
            for key, value in modes.items()
            if key.startswith("pooling_mode") and value
        ]
        if chosen != ["pooling_mode_mean_tokens"]:
            raise SystemExit(f"--peers expects mean pooling; {config} has {chosen}")


def _slug(model_path: str) -> str:
    """A cache folder name for ``model_path``: its name and a hash of its
    absolute path (two checkpoints of one name stay apart)."""
    path = Path(model_path).resolve()
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    return f"{path.name}-{digest}"


def _publish(build: Callable[[Path], None], target: Path) -> None:
    """Build into a temporary folder beside ``target``, then rename it, so an
    interrupted export never leaves a half-written cache entry."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-") as tmp:
        work = Path(tmp) / target.name
        build(work)
        os.replace(work, target)


def _write_versions(folder: Path) -> None:
    names = ("torch", "transformers", "sentence-transformers", "onnxruntime")
    found = {}
    for name in (*names, *PACKAGES):
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    (folder / "exported_with.json").write_text(json.dumps(found, indent=1))


@contextlib.contextmanager
def _optimum_onnx_mask_fix() -> Iterator[None]:
    """optimum-onnx (0.1.0 and its unreleased transformers-v5 branches)
    registers its own vmap-free SDPA mask function with the signature of
    transformers 4.53-5.3, ``(batch_size, cache_position, kv_length, ...)``;
    transformers 5.4+ calls mask functions with ``q_length`` and
    ``q_offset`` instead (``TypeError: sdpa_mask_without_vmap() missing 1
    required positional argument: 'cache_position'``). This translates the
    call, for the export only; optimum-intel carries the same translation
    for its OpenVINO export (``optimum/exporters/openvino/patching_utils``)."""
    import torch

    try:
        from optimum.exporters.onnx import model_patcher
    except ImportError:
        yield
        return
    original = getattr(model_patcher, "sdpa_mask_without_vmap", None)
    if (
        original is None
        or "cache_position" not in inspect.signature(original).parameters
    ):
        yield
        return

    def translated(*args, **kwargs):
        if "cache_position" not in kwargs and "q_length" in kwargs and len(args) < 2:
            q_length = kwargs.pop("q_length")
            q_offset = kwargs.pop("q_offset", 0)
            # 5.4-5.8 may pass the positions themselves as q_length
            if isinstance(q_length, torch.Tensor) and q_length.ndim:
                kwargs["cache_position"] = q_length
            else:
                device = kwargs.get("device", "cpu")
                kwargs["cache_position"] = (
                    torch.arange(q_length, device=device) + q_offset
                )
        return original(*args, **kwargs)

    model_patcher.sdpa_mask_without_vmap = translated
    try:
        yield
    finally:
        model_patcher.sdpa_mask_without_vmap = original


def _export_onnx(model_path: str, target: Path) -> None:
    """The sentence-transformers folder of ``model_path`` with
    ``onnx/model.onnx``, as ``SentenceTransformer(backend="onnx")`` exports it."""
    if (target / "onnx" / "model.onnx").exists():
        return
    from sentence_transformers import SentenceTransformer

    def build(work: Path) -> None:
        with _optimum_onnx_mask_fix():
            model = SentenceTransformer(model_path, backend="onnx", device="cpu")
        model.save(str(work))
        _write_versions(work)

    print(f"exporting {model_path} to ONNX in {target}", flush=True)
    _publish(build, target)


def _onnx_model(folder: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(
        str(folder),
        backend="onnx",
        device="cpu",
        model_kwargs={
            "file_name": "onnx/model.onnx",
            "provider": "CPUExecutionProvider",
        },
    )


def _optimized_onnx(folder: Path, level: str) -> str:
    """``onnx/model_<level>.onnx``, written by ``export_optimized_onnx_model``
    the first time."""
    name = f"onnx/model_{level}.onnx"
    if not (folder / name).exists():
        from sentence_transformers.backend import export_optimized_onnx_model

        print(f"optimizing the ONNX model at level {level}", flush=True)
        export_optimized_onnx_model(_onnx_model(folder), level, str(folder))
    return name


def _quantized_onnx(folder: Path, config: str) -> str:
    """``onnx/model_qint8_<config>.onnx``, written by
    ``export_dynamic_quantized_onnx_model`` the first time."""
    name = f"onnx/model_qint8_{config}.onnx"
    if not (folder / name).exists():
        from sentence_transformers.backend import export_dynamic_quantized_onnx_model

        print(f"quantizing the ONNX model to int8 ({config})", flush=True)
        export_dynamic_quantized_onnx_model(_onnx_model(folder), config, str(folder))
    return name


def _st_encode(
    folder: Path, backend: str, max_length: int, batch_size: int, model_kwargs: dict
) -> Encode:
    from sentence_transformers import SentenceTransformer

    if backend == "onnx":
        model_kwargs = {"provider": "CPUExecutionProvider", **model_kwargs}
    model = SentenceTransformer(
        str(folder), backend=backend, device="cpu", model_kwargs=model_kwargs
    )
    return _encoder(model, max_length, batch_size)


def _encoder(model, max_length: int, batch_size: int) -> Encode:
    """``model.encode`` as the benchmark calls sentence-transformers'."""
    model.max_seq_length = max_length
    has_normalize = any(type(module).__name__ == "Normalize" for module in model)

    def encode(texts: list[str]) -> np.ndarray:
        out = model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=not has_normalize,
            convert_to_numpy=True,
        )
        return np.asarray(out, dtype=np.float32)

    return encode


def _export_openvino(model_path: str, target: Path) -> None:
    """The sentence-transformers folder of ``model_path`` with
    ``openvino/openvino_model.xml``, as ``backend="openvino"`` exports it."""
    if (target / "openvino" / "openvino_model.xml").exists():
        return
    from sentence_transformers import SentenceTransformer

    def build(work: Path) -> None:
        model = SentenceTransformer(model_path, backend="openvino", device="cpu")
        model.save(str(work))
        _write_versions(work)

    print(f"exporting {model_path} to OpenVINO in {target}", flush=True)
    _publish(build, target)


def _ov_run(
    folder: Path,
    model_path: str,
    max_length: int,
    batch_size: int,
    notes: list[str],
    file_name: str = "openvino/openvino_model.xml",
    f32: bool = False,
) -> Encode:
    """An OpenVINO model of ``folder``: at f32 with ``f32``, else at
    OpenVINO's default precision (what a plain ``backend="openvino"`` gets)."""
    from sentence_transformers import SentenceTransformer

    _export_openvino(model_path, folder)
    ov_config = {"INFERENCE_PRECISION_HINT": "f32"} if f32 else {}
    model = SentenceTransformer(
        str(folder),
        backend="openvino",
        device="cpu",
        model_kwargs={"file_name": file_name, "ov_config": ov_config},
    )
    encode = _encoder(model, max_length, batch_size)
    encode(["compile"])  # optimum-intel compiles on first use
    properties = {}
    request = model.transformers_model.request
    for key in ("INFERENCE_PRECISION_HINT", "DYNAMIC_QUANTIZATION_GROUP_SIZE"):
        with contextlib.suppress(Exception):
            properties[key] = str(request.get_property(key))
    notes.append(
        f"OpenVINO {file_name}, ov_config {ov_config}: compiled with {properties}"
    )
    return encode


def _openvino_model(folder: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(
        str(folder),
        backend="openvino",
        device="cpu",
        model_kwargs={"file_name": "openvino/openvino_model.xml"},
    )


def _static_openvino(
    folder: Path, model_path: str, cache: Path, data: str, samples: int
) -> str:
    """``openvino/openvino_model_qint8_static<samples>.xml``, written by
    ``export_static_quantized_openvino_model`` the first time. Its calibration
    set is read with ``datasets.load_dataset`` from a local folder holding a
    CSV copy of ``data`` (column ``sentence``), the way it reads the hub's
    ``nyu-mll/glue`` sst2 train split by default (the same sentences when
    ``data`` is ``../shared/data/sst2_train.tsv``)."""
    suffix = f"qint8_static{samples}"
    name = f"openvino/openvino_model_{suffix}.xml"
    if (folder / name).exists():
        return name
    from _common import read_tsv
    from optimum.intel import OVQuantizationConfig
    from sentence_transformers.backend import export_static_quantized_openvino_model

    _export_openvino(model_path, folder)
    calibration = cache / "calibration" / Path(data).stem
    if not (calibration / "train.csv").exists():
        texts, _ = read_tsv(data)

        def build(work: Path) -> None:
            work.mkdir(parents=True)
            with open(work / "train.csv", "w", encoding="utf-8", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["sentence"])
                writer.writerows([text] for text in texts)

        _publish(build, calibration)
    print(
        f"quantizing the OpenVINO model to int8 ({samples} calibration texts)",
        flush=True,
    )
    export_static_quantized_openvino_model(
        _openvino_model(folder),
        OVQuantizationConfig(num_samples=samples),
        str(folder),
        dataset_name=str(calibration),
        dataset_config_name="default",
        dataset_split="train",
        column_name="sentence",
        file_suffix=suffix,
    )
    return name


def _weight_int8_openvino(folder: Path, model_path: str) -> str:
    """``openvino/openvino_model_int8_weights.xml``: the float model with its
    weights compressed to int8 by optimum-intel (``load_in_8bit=True``,
    NNCF's ``int8_asym`` per channel), saved the first time."""
    name = "openvino/openvino_model_int8_weights.xml"
    if (folder / name).exists():
        return name
    import openvino
    from sentence_transformers import SentenceTransformer

    _export_openvino(model_path, folder)
    print("compressing the OpenVINO model's weights to int8", flush=True)
    model = SentenceTransformer(
        str(folder),
        backend="openvino",
        device="cpu",
        model_kwargs={"file_name": "openvino/openvino_model.xml", "load_in_8bit": True},
    )
    with tempfile.TemporaryDirectory(dir=folder / "openvino", prefix=".tmp-") as tmp:
        xml = Path(tmp) / "model.xml"
        openvino.save_model(model.transformers_model.model, xml, compress_to_fp16=False)
        os.replace(xml.with_suffix(".bin"), (folder / name).with_suffix(".bin"))
        os.replace(xml, folder / name)
    return name


def _fastembed_run(
    onnx_dir: Path, cache: Path, max_length: int, batch_size: int
) -> Encode:
    """fastembed on the float32 ONNX export, from a local folder: the model
    is registered under a local name with mean pooling and normalization (as
    the checkpoint's own modules do) and loaded with ``specific_model_path``,
    so nothing is downloaded."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    folder = cache / f"fastembed-{max_length}"
    if not (folder / "model.onnx").exists():

        def build(work: Path) -> None:
            work.mkdir(parents=True)
            os.symlink(
                (onnx_dir / "onnx" / "model.onnx").resolve(), work / "model.onnx"
            )
            for name in ("tokenizer.json", "config.json", "special_tokens_map.json"):
                if (onnx_dir / name).exists():
                    shutil.copy(onnx_dir / name, work / name)
            config = json.loads((onnx_dir / "tokenizer_config.json").read_text())
            config["model_max_length"] = max_length  # fastembed's truncation
            (work / "tokenizer_config.json").write_text(json.dumps(config, indent=1))

        _publish(build, folder)
    config = json.loads((onnx_dir / "config.json").read_text())
    name = f"local/{cache.name}-{max_length}"
    known = {model["model"] for model in TextEmbedding.list_supported_models()}
    if name not in known:
        TextEmbedding.add_custom_model(
            model=name,
            pooling=PoolingType.MEAN,
            normalization=True,
            sources=ModelSource(hf=name),
            dim=config["hidden_size"],
            model_file="model.onnx",
        )
    model = TextEmbedding(
        name,
        specific_model_path=str(folder),
        local_files_only=True,
        providers=["CPUExecutionProvider"],
    )

    def encode(texts: list[str]) -> np.ndarray:
        return np.stack(list(model.embed(texts, batch_size=batch_size))).astype(
            np.float32
        )

    return encode
