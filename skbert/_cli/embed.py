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
import contextlib
import csv
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._core.options import BACKENDS, CHUNK_COMBINES, DTYPES, LONG_TEXTS
from .._estimator.fitted import fitted_encoder
from .options import (
    POOLINGS,
    add_batch_size_argument,
    add_device_argument,
    add_source_arguments,
    at_least,
    cache_value,
    layers_value,
)

__all__ = ["CHUNK_SIZE", "add_arguments", "read_texts", "run"]

#: Texts read, encoded and written at a time (``--chunk-size``).
CHUNK_SIZE = 4096
#: File name suffix -> input format.
INPUT_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "txt",
    ".text": "txt",
}
OUTPUT_FORMATS = {".npy": "npy", ".parquet": "parquet", ".pq": "parquet"}
#: Name of the Parquet output column (a fixed-size list of float32 per row).
PARQUET_COLUMN = "embedding"
DEFAULT_COLUMN = "text"
_NEEDS_PYARROW = (
    "Parquet files need the pyarrow package: pip install pyarrow "
    '(or pip install "skbert[dask]", which includes it).'
)


# -- reading --------------------------------------------------------------------
def _input_format(path: Path, declared: str | None) -> str:
    if declared is not None:
        return declared
    found = INPUT_FORMATS.get(path.suffix.lower())
    if found is None:
        known = ", ".join(sorted(INPUT_FORMATS))
        raise ValueError(
            f"cannot tell the format of {str(path)!r} from its extension (known: "
            f"{known}); pass --input-format."
        )
    return found


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(_NEEDS_PYARROW) from exc
    return pq


#: The input encoding unless --encoding says otherwise (a byte order mark is
#: read past).
DEFAULT_ENCODING = "utf-8"


def _python_encoding(encoding: str) -> str:
    """``encoding`` as Python opens it: UTF-8 reads past a byte order mark."""
    import codecs

    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(
            f"--encoding {encoding!r} is not an encoding Python knows (e.g. "
            "utf-8, cp1252, latin-1)."
        ) from None
    return "utf-8-sig" if name == "utf-8" else name


def _open_text(path: Path, encoding: str = DEFAULT_ENCODING, newline: str | None = ""):
    return open(path, encoding=_python_encoding(encoding), newline=newline)


def _undecodable(path: Path, encoding: str) -> ValueError:
    """Where in ``path`` the first byte ``encoding`` cannot decode is, as an
    error naming the file, the line and what to do."""
    import codecs

    decoder = codecs.getincrementaldecoder(_python_encoding(encoding))()
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                decoder.decode(line)
            except UnicodeDecodeError as exc:
                byte = line[exc.start : exc.start + 1].hex()
                return ValueError(
                    f"{str(path)!r}, line {number}: byte 0x{byte} (at byte "
                    f"{exc.start + 1} of the line) is not valid {encoding}; pass the "
                    "file's encoding with --encoding (e.g. --encoding cp1252 for a "
                    "Windows file) or save it as UTF-8."
                )
    return ValueError(f"{str(path)!r} is not valid {encoding}; pass --encoding.")


