"""The texts of a file, streamed: CSV, TSV, Parquet, JSON Lines or plain text.

Rows are read lazily in chunks; a value that is not text, an undecodable byte
or a missing column is an error naming the file, the row and the column.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "INPUT_FORMATS",
    "TextSource",
    "input_format",
    "pyarrow_parquet",
    "read_texts",
]

#: Parquet rows decoded at a time.
_PARQUET_BATCH = 4096

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
DEFAULT_COLUMN = "text"
_NEEDS_PYARROW = (
    "Parquet files need the pyarrow package: pip install pyarrow "
    '(or pip install "skbert[dask]", which includes it).'
)


def input_format(path: Path, declared: str | None) -> str:
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


def pyarrow_parquet() -> Any:
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
            schema = pyarrow_parquet().ParquetFile(self.path).schema_arrow
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
            parquet = pyarrow_parquet().ParquetFile(self.path)
            row = 0
            for batch in parquet.iter_batches(
                batch_size=_PARQUET_BATCH, columns=[self.column]
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
            return pyarrow_parquet().ParquetFile(self.path).metadata.num_rows
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
    source = TextSource(path, input_format(path, fmt), column, encoding)
    return list(source.texts())
