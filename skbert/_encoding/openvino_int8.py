"""Calibrated int8 for ``backend="openvino", quantize=True``.

The checked float32 export, before ONNX Runtime's fusions
(:func:`skbert._encoding.onnx.plain_graph`), is quantized once
per model identity by NNCF's static post-training quantization for
transformers: int8 weights per output channel, int8 activations whose ranges
are calibrated on :data:`CALIBRATION_TEXTS` sentences of the demo set shipped
with skbert (``skbert/_data``, see its ``CITATION.md``). The texts are the
same for every model, so the int8 model depends on the checkpoint alone:
``fit`` still learns nothing from the user's texts, and the model is shared by
every estimator and process that uses the checkpoint.

NNCF runs in a child process (``_nncf_child.py``): it shows progress bars on
the standard output and logs as it is imported, which skbert could silence
only by changing process-wide settings that belong to the user. The model is
written as ``openvino-int8-<key>.xml`` (weights in ``.bin``) beside the
export, under the export folder's lock, the weights first and the ``.xml``
last, so a model on disk is always whole; ``<key>`` names the recipe and the
versions of OpenVINO and NNCF that made it
(:data:`~skbert._core.versions.OPENVINO_GRAPH_VERSION` is the recipe's).
skbert sends nothing anywhere, and NNCF's usage telemetry is declined in its
process (:func:`child_environment`).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._core.filelock import file_lock
from .._core.shipped import SENTIMENT_SOURCES, read_sentences
from .._core.versions import OPENVINO_GRAPH_VERSION, _versions_of
from .._model.identity import canonical_digest
from .onnx import _onnx_model, _probe_batch, plain_graph, verify

if TYPE_CHECKING:
    from .._model.checkpoint import LoadedModel

__all__ = ["CALIBRATION_TEXTS", "int8_model", "require_nncf"]

#: How many sentences calibrate the activations: a third of the shipped demo
#: set. sentence-transformers' static OpenVINO export takes 300; on
#: all-mpnet-base-v2, 1,000 brought the int8 vectors closer to float32 (mean
#: cosine 0.9889 -> 0.9911 on 1,000 MR sentences, lowest 0.946 -> 0.968), for
#: a longer quantization, once per checkpoint (docs/performance.md).
CALIBRATION_TEXTS = 1000
_CHILD = Path(__file__).with_name("_nncf_child.py")


def require_nncf() -> None:
    """Refuse clearly where NNCF, which makes the int8 model, is missing."""
    try:
        found = importlib.util.find_spec("nncf") is not None
    except ValueError:  # a module without a spec stands in for it
        found = False
    if not found:
        raise ImportError(
            "backend='openvino' with quantize=True needs NNCF to calibrate the "
            "int8 model: pip install 'skbert[openvino]' (or pip install nncf), "
            "or use quantize=False, or backend='onnx' with quantize=True."
        )


def child_environment() -> dict[str, str]:
    """The environment of NNCF's process: this one's, with NNCF's usage
    telemetry declined. NNCF sends usage events through openvino-telemetry
    unless a consent file says no; the one switch that declines it without
    touching the user's consent file is ``CI=true``, which it reads as a
    machine that must not report."""
    return {**os.environ, "CI": "true"}


def calibration_texts() -> list[str]:
    """:data:`CALIBRATION_TEXTS` sentences spread evenly over the shipped demo
    set: short reviews of restaurants, phones and films."""
    texts = [
        text for name in SENTIMENT_SOURCES.values() for text in read_sentences(name)[0]
    ]
    step = len(texts) // CALIBRATION_TEXTS
    return texts[::step][:CALIBRATION_TEXTS]


def int8_model(loaded: LoadedModel) -> Path:
    """The int8 OpenVINO model (``.xml``) of ``loaded`` (a float32 CPU torch
    model), made now if it is not on disk yet."""
    require_nncf()
    graph = plain_graph(loaded)
    key = {"recipe": OPENVINO_GRAPH_VERSION, **_versions_of(("openvino", "nncf"))}
    digest = canonical_digest(key).removeprefix("sha256:")[:16]
    target = graph.with_name(f"openvino-int8-{digest}.xml")  # beside the export
    with file_lock(target.parent / "export.lock"):
        if not target.exists():
            # int8 only from a float32 graph that was checked
            verify(_onnx_model(graph, loaded), loaded, graph)
            _quantize(loaded, graph, target)
    return target


def remove(model: Path) -> None:
    """Remove the int8 model ``model`` (its ``.xml`` first: then it is gone)."""
    model.unlink(missing_ok=True)
    model.with_suffix(".bin").unlink(missing_ok=True)


def _calibration(loaded: LoadedModel, path: Path) -> None:
    """The calibration texts, tokenized as ``transform`` does, one per input,
    saved to ``path`` for the child."""
    arrays = {}
    for index, text in enumerate(calibration_texts()):
        for name, tensor in _probe_batch(loaded, [text]).items():
            arrays[f"{index}/{name}"] = tensor.numpy().astype(np.int64)
    np.savez(path, **arrays)


def _quantize(loaded: LoadedModel, graph: Path, target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        calibration = Path(tmp) / "calibration.npz"
        _calibration(loaded, calibration)
        made = Path(tmp) / target.name
        # the child's source, run from the empty folder: its own folder would
        # put this package's onnx.py and openvino.py before the libraries
        source = _CHILD.read_text(encoding="utf-8")
        arguments = [str(graph), str(calibration), str(made)]
        done = subprocess.run(
            [sys.executable, "-c", source, *arguments],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp,
            env=child_environment(),
        )
        if done.returncode != 0 or not made.exists():
            lines = (done.stderr or done.stdout).strip().splitlines()
            reason = lines[-1] if lines else f"exit status {done.returncode}"
            raise RuntimeError(
                "NNCF could not quantize the ONNX export of this "
                f"{loaded.info.model_type} checkpoint to int8 ({reason}). Use "
                "quantize=False, or backend='onnx' with quantize=True."
            )
        os.replace(made.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(made, target)