def _is_unicode(text: str) -> bool:
    """False for a str with lone surrogates (JSON can escape them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _csv_rows(
    path: Path, delimiter: str, encoding: str = DEFAULT_ENCODING
) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every row, header included."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with _open_text(path, encoding) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        for fields in reader:
            yield reader.line_num, fields


class TextSource:
    """The texts of one file: validated when opened, then counted and streamed.

    Parameters
    ----------
    path : path-like
        The input file.
    fmt : {"csv", "tsv", "parquet", "jsonl", "txt"}
        Its format.
    column : str or None
        The column (or JSON key) holding the texts; ``None`` means ``"text"``.
        Must be ``None`` for plain text, where every line is one text.
    encoding : str, default="utf-8"
        The encoding of a text format (not Parquet's, which is always UTF-8).

    Attributes
    ----------
    blank_lines : int
        Blank CSV or TSV lines the last pass over the texts skipped (the csv
        module reads no row from them).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fmt: str,
        column: str | None,
        encoding: str = DEFAULT_ENCODING,
    ) -> None:
        self.path = Path(path)
        self.format = fmt
        self.encoding = encoding
        self.blank_lines = 0
        _python_encoding(encoding)  # an unknown name: refused now
        if not self.path.exists():
            raise FileNotFoundError(f"input file {str(self.path)!r} does not exist.")
        if self.path.is_dir():
            raise IsADirectoryError(
                f"input {str(self.path)!r} is a folder, not a file."
            )
        if fmt == "txt":
            if column is not None:
                raise ValueError(
                    "--column does not apply to plain text input, where every line "
                    "is one text."
                )
            self.column = None
        else:
            self.column = DEFAULT_COLUMN if column is None else column
            try:
                self._check_column()
            except UnicodeDecodeError:
                raise _undecodable(self.path, self.encoding) from None

    def _missing_column(self, names: list[str]) -> ValueError:
        shown = ", ".join(repr(name) for name in names[:20]) or "none"
        return ValueError(
            f"column {self.column!r} not found in {str(self.path)!r} (columns: "
            f"{shown}); choose one with --column."
        )

    def _check_column(self) -> None:
        if self.format in ("csv", "tsv"):
            header = next(self._csv_rows(), None)
            if header is None:  # an empty file: no texts, whatever the column
                return
            if self.column not in header[1]:
                raise self._missing_column(header[1])
        elif self.format == "parquet":
            schema = _pyarrow_parquet().ParquetFile(self.path).schema_arrow
            if self.column not in schema.names:
                raise self._missing_column(list(schema.names))
            import pyarrow.types as pat

            kind = schema.field(self.column).type
            if not (
                pat.is_string(kind)
                or pat.is_large_string(kind)
                or getattr(pat, "is_string_view", lambda _: False)(kind)
            ):
                raise ValueError(
                    f"column {self.column!r} of {str(self.path)!r} holds {kind}, not "
                    "strings."
                )
        else:  # jsonl: the first record decides, every record is checked later
            first = next(self._json_records(), None)
            if first is not None and self.column not in first[1]:
                raise self._missing_column(list(first[1]))

    def _csv_rows(self) -> Iterator[tuple[int, list[str]]]:
        delimiter = "," if self.format == "csv" else "\t"
        return _csv_rows(self.path, delimiter, self.encoding)

    def _json_records(self) -> Iterator[tuple[int, dict]]:
        with _open_text(self.path, self.encoding) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise ValueError(
                        f"{str(self.path)!r}, line {number}: not valid JSON ({exc})."
                    ) from None
                if not isinstance(record, dict):
                    raise ValueError(
                        f"{str(self.path)!r}, line {number}: expected a JSON object, "
                        f"got {type(record).__name__}."
                    )
                yield number, record

    def _not_text(self, where: str, value: object) -> ValueError:
        what = "missing (null)" if value is None else f"a {type(value).__name__}"
        return ValueError(
            f"{str(self.path)!r}, {where}: the value of column {self.column!r} is "
            f"{what}, not a string."
        )

    def texts(self) -> Iterator[str]:
        """Every text, in file order (a byte the encoding cannot decode: an
        error naming its line)."""
        try:
            yield from self._texts()
        except UnicodeDecodeError:
            raise _undecodable(self.path, self.encoding) from None

    def _texts(self) -> Iterator[str]:
        self.blank_lines = 0
        if self.format == "txt":
            with _open_text(self.path, self.encoding, newline=None) as handle:
                for line in handle:
                    yield line[:-1] if line.endswith("\n") else line
        elif self.format in ("csv", "tsv"):
            rows = self._csv_rows()
            _, header = next(rows, (0, [self.column]))  # an empty file has none
            index = header.index(self.column)
            for number, fields in rows:
                if not fields:  # a blank line is no row (csv module convention)
                    self.blank_lines += 1
                    continue
                if index >= len(fields):
                    raise ValueError(
                        f"{str(self.path)!r}, line {number}: {len(fields)} fields, "
                        f"no value for column {self.column!r}."
                    )
                yield fields[index]
        elif self.format == "parquet":
            parquet = _pyarrow_parquet().ParquetFile(self.path)
            row = 0
            for batch in parquet.iter_batches(
                batch_size=CHUNK_SIZE, columns=[self.column]
            ):
                for value in batch.column(0).to_pylist():
                    row += 1  # 1-based, like the line numbers of the text formats
                    if value is None:
                        raise self._not_text(f"row {row}", value)
                    yield value
        else:
            for number, record in self._json_records():
                value = record.get(self.column)
                if not isinstance(value, str):
                    if self.column not in record:
                        raise ValueError(
                            f"{str(self.path)!r}, line {number}: no key "
                            f"{self.column!r}."
                        )
                    raise self._not_text(f"line {number}", value)
                if not value.isascii() and not _is_unicode(value):
                    raise ValueError(
                        f"{str(self.path)!r}, line {number}: the value of column "
                        f"{self.column!r} contains a lone surrogate (an escape such "
                        "as \\ud800 without its pair), which is not valid Unicode."
                    )
                yield value

    def count(self) -> int:
        """Number of texts (a first pass over the file; free for Parquet)."""
        if self.format == "parquet":
            return _pyarrow_parquet().ParquetFile(self.path).metadata.num_rows
        return sum(1 for _ in self.texts())

    def chunks(self, size: int) -> Iterator[list[str]]:
        """The texts in lists of at most ``size``."""
        chunk: list[str] = []
        for text in self.texts():
            chunk.append(text)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def read_texts(
    path: str | os.PathLike,
    *,
    column: str | None = None,
    fmt: str | None = None,
    encoding: str = DEFAULT_ENCODING,
) -> list[str]:
    """Read all texts of a file the way ``skbert embed`` does.

    Parameters
    ----------
    path : path-like
        A ``.csv``, ``.tsv``, ``.parquet``, ``.jsonl`` or ``.txt`` file.
    column : str, default=None
        Column or JSON key of the texts (``"text"`` when ``None``); not for
        ``.txt``, where each line is one text.
    fmt : {"csv", "tsv", "parquet", "jsonl", "txt"}, default=None
        The format; ``None`` infers it from the extension.
    encoding : str, default="utf-8"
        The encoding of a text format.

    Returns
    -------
    texts : list of str
    """
    path = Path(path)
    source = TextSource(path, _input_format(path, fmt), column, encoding)
    return list(source.texts())


