"""Vectors written chunk by chunk to ``.npy`` or ``.parquet``; the output
appears under its name only once it is complete."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from .reading import pyarrow_parquet

__all__ = [
    "OUTPUT_FORMATS",
    "PARQUET_COLUMN",
    "check_output",
    "output_format",
    "read_parquet_vectors",
    "writer",
]

OUTPUT_FORMATS = {".npy": "npy", ".parquet": "parquet", ".pq": "parquet"}
#: Name of the Parquet output column (a fixed-size list of float32 per row).
PARQUET_COLUMN = "embedding"


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial")


class NpyWriter:
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


class ParquetWriter:
    """A Parquet file with one ``embedding`` column, one row group per chunk."""

    def __init__(self, path: Path, n_rows: int, dim: int) -> None:
        import pyarrow as pa

        self.pa, self.path, self.dim = pa, path, dim
        self.partial = _temporary_name(path)
        self.schema = pa.schema(
            [pa.field(PARQUET_COLUMN, pa.list_(pa.float32(), dim), nullable=False)]
        )
        self.writer = pyarrow_parquet().ParquetWriter(self.partial, self.schema)

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
    column = pyarrow_parquet().read_table(path, columns=[PARQUET_COLUMN])[0]
    column = column.combine_chunks()
    dim = column.type.list_size
    return column.flatten().to_numpy().astype(np.float32).reshape(-1, dim)


def output_format(path: Path) -> str:
    found = OUTPUT_FORMATS.get(path.suffix.lower())
    if found is None:
        raise ValueError(
            f"cannot write {str(path)!r}: the output must end in .npy or .parquet."
        )
    return found


def check_output(output: Path, input_path: Path) -> None:
    if not output.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {str(output)!r}: folder {str(output.parent)!r} does not "
            "exist."
        )
    if output.is_dir():
        raise IsADirectoryError(f"output {str(output)!r} is a folder.")
    if output.exists() and output.resolve() == input_path.resolve():
        raise ValueError("the output file would overwrite the input file.")


def writer(fmt: str, path: Path, n_rows: int, dim: int) -> NpyWriter | ParquetWriter:
    """A writer of ``n_rows`` vectors of length ``dim`` to ``path`` in ``fmt``."""
    return (NpyWriter if fmt == "npy" else ParquetWriter)(path, n_rows, dim)
