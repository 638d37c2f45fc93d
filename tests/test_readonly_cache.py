"""A cache the process may read but not write is served, read-only, with one
warning (issue 25, item 1): a folder or database made read-only with
``chmod -R a-w``, only the folder made read-only, and a cache owned by another
user. ``transform`` never fails and never recomputes a servable vector;
``cache_info`` describes the cache.

The oracle is the vectors the same model gave when the cache was filled
(written by this process, before the cache was made read-only), and the store's
hit counter. Permission bits do not bind root, so under root the reading
process is a child that gives up the capabilities that override them
(``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``, ``CAP_FOWNER``).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from helpers import child_command, clean_env, distinct_texts, vectorizer

import skbert._storage.cache

NOBODY = 65534
#: ``prctl(PR_CAPBSET_DROP, ...)`` and the capabilities that let root ignore
#: permission bits.
_PR_CAPBSET_DROP = 24
_OVERRIDING_CAPABILITIES = (1, 2, 3)
N_TEXTS = 300

READER = """
import json, sys, warnings
import numpy as np
import skbert

base = sys.argv[1]
config = json.load(open(base + "/config.json"))
expected = np.load(base + "/expected.npy")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    vectorizer = skbert.BertCLSVectorizer(
        model_name_or_path=config["model"], device="cpu", pooling="mean",
        cache=config["cache"],
    )
    out = vectorizer.fit(config["texts"][:1]).transform(
        config["texts"] + ["a text that was never cached"]
    )
    info = skbert.cache_info(config["cache"])
    skbert.BertCLSVectorizer(
        model_name_or_path=config["model"], device="cpu", pooling="mean",
        cache=config["cache"],
    ).fit_transform(["another text that was never cached"])
print(json.dumps({
    "hits": info["hits"], "misses": info["misses"], "entries": info["entries"],
    "difference": float(np.abs(out[: len(expected)] - expected).max()),
    "warnings": [str(w.message) for w in caught
                 if issubclass(w.category, RuntimeWarning)],
}))
"""


def _is_root() -> bool:
    return os.geteuid() == 0


def _bound_by_permissions() -> None:
    """In the child before it runs Python: root's exec keeps no capability
    that overrides permission bits."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in _OVERRIDING_CAPABILITIES:
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture(params=["closed", "with its log"])
def filled_cache(request, tiny_model_dir):
    """A folder with the model, a cache of 300 texts and the vectors they got
    (the oracle); the cache closed, or with its write-ahead log."""
    base = Path(tempfile.mkdtemp(prefix="skbert-ro-"))
    model = base / "model"
    shutil.copytree(tiny_model_dir, model)
    cache = base / "cache"
    texts = distinct_texts(N_TEXTS, seed=3)
    expected = vectorizer(model, cache=str(cache), pooling="mean").fit_transform(texts)
    store = skbert._storage.cache._DISK.pop(cache.resolve())
    if request.param == "closed":  # as a finished session leaves it: closing
        # folds the write-ahead log into the database and removes it
        store._local.conn.close()
        assert not Path(f"{cache}/embeddings.sqlite-wal").exists()
    else:  # as a running or killed session leaves it: the log is there
        assert Path(f"{cache}/embeddings.sqlite-wal").exists()
    np.save(base / "expected.npy", expected)
    config = {"model": str(model), "cache": str(cache), "texts": texts}
    (base / "config.json").write_text(json.dumps(config))
    yield base
    store._local.conn.close()
    for path in [base, *base.rglob("*")]:  # writable again, to be removed
        path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(base)


def _read(base: Path) -> dict:
    try:
        done = subprocess.run(
            [*child_command(READER), str(base)],
            cwd=base,
            env=clean_env(base / "hf-home"),
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=_bound_by_permissions if _is_root() else None,
        )
    except subprocess.SubprocessError as exc:  # prctl refused (a sandbox)
        pytest.skip(f"cannot give up root's capabilities here: {exc}")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _own(base: Path, user: int) -> None:
    for path in [base / "cache", *(base / "cache").rglob("*")]:
        os.chown(path, user, user)


def _check_served(result: dict, base: Path, *, read_only: bool = True) -> None:
    assert result["hits"] == N_TEXTS, result  # every cached vector served
    assert result["misses"] == 1, result  # only the new text computed
    assert result["difference"] <= 1e-6
    said = [w for w in result["warnings"] if "read-only" in w]
    if not read_only:  # still writable: stored, and nothing to say
        assert result["entries"] == N_TEXTS + 1
        assert said == []
        return
    assert result["entries"] == N_TEXTS
    assert len(said) == 1, result["warnings"]  # said once, not per call
    assert str((base / "cache").resolve()) in said[0]  # names the cache


@pytest.mark.slow  # a child process per case
@pytest.mark.parametrize("what", ["everything", "folder"])
def test_a_read_only_cache_is_served_with_one_warning(filled_cache, what):
    """``chmod -R a-w`` on the cache, or on its folder only. A folder made
    read-only around a database whose log is there is still writable (nothing
    need be created): it stores the new vectors."""
    cache = filled_cache / "cache"
    targets = [cache, *cache.rglob("*")] if what == "everything" else [cache]
    for path in targets:
        path.chmod(path.stat().st_mode & ~0o222)
    log_left = Path(f"{cache}/embeddings.sqlite-wal").exists()
    writable = what == "folder" and log_left
    _check_served(_read(filled_cache), filled_cache, read_only=not writable)


@pytest.mark.slow  # a child process per case
def test_a_cache_owned_by_another_user_is_served(filled_cache):
    """Readable by all, writable by its owner (``nobody``) only."""
    if not _is_root():
        pytest.skip("only root can give a cache to another user")
    _own(filled_cache, NOBODY)
    _check_served(_read(filled_cache), filled_cache)