# -- writing --------------------------------------------------------------------
def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


class _NpyWriter:
    """A preallocated ``.npy`` memory map filled chunk by chunk."""

    def __init__(self, path: Path, n_rows: int, dim: int) -> None:
        self.path, self.n_rows, self.dim = path, n_rows, dim
        self.partial = _temporary_name(path)
        self.rows = 0
        if n_rows:
            self.array = np.lib.format.open_memmap(
                self.partial, mode="w+", dtype=np.float32, shape=(n_rows, dim)
            )
        else:  # an empty memory map cannot be created
            with open(self.partial, "wb") as handle:  # np.save(path) adds ".npy"
                np.save(handle, np.empty((0, dim), dtype=np.float32))

    def write(self, X: np.ndarray) -> None:
        end = self.rows + len(X)
        if end > self.n_rows:
            raise RuntimeError(
                "the input file grew while it was being embedded; run again."
            )
        self.array[self.rows : end] = X
        self.rows = end

    def close(self) -> None:
        if self.n_rows:
            self.array.flush()
            del self.array
        if self.rows != self.n_rows:
            raise RuntimeError(
                f"expected {self.n_rows} texts but read {self.rows}: the input file "
                "changed while it was being embedded; run again."
            )
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        self.__dict__.pop("array", None)
        with contextlib.suppress(OSError):
            self.partial.unlink()


