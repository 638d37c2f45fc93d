"""Export a fitted pipeline to one ONNX file that runs without torch.

``skbert export MODEL.joblib OUT.onnx`` loads a fitted ``BertCLSVectorizer``
or ``Pipeline`` saved with joblib (or pickle), writes it with
:func:`skbert.export_onnx` and prints what was written and how close the file
came to the Python pipeline. Loading a pickle runs code: only export files
you trust. :mod:`skbert.runtime` loads the result with numpy, onnxruntime and
tokenizers alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``skbert export`` options to ``parser``."""
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="a fitted BertCLSVectorizer or Pipeline saved with joblib.dump (a "
        "pickle: only load files you trust)",
    )
    parser.add_argument("output", metavar="OUT", help="the .onnx file to write")
    parser.add_argument(
        "--quantize",
        action="store_true",
        help="int8 encoder weights: about 4x smaller, faster on a CPU, at a small "
        "accuracy cost (the report measures it on the check texts)",
    )
    parser.add_argument(
        "--check-texts",
        metavar="FILE",
        help="a UTF-8 text file, one text per line, to compare the artefact with "
        "the Python pipeline on (default: a dozen built-in sentences)",
    )


def _read_lines(path: str) -> list[str]:
    return Path(path).read_text(encoding="utf-8").splitlines()


def run(args: argparse.Namespace) -> int:
    """Run ``skbert export`` with parsed ``args``; returns the exit code."""
    import joblib

    from .._export.export import export_onnx

    try:
        estimator = joblib.load(args.model)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # not a pickle: a usage problem, one line
        detail = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        raise ValueError(
            f"{args.model} is not a fitted model saved with joblib.dump or pickle "
            f"({detail}). Save the fitted pipeline with joblib.dump(pipeline, "
            "'model.joblib') and export that file."
        ) from exc
    check_texts = None if args.check_texts is None else _read_lines(args.check_texts)
    try:
        report = export_onnx(
            estimator, args.output, quantize=args.quantize, check_texts=check_texts
        )
    except TypeError as exc:  # not a vectorizer or pipeline: a usage problem
        raise ValueError(f"{args.model}: {exc}") from exc
    print(report)
    return 0
