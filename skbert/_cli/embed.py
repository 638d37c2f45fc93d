"""Embed a file of texts into sentence vectors, streaming, in constant memory.

``skbert embed INPUT OUTPUT --model MODEL`` reads the texts of INPUT (CSV, TSV,
Parquet, JSON Lines or plain text with one text per line), encodes them with
:class:`~skbert.BertCLSVectorizer` and writes one float32 vector per text, in
input order, to OUTPUT (``.npy`` or ``.parquet``). The input is read chunk by
chunk (``--chunk-size`` texts at a time) and every chunk's vectors are written
before the next chunk is read, so a file larger than memory can be embedded:
memory holds the model and one chunk. A first pass counts the rows, so that a
``.npy`` file can be preallocated and the progress bar knows its total. The
output appears under its name only once it is complete.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from .._core.inputs import check_texts
from .._core.options import (
    BACKENDS,
    CHUNK_COMBINES,
    DEFAULT_MAX_BATCH_TOKENS,
    DTYPES,
    LONG_TEXTS,
)
from .._core.report import warn_about
from .._estimator.fitted import fitted_encoder
from .._model.resolve import local_model_folder
from . import progress
from .options import (
    POOLINGS,
    add_batch_size_argument,
    add_device_argument,
    add_source_arguments,
    at_least,
    cache_value,
    layers_value,
)
from .progress import open_progress, rate
from .reading import (
    DEFAULT_COLUMN,
    DEFAULT_ENCODING,
    INPUT_FORMATS,
    TextSource,
    input_format,
    pyarrow_parquet,
    read_texts,
)
from .writing import (
    PARQUET_COLUMN,
    check_output,
    output_format,
    read_parquet_vectors,
    writer,
)

__all__ = ["CHUNK_SIZE", "add_arguments", "read_parquet_vectors", "read_texts", "run"]

#: Texts read, encoded and written at a time (``--chunk-size``).
CHUNK_SIZE = 4096


# -- the command ----------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``skbert embed`` options to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "input formats (by extension, or --input-format):\n"
        "  .csv, .tsv/.tab  header row required; texts from --column\n"
        "  .parquet/.pq     texts from --column (needs pyarrow)\n"
        "  .jsonl/.ndjson   one JSON object per line; texts from key --column\n"
        "  .txt/.text       one text per line (no --column)\n"
        "output formats (by extension):\n"
        "  .npy             float32 array of shape (n_texts, dim); numpy.load\n"
        f"  .parquet/.pq     one column {PARQUET_COLUMN!r}, a fixed-size list of "
        "float32\n\n"
        "example:\n"
        "  skbert embed reviews.csv vectors.npy --model bert-base-uncased "
        "--pooling mean --layers -2,-1"
    )
    parser.add_argument("input", metavar="INPUT", help="file of texts")
    parser.add_argument(
        "output", metavar="OUTPUT", help="vectors out: .npy or .parquet"
    )
    parser.add_argument(
        "-m",
        "--model",
        required=True,
        metavar="PATH_OR_HUB_ID",
        help="BERT checkpoint: a folder written by save_pretrained() or a Hugging "
        "Face Hub id such as bert-base-uncased",
    )
    parser.add_argument(
        "-c",
        "--column",
        default=None,
        help=f"column (JSON key) holding the texts (default: {DEFAULT_COLUMN!r})",
    )
    parser.add_argument(
        "--encoding",
        default=DEFAULT_ENCODING,
        help="encoding of a CSV, TSV, JSON Lines or text input, e.g. cp1252 or "
        "latin-1 (default: %(default)s; a byte order mark is read past)",
    )
    parser.add_argument(
        "--input-format",
        choices=sorted(set(INPUT_FORMATS.values())),
        default=None,
        help="input format, when the extension does not say it",
    )
    vectorizer = parser.add_argument_group(
        "vectorizer options (see help(skbert.BertCLSVectorizer))"
    )
    vectorizer.add_argument(
        "--pooling",
        choices=POOLINGS,
        default="cls",
        help="how token states become one vector (default: %(default)s); run "
        "'skbert info MODEL' to see whether 'pooler' is available",
    )
    vectorizer.add_argument(
        "--layers",
        type=layers_value,
        default=-1,
        metavar="LAYERS",
        help="hidden state to pool: -1 is the last layer, 0 the embeddings; a "
        "comma list such as -2,-1 averages layers (default: -1)",
    )
    vectorizer.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="scale every vector to unit L2 norm (default: off)",
    )
    vectorizer.add_argument(
        "--prompt",
        default=None,
        metavar="TEXT",
        help='put TEXT before every text (e.g. "query: " for E5 models)',
    )
    vectorizer.add_argument(
        "--prompt-name",
        default=None,
        metavar="NAME",
        help="a prompt the model folder declares (config_sentence_transformers.json)",
    )
    vectorizer.add_argument(
        "--trust-pooler",
        action="store_true",
        help="use a pooler that pre-training never trained (RoBERTa, MPNet, ...): "
        "only for a checkpoint fine-tuned through its pooler",
    )
    vectorizer.add_argument(
        "--long-texts",
        choices=LONG_TEXTS,
        default="truncate",
        help="texts longer than --max-length: keep the first tokens (truncate), the "
        "first and last (head_tail), or cover them with windows (chunk) "
        "(default: %(default)s)",
    )
    vectorizer.add_argument(
        "--head-tokens",
        type=at_least(0),
        default=None,
        metavar="N",
        help="head_tail: tokens kept from the start (default: a quarter)",
    )
    vectorizer.add_argument(
        "--stride",
        type=at_least(0),
        default=0,
        metavar="N",
        help="chunk: tokens consecutive windows share (default: %(default)s)",
    )
    vectorizer.add_argument(
        "--chunk-combine",
        choices=CHUNK_COMBINES,
        default="mean",
        help="chunk: combine the windows' vectors by token-weighted mean or by max "
        "(default: %(default)s)",
    )
    vectorizer.add_argument(
        "--max-length",
        type=at_least(2),
        default=None,
        metavar="TOKENS",
        help="truncate texts to this many tokens (default: the model's limit)",
    )
    add_batch_size_argument(vectorizer)
    vectorizer.add_argument(
        "--max-batch-tokens",
        type=at_least(1),
        default=DEFAULT_MAX_BATCH_TOKENS,
        metavar="TOKENS",
        help="at most this many padded tokens per forward pass, a memory guard for "
        "long texts (default: %(default)s)",
    )
    add_device_argument(vectorizer)
    vectorizer.add_argument(
        "--dtype",
        choices=DTYPES,
        default="float32",
        help="precision of the model's computation; vectors are float32 either way "
        "(default: %(default)s)",
    )
    vectorizer.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="run the model with torch, or on the CPU with ONNX Runtime (needs "
        '"skbert[onnx]"; float32) or OpenVINO (needs "skbert[openvino]"; '
        "float32 or bfloat16), last layer only (default: %(default)s)",
    )
    vectorizer.add_argument(
        "--quantize",
        action="store_true",
        help="with --backend onnx or openvino: int8, about twice as fast at a "
        "small accuracy cost (openvino: calibrated int8 activations too)",
    )
    vectorizer.add_argument(
        "--cache",
        type=cache_value,
        default=None,
        metavar="DIR",
        help="embedding cache: a directory keeps vectors across runs (a re-run "
        "encodes only new texts), 'auto' an in-memory cache, 'none' no cache "
        "(default: none)",
    )
    add_source_arguments(vectorizer)
    parser.add_argument(
        "--chunk-size",
        type=at_least(1),
        default=None,
        metavar="N",
        help=f"texts read, encoded and written at a time; bounds the memory "
        f"(default: {CHUNK_SIZE})",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )


def vectorizer_params(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~skbert.BertCLSVectorizer` parameters that ``args`` set."""
    return {
        "model_name_or_path": args.model,
        "pooling": args.pooling,
        "layers": args.layers,
        "normalize": args.normalize,
        "max_length": args.max_length,
        "batch_size": args.batch_size,
        "max_batch_tokens": args.max_batch_tokens,
        "device": args.device,
        "dtype": args.dtype,
        "backend": args.backend,
        "quantize": args.quantize,
        "revision": args.revision,
        "local_files_only": args.local_files_only,
        "trust_remote_code": args.trust_remote_code,
        "show_progress_bar": False,  # the command shows its own, over all chunks
        "cache": args.cache,
        "prompt": args.prompt,
        "prompt_name": args.prompt_name,
        "trust_pooler": args.trust_pooler,
        "long_texts": args.long_texts,
        "head_tokens": args.head_tokens,
        "stride": args.stride,
        "chunk_combine": args.chunk_combine,
    }


