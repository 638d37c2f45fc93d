"""A parallel search encodes each text once, with the default cache.

``GridSearchCV(..., n_jobs=2)`` runs in a fresh process whose temporary
folder is private to the test: every process (the parent and its loky
workers) logs the rows it forwards through the model, and after the process
exits nothing it made is left in that folder.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from counting import LOAD_LOG_ENV, LOG_ENV
from helpers import distinct_texts, run_in_private_tmp, vectorizer

SEARCH = """
import os
import numpy as np
from counting import CountingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

texts = {texts!r}
labels = np.arange(len(texts)) % 2
pipe = Pipeline([
    ("bert", CountingVectorizer(model_name_or_path={folder!r}, device="cpu")),
    ("clf", LogisticRegression(max_iter=200)),
])
grid = {{"bert__pooling": ["cls", "pooler", "mean", "max"]}}
search = GridSearchCV(pipe, grid, cv=5, n_jobs=2).fit(texts, labels)
print("best", search.best_params_["bert__pooling"])
if "SKBERT_TEST_PARENT_FILE" in os.environ:
    with open(os.environ["SKBERT_TEST_PARENT_FILE"], "w") as parent:
        parent.write(str(os.getpid()))
"""


def run_search(folder: Path, texts: list[str], tmp_path: Path) -> tuple[int, set]:
    log = tmp_path / "forward.log"
    code = SEARCH.format(texts=texts, folder=str(folder))
    private_tmp = run_in_private_tmp(code, tmp_path, **{LOG_ENV: str(log)})
    numbers = log.read_text().split()
    rows = sum(int(n) for n in numbers[1::2])
    pids = {int(pid) for pid in numbers[0::2]}
    return rows, pids, sorted(p.name for p in private_tmp.iterdir())


AGAIN = """
from joblib.externals.loky import get_reusable_executor

get_reusable_executor().shutdown(wait=True)  # the second search starts new workers
with open(os.environ["SKBERT_TEST_LOAD_LOG"], "a") as log:
    log.write("again\\n")
GridSearchCV(pipe, grid, cv=5, n_jobs=2).fit(texts, labels)
"""


def test_processes_whose_texts_are_all_cached_read_no_model(tiny_model_dir, tmp_path):
    # Every text reaches the session cache in the workers; the parent's refit
    # finds them all there under the identity the workers derived (noted in
    # the session with the folder's stamp), so it neither loads nor
    # fingerprints the checkpoint; each worker reads it once at most. A second
    # search in new workers finds every text cached: nobody reads the model.
    texts = distinct_texts(60, seed=23)
    loads = tmp_path / "loads.log"
    code = SEARCH.format(texts=texts, folder=str(tiny_model_dir)) + AGAIN
    parent_file = tmp_path / "parent.pid"
    env = {
        LOG_ENV: str(tmp_path / "forward.log"),
        LOAD_LOG_ENV: str(loads),
        "SKBERT_TEST_PARENT_FILE": str(parent_file),
    }
    run_in_private_tmp(code, tmp_path, **env)
    first, again = loads.read_text().split("again")
    by_pid = Counter(int(pid) for pid in first.split())
    parent = int(parent_file.read_text())
    assert by_pid.get(parent, 0) == 0, f"the parent read the model: {dict(by_pid)}"
    assert by_pid and max(by_pid.values()) == 1, f"reads per process: {dict(by_pid)}"
    assert again.split() == [], f"the second search read the model: {again}"


def test_search_with_two_workers_forwards_each_text_once(tiny_model_dir, tmp_path):
    texts = distinct_texts(60, seed=21)

    rows, pids, left = run_search(tiny_model_dir, texts, tmp_path)

    assert rows == len(texts), f"{rows} rows forwarded for {len(texts)} texts"
    assert left == [], f"files left behind: {left}"
    assert pids  # at least one worker forwarded


def test_a_threaded_search_shares_the_in_process_cache(tiny_model_dir, monkeypatch):
    # Counted by one patch for all threads (CountingVectorizer patches per call,
    # which threads would stack).
    import threading

    import numpy as np
    from joblib import parallel_backend
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    import skbert._encoding.batching

    rows, lock = [], threading.Lock()
    original = skbert._encoding.batching.pool_batch

    def counting(loaded, batch, *args):
        with lock:
            rows.append(int(batch["input_ids"].shape[0]))
        return original(loaded, batch, *args)

    monkeypatch.setattr(skbert._encoding.batching, "pool_batch", counting)
    texts = distinct_texts(60, seed=22)
    bert = vectorizer(tiny_model_dir, cache="auto")
    pipe = Pipeline([("bert", bert), ("clf", LogisticRegression(max_iter=200))])
    grid = {"bert__pooling": ["cls", "pooler", "mean", "max"]}
    with parallel_backend("threading", n_jobs=4):
        GridSearchCV(pipe, grid, cv=5).fit(texts, np.arange(60) % 2)
    assert sum(rows) == len(texts)
