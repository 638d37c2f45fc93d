"""Long runs lose nothing and many callers share one model: interrupts, threads
and memory over a long stream.

Oracles: a cold ``cache=None`` run for the vectors, and the number of rows
that reach the model's forward pass (``CountingVectorizer``) for "recomputes
only what was missing". ``tests/test_cache.py`` covers SIGKILL; this file
covers KeyboardInterrupt, in-process and as a real SIGINT.
"""

from __future__ import annotations

import fcntl
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from counting import CountingVectorizer, assert_resumes
from helpers import (
    distinct_texts,
    in_threads,
    read_stored,
    start_storing_child,
    vectorizer,
)
from sklearn.base import clone

import skbert
import skbert._storage.cache


@pytest.fixture(autouse=True)
def _reset_counter():
    CountingVectorizer.rows.clear()
    yield


def assert_compute_locks_free(cache_dir) -> None:
    for lock in cache_dir.glob("lock-*"):
        with open(lock, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if held


def assert_database_writable(cache_dir) -> None:
    """Another connection can take the write lock at once."""
    conn = sqlite3.connect(
        cache_dir / "embeddings.sqlite", timeout=1, isolation_level=None
    )
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    finally:
        conn.close()


# -- KeyboardInterrupt ------------------------------------------------------


@pytest.mark.parametrize("where", ["directory", "auto"])
def test_keyboard_interrupt_mid_transform_loses_nothing(
    tiny_model_dir, tmp_path, monkeypatch, where
):
    texts = distinct_texts(400)
    cache = tmp_path / "cache" if where == "directory" else "auto"
    store_class = type(skbert._storage.cache.get_store(str(cache)))
    original_put = store_class.put_many
    batches = []

    def interrupted_after_five_batches(self, items):
        if len(batches) == 5:  # Ctrl-C during the sixth batch
            raise KeyboardInterrupt
        batches.append(len(items))
        original_put(self, items)

    monkeypatch.setattr(store_class, "put_many", interrupted_after_five_batches)
    with pytest.raises(KeyboardInterrupt):
        vectorizer(tiny_model_dir, batch_size=16, cache=str(cache)).fit_transform(texts)
    monkeypatch.setattr(store_class, "put_many", original_put)
    stored = sum(batches)
    # (a shared cache directory encodes its missing texts in parts, whose last
    # batch may be smaller than 16)
    assert len(batches) == 5 and 5 <= stored <= 5 * 16
    assert skbert.cache_info(str(cache))["entries"] == stored
    if where == "directory":
        assert_compute_locks_free(cache)
        assert_database_writable(cache)

    # the same process goes on (as in a notebook after Ctrl-C)
    assert_resumes(tiny_model_dir, cache, texts, stored)


BLOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


#: The other writer holds its lock this long unless the Ctrl-C came through:
#: far less than SQLite's busy timeout, far more than the 1 s a user waits.
HOLD_SECONDS = 20.0


def _interrupt_while_waiting(model_dir, cache: Path, texts, monkeypatch) -> float:
    """Press Ctrl-C while ``put_many`` waits for another process's write lock,
    which that process keeps for :data:`HOLD_SECONDS`; the seconds from the
    signal to ``fit_transform`` raising KeyboardInterrupt (inf: never)."""
    vectorizer(model_dir, cache=str(cache)).fit_transform(texts[:1])
    blocker = subprocess.Popen(
        [sys.executable, "-c", BLOCKER, str(cache / "embeddings.sqlite")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert blocker.stdout.readline().strip() == "locked"
    original_put = skbert._storage.cache.DiskStore.put_many
    main_thread = threading.get_ident()
    waiting, interrupted = threading.Event(), threading.Event()
    pressed: list[float] = []

    def press_ctrl_c_then_release() -> None:
        waiting.wait(30)
        time.sleep(0.5)  # put_many is waiting for the lock by now
        pressed.append(time.monotonic())
        signal.pthread_kill(main_thread, signal.SIGINT)
        interrupted.wait(HOLD_SECONDS)
        blocker.stdin.write("release\n")
        blocker.stdin.flush()

    def put_while_another_process_writes(self, items):
        monkeypatch.setattr(skbert._storage.cache.DiskStore, "put_many", original_put)
        waiting.set()
        original_put(self, items)

    presser = threading.Thread(target=press_ctrl_c_then_release)
    presser.start()
    monkeypatch.setattr(
        skbert._storage.cache.DiskStore, "put_many", put_while_another_process_writes
    )
    try:
        vectorizer(model_dir, batch_size=16, cache=str(cache)).fit_transform(texts)
    except KeyboardInterrupt:
        return time.monotonic() - pressed[0]
    finally:
        interrupted.set()
        waiting.set()
        presser.join(30)
        blocker.communicate(timeout=30)
    return float("inf")


@pytest.mark.slow
def test_ctrl_c_while_waiting_for_another_writer_leaves_the_cache_usable(
    tiny_model_dir, tmp_path, monkeypatch
):
    """SIGINT arrives while ``put_many`` waits for another process's write
    lock, which that process keeps for 20 s more: Python raises it at once
    (issue 25, item 2: it came after the lock was released), and the cache is
    left usable."""
    texts = distinct_texts(200)
    cache = tmp_path / "cache"
    # Python's own handler, as in a user's shell: a test run started as a
    # background job inherits SIGINT ignored, and then nothing is raised
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        seconds = _interrupt_while_waiting(tiny_model_dir, cache, texts, monkeypatch)
    finally:
        signal.signal(signal.SIGINT, previous)

    # within 1 s on an idle machine (measured: see docs/reliability.md); the
    # bound leaves room for a loaded one and still fails a wait for the lock
    assert seconds < 2.0
    assert_database_writable(cache)  # no write transaction left open
    assert_compute_locks_free(cache)
    assert_resumes(tiny_model_dir, cache, texts, 1)


@pytest.mark.slow
def test_sigint_to_a_process_mid_transform_loses_nothing(tiny_model_dir, tmp_path):
    """A real Ctrl-C, at whatever point the child is, after >= 64 stored rows."""
    texts = distinct_texts(500, seed=1)
    cache = tmp_path / "cache"
    # a pause after each stored batch keeps the child running for more than a
    # second after the 64th row, so the Ctrl-C cannot come after its last batch
    child = start_storing_child(
        tiny_model_dir, cache, texts, batch_size=8, cwd=tmp_path, pause=0.02
    )
    stored = read_stored(child, 64)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode != 0 and "KeyboardInterrupt" in stderr, stderr

    entries = skbert.cache_info(cache)["entries"]
    assert stored <= entries < len(texts)
    assert_compute_locks_free(cache)
    assert_database_writable(cache)
    assert_resumes(tiny_model_dir, cache, texts, entries)


# -- threads ----------------------------------------------------------------


@pytest.mark.parametrize("cache", [None, "auto", "directory"])
def test_eight_threads_share_one_fitted_vectorizer(tiny_model_dir, tmp_path, cache):
    """As in a web server: each caller gets the vectors of its own texts."""
    per_thread = [distinct_texts(20, seed=thread, longest=30) for thread in range(8)]
    shared = per_thread[0][:5]  # every thread also asks for these
    per_thread = [texts + shared for texts in per_thread]
    model = vectorizer(tiny_model_dir, pooling="mean", batch_size=8).fit(["probe"])
    expected = [model.transform(texts) for texts in per_thread]
    model.set_params(cache=str(tmp_path / "cache") if cache == "directory" else cache)

    def work(thread: int) -> list[np.ndarray]:
        return [model.transform(per_thread[thread]) for _ in range(2)]

    results = in_threads(range(8), work)

    for thread, runs in enumerate(results):
        for vectors in runs:  # the second run is served from the cache
            np.testing.assert_allclose(vectors, expected[thread], atol=1e-5, rtol=0)


def test_threads_with_different_max_length_share_a_model_safely(tiny_model_dir):
    # Clones share the loaded model and its tokenizer (one load per process);
    # a thread's truncation length must not leak into another's call.
    texts = distinct_texts(120, seed=5, longest=60)
    base = vectorizer(tiny_model_dir, batch_size=64)
    models = [
        clone(base).set_params(max_length=m).fit(["probe"]) for m in (8, 16, 32, 64)
    ]
    with pytest.warns(skbert.TruncationWarning):
        expected = [model.transform(texts) for model in models]
    callers = [i % len(models) for i in range(8)]

    def work(index: int) -> list[np.ndarray]:
        return [models[index].transform(texts) for _ in range(3)]

    with pytest.warns(skbert.TruncationWarning):
        results = in_threads(callers, work)

    wrong = [
        (models[index].max_length, run)
        for index, runs in zip(callers, results, strict=True)
        for run, vectors in enumerate(runs)
        if not np.allclose(vectors, expected[index], atol=1e-5, rtol=0)
    ]
    assert not wrong, f"(max_length, run) with another caller's vectors: {wrong}"


# -- memory over a long stream ----------------------------------------------


@pytest.mark.slow
def test_memory_stays_flat_over_a_stream_of_texts(tiny_model_dir):
    """20,000 distinct texts in chunks of 2,000: after two warm-up chunks what
    Python and numpy keep may not grow. Each chunk's output (250 kB) is
    dropped, so keeping even one chunk's output per chunk would show as 2 MiB
    over the run, and the token ids (about 1 MiB per chunk) as 8 MiB; the bound
    is 1 MiB. tracemalloc counts exactly what is allocated and not freed; the
    resident size also includes the allocators' arenas, which grow in steps
    (a one-time step of 13 MiB at the sixth chunk with tokenizers 0.23), so
    it only bounds gross growth."""
    import tracemalloc

    import psutil

    texts = distinct_texts(20_000, seed=7, longest=20)
    chunks = [texts[i : i + 2_000] for i in range(0, len(texts), 2_000)]
    model = vectorizer(tiny_model_dir, batch_size=256).fit(["probe"])
    process = psutil.Process()
    rss, kept = [], []
    tracemalloc.start()
    try:
        for chunk in chunks:
            assert model.transform(chunk).shape == (len(chunk), 32)
            rss.append(process.memory_info().rss / 2**20)
            kept.append(tracemalloc.get_traced_memory()[0] / 2**20)
    finally:
        tracemalloc.stop()

    growth = max(kept[2:]) - kept[1]
    assert growth < 1, f"kept after each chunk (MiB): {[round(k, 2) for k in kept]}"
    assert max(rss[2:]) - rss[1] < 48, f"RSS (MiB): {[round(r, 1) for r in rss]}"
