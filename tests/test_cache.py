"""The embedding cache: one forward pass per text for a whole pooling search.

Oracles: the same vectorizer with ``cache=None`` (a cold forward pass) and
the number of rows that actually reach the model's forward pass.
"""

from __future__ import annotations

import pickle
import signal
import sqlite3
import time
import warnings

import numpy as np
import pytest
from counting import LOG_NAME, CountingVectorizer, assert_resumes, logged_rows
from helpers import (
    POOLINGS,
    distinct_texts,
    finish_python,
    read_stored,
    start_storing_child,
    vectorizer,
)
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import skbert


def search(folder, texts, cache, grid=None, n_jobs=1):
    labels = np.arange(len(texts)) % 2
    pipe = Pipeline(
        [
            (
                "bert",
                CountingVectorizer(
                    model_name_or_path=str(folder), device="cpu", cache=cache
                ),
            ),
            ("clf", LogisticRegression(max_iter=200)),
        ]
    )
    grid = grid or {"bert__pooling": list(POOLINGS)}
    return GridSearchCV(pipe, grid, cv=5, n_jobs=n_jobs).fit(texts, labels)


@pytest.fixture(autouse=True)
def _reset_counter():
    CountingVectorizer.rows.clear()
    yield


def test_search_forwards_each_text_once_with_default_cache(tiny_model_dir):
    texts = distinct_texts(40)
    search(tiny_model_dir, texts, cache="auto")
    assert sum(CountingVectorizer.rows) == len(texts)


def test_search_without_cache_forwards_every_fold(tiny_model_dir):
    """The baseline the cache removes: >20 encodes of the same texts."""
    texts = distinct_texts(40)
    search(tiny_model_dir, texts, cache=None)
    assert sum(CountingVectorizer.rows) >= 20 * len(texts)


def test_search_over_layers_forwards_once_per_layer_selection(tiny_model_dir):
    texts = distinct_texts(30)
    grid = {"bert__pooling": ["cls", "mean", "max"], "bert__layers": [-1, 1, (0, -1)]}
    search(tiny_model_dir, texts, cache="auto", grid=grid)
    assert sum(CountingVectorizer.rows) == 3 * len(texts)


@pytest.mark.slow
def test_search_with_two_processes_shares_a_cache_directory(tiny_model_dir, tmp_path):
    texts = distinct_texts(40)
    result = search(tiny_model_dir, texts, cache=str(tmp_path), n_jobs=2)
    total, pids = logged_rows(tmp_path)
    assert total == len(texts)
    assert result.best_params_["bert__pooling"] in POOLINGS
    assert skbert.cache_info(tmp_path)["entries"] == len(texts)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("normalize", [False, True])
def test_cache_hit_equals_cold_computation(tiny_model_dir, texts, pooling, normalize):
    cold = vectorizer(tiny_model_dir, pooling=pooling, normalize=normalize)
    cold = cold.fit_transform(texts)
    for other in POOLINGS:  # fill the cache through another pooling first
        vectorizer(tiny_model_dir, pooling=other, cache="auto").fit_transform(texts)
    CountingVectorizer.rows.clear()
    warm = CountingVectorizer(
        model_name_or_path=str(tiny_model_dir),
        pooling=pooling,
        normalize=normalize,
        cache="auto",
    ).fit_transform(texts)
    assert CountingVectorizer.rows == []
    np.testing.assert_array_equal(warm, cold)


def test_pooling_only_the_pooler_less_model_has_no_pooler_entry(tiny_mlm_dir, texts):
    mean = vectorizer(tiny_mlm_dir, pooling="mean", cache="auto").fit_transform(texts)
    cold = vectorizer(tiny_mlm_dir, pooling="max").fit_transform(texts)
    warm = vectorizer(tiny_mlm_dir, pooling="max", cache="auto").fit_transform(texts)
    np.testing.assert_array_equal(warm, cold)
    assert not np.array_equal(mean, warm)


@pytest.mark.parametrize(
    "change",
    [{"max_length": 8}, {"layers": 1}, {"layers": (0, -1)}],
    ids=["max_length", "layer", "layer-tuple"],
)
def test_changed_setting_misses_the_cache(tiny_model_dir, texts, change):
    vectorizer(tiny_model_dir, cache="auto").fit_transform(texts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skbert.TruncationWarning)
        cold = vectorizer(tiny_model_dir, **change).fit_transform(texts)
        warm = CountingVectorizer(
            model_name_or_path=str(tiny_model_dir), cache="auto", **change
        ).fit_transform(texts)
    assert sum(CountingVectorizer.rows) == len(set(texts))
    np.testing.assert_array_equal(warm, cold)


