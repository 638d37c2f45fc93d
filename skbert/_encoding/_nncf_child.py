"""Run NNCF's static int8 quantization of one ONNX graph (a child process).

Run as a program, never imported (it imports nothing of skbert), with the
arguments ``GRAPH CALIBRATION TARGET``, where ``CALIBRATION`` is
an ``.npz`` file of the calibration inputs (``"<index>/<input name>"``:
int64 arrays of one text each) and ``TARGET`` the OpenVINO model to write
(``.xml``, its weights beside it in ``.bin``). NNCF shows progress bars and
logs at import; in a child process they stay out of the user's terminal and
out of the user's logging settings. :mod:`skbert._encoding.openvino_int8`
runs it.
"""

from __future__ import annotations

import sys


def _calibration(path: str, inputs: set[str]) -> list[dict]:
    """The inputs saved at ``path``, those of ``inputs`` only (a family without
    token types takes none)."""
    import numpy as np

    with np.load(path) as arrays:
        items: dict[int, dict] = {}
        for key in arrays.files:
            index, name = key.split("/", 1)
            if name in inputs:
                items.setdefault(int(index), {})[name] = arrays[key]
    return [items[index] for index in sorted(items)]


def main(graph: str, calibration: str, target: str) -> None:
    import nncf
    import openvino

    model = openvino.Core().read_model(graph)
    items = _calibration(calibration, {port.get_any_name() for port in model.inputs})
    quantized = nncf.quantize(
        model,
        nncf.Dataset(items),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(items),
    )
    openvino.save_model(quantized, target, compress_to_fp16=False)


if __name__ == "__main__":
    main(*sys.argv[1:4])