def run(args: argparse.Namespace) -> int:
    """Run ``skbert embed`` with parsed ``args``; returns the exit code."""
    from .._estimator.vectorizer import BertCLSVectorizer

    input_path = Path(args.input).expanduser()
    output = Path(args.output).expanduser()
    # Everything that can be checked without the model is checked first.
    source = TextSource(
        input_path,
        input_format(input_path, args.input_format),
        args.column,
        args.encoding,
    )
    out_format = output_format(output)
    check_output(output, input_path)
    if out_format == "parquet":
        pyarrow_parquet()
    chunk_size = args.chunk_size or CHUNK_SIZE
    n_texts = source.count()

    # A bar's user is told that the model is loading and when it has loaded.
    # A log hears from the command once every LOG_EVERY seconds at most: of
    # the load only if it took that long, so a short run (or a failed load, or
    # a bad row) writes nothing but its result or its one error line.
    bar_shown = args.progress or (args.progress is None and sys.stderr.isatty())
    local_model_folder(args.model)  # a wrong path: one error line, no "loading"
    if bar_shown:
        print(f"skbert embed: loading model {args.model} ...", file=sys.stderr)
    started = time.perf_counter()
    vectorizer = BertCLSVectorizer(**vectorizer_params(args)).fit(["probe"])
    seconds = time.perf_counter() - started
    if bar_shown or (args.progress is None and seconds >= progress.LOG_EVERY):
        print(
            f"skbert embed: model loaded in {seconds:.1f} s; encoding {n_texts} texts",
            file=sys.stderr,
        )

    encoder = fitted_encoder(vectorizer)  # what runs: width, limit, recipe
    width = encoder.output_size  # a Dense layer of pooling="auto" included
    vectors = writer(out_format, output, n_texts, width)
    truncated = blank = tokens = done = limit = 0
    started = time.perf_counter()
    try:
        with open_progress(n_texts, "skbert embed", args.progress) as bar:
            for chunk in source.chunks(chunk_size):
                X, report = encoder.encode(check_texts(chunk), bar)
                bar.update(done + len(chunk) - bar.n)  # repeated or cached texts
                done += len(chunk)
                truncated += len(report.truncated)
                limit = report.max_length  # the limit applied, not recomputed
                tokens += report.tokens
                # one summary line below instead of a warning per chunk
                warn_about(dataclasses.replace(report, truncated=[]))
                vectors.write(X)
                blank += sum(1 for text in chunk if not text.strip())
        vectors.close()
    except BaseException:
        vectors.abort()
        raise
    seconds = time.perf_counter() - started
    if truncated:
        print(
            f"skbert embed: warning: {truncated} of {n_texts} texts were longer than "
            f"{limit} tokens and were truncated (see --max-length).",
            file=sys.stderr,
        )
    print(
        f"skbert embed: wrote {n_texts} vectors of dimension "
        f"{width} to {output}{_text_summary(n_texts, blank, source)}"
        + (
            f"; {tokens} tokens read by the model, {truncated} "
            f"{'text' if truncated == 1 else 'texts'} truncated, "
            f"{seconds:.1f} s ({rate(n_texts, seconds)})"
            if n_texts
            else ""
        )
    )
    return 0


def _text_summary(n_texts: int, blank: int, source: TextSource) -> str:
    """What the summary line adds about the texts: none, some empty, blank
    lines skipped."""
    notes = []
    if n_texts == 0:
        notes.append(f"{str(source.path)!r} has no texts")
    if blank:
        notes.append(
            f"{blank} of the {n_texts} texts are empty or whitespace only; each "
            "got the vector of an empty text"
        )
    if source.blank_lines:
        lines = "line" if source.blank_lines == 1 else "lines"
        notes.append(f"{source.blank_lines} blank {lines} skipped, as no row")
    return f" ({'; '.join(notes)})" if notes else ""