def test_other_weights_in_the_same_folder_miss_the_cache(make_tiny_bert, texts):
    folder = make_tiny_bert("model", seed=0)
    first = vectorizer(folder, cache="auto").fit_transform(texts)
    make_tiny_bert("model", seed=1)  # same path, new weights
    cold = vectorizer(folder).fit_transform(texts)
    warm = vectorizer(folder, cache="auto").fit_transform(texts)
    np.testing.assert_array_equal(warm, cold)
    assert not np.allclose(first, warm)


def test_duplicates_in_one_call_are_encoded_once(tiny_model_dir, texts):
    doubled = texts + texts[::-1] + texts[:3]
    result = CountingVectorizer(
        model_name_or_path=str(tiny_model_dir), cache=None
    ).fit_transform(doubled)
    assert sum(CountingVectorizer.rows) == len(set(texts))
    single = vectorizer(tiny_model_dir).fit_transform(texts)
    index = {text: i for i, text in enumerate(texts)}
    np.testing.assert_array_equal(result, single[[index[t] for t in doubled]])


def test_memory_budget_evicts_least_recently_used(tiny_model_dir):
    texts = distinct_texts(300)
    old, new = texts[:50], texts[50:100]
    entry_bytes = 5 * 4 * 32  # (4 poolings + flags) x hidden 32 x float32
    budget = 50 * entry_bytes
    skbert.set_memory_cache_limit(budget)

    def forwarded(batch):
        CountingVectorizer.rows.clear()
        CountingVectorizer(
            model_name_or_path=str(tiny_model_dir), cache="auto"
        ).fit_transform(batch)
        return sum(CountingVectorizer.rows)

    try:
        larger = texts[100:]  # four times the budget
        warm = vectorizer(tiny_model_dir, cache="auto").fit_transform(larger)
        info = skbert.cache_info()
        assert info["bytes"] <= budget
        assert info["entries"] == 50
        cold = vectorizer(tiny_model_dir).fit_transform(larger)
        np.testing.assert_array_equal(warm, cold)
        assert forwarded(old) == 50
        assert forwarded(old) == 0  # now cached
        assert forwarded(new) == 50  # fills the budget, evicting `old`
        assert forwarded(new) == 0
        assert forwarded(old) == 50
        assert skbert.cache_info()["bytes"] <= budget
    finally:
        skbert.set_memory_cache_limit(2**30)


def test_cache_info_counts_and_clear(tiny_model_dir, texts, tmp_path):
    model = vectorizer(tiny_model_dir, cache=str(tmp_path)).fit(texts)
    model.transform(texts)
    model.transform(texts)
    info = skbert.cache_info(tmp_path)
    n = len(set(texts))
    assert (info["entries"], info["hits"], info["misses"]) == (n, n, n)
    assert info["bytes"] > n * 5 * 4 * 32
    skbert.clear_cache(tmp_path)
    assert skbert.cache_info(tmp_path)["entries"] == 0


def test_corrupted_disk_entry_is_recomputed(tiny_model_dir, texts, tmp_path):
    cold = vectorizer(tiny_model_dir).fit_transform(texts)
    vectorizer(tiny_model_dir, cache=str(tmp_path)).fit_transform(texts)
    with sqlite3.connect(tmp_path / "embeddings.sqlite") as conn:
        conn.execute("UPDATE vectors SET data = zeroblob(length(data))")  # all bad
        conn.execute(
            "UPDATE vectors SET data = substr(data, 1, 10) WHERE rowid = 1"
        )  # one truncated
    with pytest.warns(RuntimeWarning, match="failed their checksum"):
        warm = CountingVectorizer(
            model_name_or_path=str(tiny_model_dir), cache=str(tmp_path)
        ).fit_transform(texts)
    np.testing.assert_array_equal(warm, cold)
    assert sum(logged_rows(tmp_path)[:1]) == len(set(texts))


def test_unreadable_cache_file_is_moved_aside(tiny_model_dir, texts, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "embeddings.sqlite").write_bytes(b"this is not a database" * 100)
    cold = vectorizer(tiny_model_dir).fit_transform(texts)
    with pytest.warns(RuntimeWarning, match="unreadable"):
        warm = vectorizer(tiny_model_dir, cache=str(cache)).fit_transform(texts)
    np.testing.assert_array_equal(warm, cold)
    assert any(p.name.startswith("embeddings.sqlite.corrupt-") for p in cache.iterdir())


def test_cache_setting_survives_clone_set_params_and_pickle(tiny_model_dir, tmp_path):
    model = vectorizer(tiny_model_dir, cache=str(tmp_path))
    assert clone(model).get_params()["cache"] == str(tmp_path)
    model.set_params(cache=None).set_params(cache=str(tmp_path))
    fitted = model.fit(["a"])
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.get_params()["cache"] == str(tmp_path)
    restored.transform(["a film"])
    assert skbert.cache_info(tmp_path)["entries"] == 1


