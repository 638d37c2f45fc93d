"""A vectorizer that records how many texts reach the model's forward pass.

Importable by joblib's worker processes (they get the test's ``sys.path``), so
forward passes are counted across processes: each batch appends a line to a
log file. The log lives in the cache directory (a parameter, so it travels to
the workers with the estimator), the file that ``$SKBERT_TEST_FORWARD_LOG``
names, or, with neither, the class-level list ``CountingVectorizer.rows``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from unittest import mock

import numpy as np
from helpers import vectorizer

import skbert._encoding.batching
from skbert import BertCLSVectorizer

LOG_NAME = "forward-rows.log"
#: With ``cache="auto"``: the file every process appends its forward rows to
#: (worker processes inherit the environment).
LOG_ENV = "SKBERT_TEST_FORWARD_LOG"
#: The file every process appends a line ``pid`` to for each checkpoint it
#: reads from disk (transformers' ``from_pretrained``) inside fit or transform.
LOAD_LOG_ENV = "SKBERT_TEST_LOAD_LOG"


@contextlib.contextmanager
def logging_loads():
    """Inside the block, every model transformers reads is logged (``pid``) to
    the file ``$SKBERT_TEST_LOAD_LOG`` names, if it is set."""
    log_file = os.environ.get(LOAD_LOG_ENV)
    if log_file is None:
        yield
        return
    from transformers.modeling_utils import PreTrainedModel

    original = PreTrainedModel.from_pretrained.__func__

    def logged(cls, *args, **kwargs):
        with open(log_file, "a") as log:
            log.write(f"{os.getpid()}\n")
        return original(cls, *args, **kwargs)

    with mock.patch.object(PreTrainedModel, "from_pretrained", classmethod(logged)):
        yield


class CountingVectorizer(BertCLSVectorizer):
    rows: list[int] = []

    def fit(self, X, y=None):
        with logging_loads():
            return super().fit(X, y)

    def _encode(self, texts):  # under transform and fit_transform
        original = skbert._encoding.batching.pool_batch
        log_file = os.environ.get(LOG_ENV)
        if self.cache not in (None, "auto"):
            log_file = str(Path(self.cache) / LOG_NAME)

        def counting(loaded, batch, *args):
            n_rows = int(batch["input_ids"].shape[0])
            if log_file is None:
                CountingVectorizer.rows.append(n_rows)
            else:
                with open(log_file, "a") as log:
                    log.write(f"{os.getpid()} {n_rows}\n")
            return original(loaded, batch, *args)

        with (
            mock.patch.object(skbert._encoding.batching, "pool_batch", counting),
            logging_loads(),
        ):
            return super()._encode(texts)


def logged_rows(cache_dir: Path) -> tuple[int, set[int]]:
    """Total rows forwarded and the set of worker pids, from the log."""
    lines = (cache_dir / LOG_NAME).read_text().split()
    pids = {int(pid) for pid in lines[0::2]}
    return sum(int(n) for n in lines[1::2]), pids


def forwarded_rows(cache: str | Path) -> int:
    """Rows forwarded by ``CountingVectorizer`` with this ``cache``."""
    if cache == "auto":
        return sum(CountingVectorizer.rows)
    if not (Path(cache) / LOG_NAME).exists():
        return 0
    return logged_rows(Path(cache))[0]


def assert_resumes(folder: str | Path, cache: str | Path, texts, stored: int) -> None:
    """A rerun over ``texts`` forwards only those not ``stored`` in ``cache`` yet,
    and gives the vectors of a cold run (within batch-invariance noise: the
    rerun batches only the missing texts, so padding differs)."""
    again = CountingVectorizer(
        model_name_or_path=str(folder), device="cpu", cache=str(cache)
    ).fit_transform(texts)
    assert forwarded_rows(cache) == len(texts) - stored
    cold = vectorizer(folder).fit_transform(texts)
    np.testing.assert_allclose(again, cold, atol=1e-5, rtol=0)


#: The file every process appends its tuning runs to (``CountingTuner``).
TUNE_LOG_ENV = "SKBERT_TEST_TUNE_LOG"


class CountingTuner(BertCLSVectorizer):
    """A vectorizer that logs every tuning run (``pid n_texts``) to the file
    ``$SKBERT_TEST_TUNE_LOG`` names: worker processes inherit it."""

    def fit(self, X, y=None):
        import skbert._tuning.loop

        original = skbert._tuning.loop.tune

        def counting(base, spec, texts, *args, **kwargs):
            with open(os.environ[TUNE_LOG_ENV], "a") as log:
                log.write(f"{os.getpid()} {len(texts)}\n")
            return original(base, spec, texts, *args, **kwargs)

        with mock.patch.object(skbert._tuning.loop, "tune", counting):
            return super().fit(X, y)
