"""What ``skbert embed`` tells a person while it runs.

A terminal gets a progress bar; a log (stderr redirected to a file, a batch
job, CI) gets a line every :data:`LOG_EVERY` seconds instead of a bar's
carriage returns. Both advance per batch of texts completed, not per chunk of
the input, and both say when the model is being loaded.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["LOG_EVERY", "LogProgress", "open_progress", "rate"]

#: Seconds between two progress lines written to a log.
LOG_EVERY = 10.0


class LogProgress:
    """A progress sink with tqdm's ``update``/``n``/``close``, for logs: one
    line every :data:`LOG_EVERY` seconds (and none at all for a short run)."""

    def __init__(self, total: int, label: str, stream: TextIO) -> None:
        self.total = total
        self.n = 0
        self.label = label
        self.stream = stream
        self.start = self.last = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if n and now - self.last >= LOG_EVERY:
            self.last = now
            share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
            print(
                f"{self.label}: {self.n} of {self.total} texts{share}, "
                f"{rate(self.n, now - self.start)}",
                file=self.stream,
                flush=True,
            )

    def close(self) -> None:
        """Nothing to clear: every line written stays in the log."""

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rate(n_texts: int, seconds: float) -> str:
    """``"123 texts/s"``, or what can be said of a run too short to time."""
    if seconds <= 0:
        return "too fast to time"
    return f"{n_texts / seconds:.0f} texts/s"


def open_progress(total: int, label: str, show: bool | None) -> Any:
    """The progress of a run of ``total`` texts: a bar on a terminal (or when
    ``show`` is ``True``), log lines when stderr is not a terminal and ``show``
    is ``None``, nothing when ``show`` is ``False``."""
    from tqdm.auto import tqdm

    if show is None and not sys.stderr.isatty():
        return LogProgress(total, label, sys.stderr)
    return tqdm(total=total, unit="text", desc=label, disable=show is False)