@pytest.mark.slow
def test_killed_process_leaves_a_usable_cache(tiny_model_dir, tmp_path):
    """SIGKILL during a cached transform; a rerun encodes only what is missing."""
    texts = distinct_texts(600)
    cache = tmp_path / "cache"
    child = start_storing_child(
        tiny_model_dir, cache, texts, batch_size=16, cwd=tmp_path, pause=0.2
    )
    stored = read_stored(child, 64)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    time.sleep(0.1)
    entries = skbert.cache_info(cache)["entries"]
    assert stored <= entries < len(texts)
    assert_resumes(tiny_model_dir, cache, texts, entries)


def test_a_process_alone_batches_a_cache_directory_as_it_batches_no_cache(
    tiny_model_dir, tmp_path
):
    # A cache directory may be shared, so its missing texts are taken in parts;
    # a process alone takes them several at a time, not one batch plan per
    # part (1,100 texts in batches of 128 were 15 forward passes, not 9).
    texts = distinct_texts(1100)
    batches = {}
    for name, cache in (("cold", None), ("directory", str(tmp_path / "cache"))):
        CountingVectorizer.rows.clear()
        counted = CountingVectorizer(
            model_name_or_path=str(tiny_model_dir),
            device="cpu",
            batch_size=128,
            cache=cache,
        ).fit_transform(texts)
        if cache is None:
            batches[name] = len(CountingVectorizer.rows)
            cold = counted
        else:
            batches[name] = (
                len((tmp_path / "cache" / LOG_NAME).read_text().split()) // 2
            )
            np.testing.assert_allclose(counted, cold, atol=1e-6, rtol=0)

    assert batches["cold"] == 9
    assert batches["directory"] <= batches["cold"] + 2


@pytest.mark.slow
def test_processes_sharing_a_cache_encode_different_texts_at_once(
    tiny_model_dir, tiny_oracle, tmp_path
):
    """While another process encodes the same texts slowly, this one encodes
    the parts of them that the other is not encoding, instead of waiting for
    all of them (on two cores, a parallel search's workers each took one
    core's turn); no text is encoded by both."""
    texts = distinct_texts(200)
    cache = tmp_path / "cache"
    child = start_storing_child(
        tiny_model_dir, cache, texts, batch_size=4, cwd=tmp_path, pause=0.25
    )
    theirs = read_stored(child, 4)  # the child is encoding (~12 s for all)

    ours = CountingVectorizer(
        model_name_or_path=str(tiny_model_dir),
        device="cpu",
        batch_size=4,
        cache=str(cache),
    ).fit_transform(texts)

    forwarded = logged_rows(cache)[0] if (cache / LOG_NAME).exists() else 0
    theirs += sum(
        int(line.split()[1]) for line in finish_python(child).split("\n") if line
    )
    assert forwarded > 0, "this process waited for the other's texts"
    assert forwarded + theirs == len(texts), "a text was encoded twice"
    np.testing.assert_allclose(
        ours, tiny_oracle.vectors(texts, "cls"), atol=1e-5, rtol=0
    )


def test_a_collected_disk_store_closes_its_presence_file(tmp_path):
    # The presence lock is held while the store is in use; a store that is
    # collected (and every store at exit) closes it instead of leaving Python
    # to warn "unclosed file .../presence.lock".
    import fcntl
    import gc

    store = skbert._storage.cache.DiskStore(tmp_path / "cache")
    store.put_many({b"key": np.ones((2, 3), dtype=np.float32)})
    assert store.get_many([b"key"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del store
        gc.collect()
    unclosed = [str(w.message) for w in caught if w.category is ResourceWarning]
    # (Python 3.13 also reports the thread's SQLite connection, closed by its
    # own finalizer; this test is about the presence file)
    assert [message for message in unclosed if "presence.lock" in message] == []
    with open(tmp_path / "cache" / "presence.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it now


LOOK_ALIKES = ["None", "none", "", "Auto", "auto ", "off", "AUTO", "false", "0"]


@pytest.mark.parametrize("word", LOOK_ALIKES)
def test_a_word_that_is_not_a_cache_value_is_refused_not_made_a_folder(
    tiny_model_dir, tmp_path, monkeypatch, word
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"cache=.*use cache=None"):
        vectorizer(tiny_model_dir, cache=word).fit_transform(["a great film"])
    with pytest.raises(ValueError, match=r"cache=.*use cache=None"):
        skbert.cache_info(word)

    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_folder_named_like_a_word_is_still_a_cache_given_as_a_path(
    tiny_model_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    vectorizer(tiny_model_dir, cache="./none").fit_transform(["a great film"])
    assert skbert.cache_info(tmp_path / "none")["entries"] == 1