class _ParquetWriter:
    """A Parquet file with one ``embedding`` column, one row group per chunk."""

    def __init__(self, path: Path, n_rows: int, dim: int) -> None:
        import pyarrow as pa

        self.pa, self.path, self.dim = pa, path, dim
        self.partial = _temporary_name(path)
        self.schema = pa.schema(
            [pa.field(PARQUET_COLUMN, pa.list_(pa.float32(), dim), nullable=False)]
        )
        self.writer = _pyarrow_parquet().ParquetWriter(self.partial, self.schema)

    def write(self, X: np.ndarray) -> None:
        pa = self.pa
        values = pa.array(np.ascontiguousarray(X, dtype=np.float32).reshape(-1))
        column = pa.FixedSizeListArray.from_arrays(values, self.dim)
        self.writer.write_table(pa.Table.from_arrays([column], schema=self.schema))

    def close(self) -> None:
        self.writer.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(OSError):
            self.partial.unlink()


def read_parquet_vectors(path: str | os.PathLike) -> np.ndarray:
    """The vectors of a Parquet file written by ``skbert embed``.

    Returns
    -------
    X : ndarray of shape (n_texts, dim), dtype float32
    """
    column = _pyarrow_parquet().read_table(path, columns=[PARQUET_COLUMN])[0]
    column = column.combine_chunks()
    dim = column.type.list_size
    return column.flatten().to_numpy().astype(np.float32).reshape(-1, dim)


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
        default=16384,
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
        help="run the model with torch or with ONNX Runtime on the CPU (needs "
        '"skbert[onnx]"; last layer and float32 only) (default: %(default)s)',
    )
    vectorizer.add_argument(
        "--quantize",
        action="store_true",
        help="with --backend onnx: int8 weights, about twice as fast at a small "
        "accuracy cost",
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


def _output_format(path: Path) -> str:
    found = OUTPUT_FORMATS.get(path.suffix.lower())
    if found is None:
        raise ValueError(
            f"cannot write {str(path)!r}: the output must end in .npy or .parquet."
        )
    return found


def _check_output(output: Path, input_path: Path) -> None:
    if not output.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {str(output)!r}: folder {str(output.parent)!r} does not "
            "exist."
        )
    if output.is_dir():
        raise IsADirectoryError(f"output {str(output)!r} is a folder.")
    if output.exists() and output.resolve() == input_path.resolve():
        raise ValueError("the output file would overwrite the input file.")


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
    from .._core.inputs import check_texts
    from .._core.report import warn_about
    from .._estimator.vectorizer import BertCLSVectorizer
    from .._model.resolve import local_model_folder
    from .progress import LOG_EVERY, open_progress, rate

    input_path = Path(args.input).expanduser()
    output = Path(args.output).expanduser()
    # Everything that can be checked without the model is checked first.
    source = TextSource(
        input_path,
        _input_format(input_path, args.input_format),
        args.column,
        args.encoding,
    )
    out_format = _output_format(output)
    _check_output(output, input_path)
    if out_format == "parquet":
        _pyarrow_parquet()
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
    if bar_shown or (args.progress is None and seconds >= LOG_EVERY):
        print(
            f"skbert embed: model loaded in {seconds:.1f} s; encoding {n_texts} texts",
            file=sys.stderr,
        )

    encoder = fitted_encoder(vectorizer)  # what runs: width, limit, recipe
    width = encoder.output_size  # a Dense layer of pooling="auto" included
    writer_class = _NpyWriter if out_format == "npy" else _ParquetWriter
    writer = writer_class(output, n_texts, width)
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
                writer.write(X)
                blank += sum(1 for text in chunk if not text.strip())
        writer.close()
    except BaseException:
        writer.abort()
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
