"""One model identity: regression tests for the failures of issue 11.

Each test reproduces one failure found on the first version (stale ONNX
graphs, refused valid pickles, wrong vectors under concurrency, code run from
a file, a busy cache treated as corrupt, relative paths in pickles, parameters
read at the wrong time, process-global state changed in place, pickles without
versions, a cache that makes ``transform`` fail). The oracle is transformers'
own model run on each text alone (``BertOracle``) or a fresh, uncached torch
vectorizer, never the code path under test.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import sqlite3
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    WORDS,
    BertOracle,
    distinct_texts,
    run_python,
    vectorizer,
    versions_installed,
)

import skbert

TEXTS = ["a great film", "dull and far too long", "the best story", "bad", ""]


def change_config(folder: Path, **entries) -> None:
    """Rewrite ``config.json`` of ``folder`` with ``entries`` changed."""
    config = json.loads((folder / "config.json").read_text())
    config.update(entries)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.fixture
def onnx_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SKBERT_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "onnx"


@pytest.fixture
def same_weights_other_config(tiny_model_dir, tmp_path) -> tuple[Path, Path]:
    """Two checkpoints with equal weights and tokenizer; B has another activation
    and layer-norm epsilon, so B's vectors differ from A's."""
    skbert.clear_model_cache()
    a = Path(shutil.copytree(tiny_model_dir, tmp_path / "a"))
    b = Path(shutil.copytree(tiny_model_dir, tmp_path / "b"))
    change_config(b, hidden_act="relu", layer_norm_eps=1e-3)
    return a, b


# -- 1. code never runs because a file said so --------------------------------

EVIL_CODE = """
import pathlib
pathlib.Path({marker!r}).write_text("code named by a file ran")
from transformers import BertConfig, BertModel
class EvilConfig(BertConfig):
    model_type = "bert"
class EvilModel(BertModel):
    config_class = EvilConfig
"""

LOAD_HOSTILE_CHILD = """
import pickle
try:
    import skops.io as sio
except ImportError:
    sio = None
path = CONFIG["path"]
try:
    if path.endswith(".skops"):
        model = sio.load(path, trusted=CONFIG["trusted"])
    else:
        with open(path, "rb") as handle:
            model = pickle.load(handle)
    model.transform(["a great film"])
except Exception as exc:
    print("refused:", type(exc).__name__, str(exc)[:300])
else:
    print("transformed")
"""


@pytest.mark.slow
@pytest.mark.parametrize("form", ["pickle", "skops"])
def test_reference_file_pointing_at_code_never_runs_it(tiny_model_dir, tmp_path, form):
    if form == "skops":
        sio = pytest.importorskip("skops.io")
    marker = tmp_path / "MARKER"
    evil = Path(shutil.copytree(tiny_model_dir, tmp_path / "evil"))
    (evil / "modeling_evil.py").write_text(EVIL_CODE.format(marker=str(marker)))
    change_config(
        evil,
        auto_map={
            "AutoConfig": "modeling_evil.EvilConfig",
            "AutoModel": "modeling_evil.EvilModel",
        },
    )
    fitted = vectorizer(tiny_model_dir, persist="reference").fit(["probe"])
    # The attacker edits the file field by field: source and trust flag.
    handle = fitted.model_
    source = handle.source
    handle.source = type(source)(
        **{
            **{k: getattr(source, k) for k in source.__dataclass_fields__},
            "name": str(evil),
            "trust_remote_code": True,
            **(
                {"location": str(evil)}
                if "location" in source.__dataclass_fields__
                else {}
            ),
        }
    )
    fitted.trust_remote_code = True
    fitted.model_name_or_path = str(evil)
    path = tmp_path / f"hostile.{form}"
    trusted = [
        "skbert._model.handle.ModelHandle",
        "skbert._model.handle.ModelSource",
        "skbert._estimator.vectorizer.BertCLSVectorizer",
    ]
    if form == "skops":
        sio.dump(fitted, path)
    else:
        path.write_bytes(pickle.dumps(fitted))
    config = {"path": str(path), "trusted": trusted}

    output = run_python(f"CONFIG = {config!r}\n" + LOAD_HOSTILE_CHILD, cwd=tmp_path)

    assert not marker.exists(), f"code named by a {form} file ran: {output!r}"
    assert "refused" in output


# -- 2. one way to tokenize: ONNX loads never disturb torch transforms --------


@pytest.mark.filterwarnings("ignore::skbert.TruncationWarning")  # max_length=8
def test_every_tokenizer_call_uses_the_same_settings(
    tiny_model_dir, texts, onnx_home, monkeypatch
):
    # A fast tokenizer's call writes its truncation and padding settings into
    # the Rust backend that every thread shares; a call with other settings
    # (padding=True in the ONNX export and check) races a transform in another
    # thread, which then sees padded ids. Every call must ask for the same.
    pytest.importorskip("onnxruntime")
    from transformers import PreTrainedTokenizerBase

    seen = set()
    original = PreTrainedTokenizerBase.__call__

    def recording(self, *args, **kwargs):
        # What the shared backend keeps; add_special_tokens is an argument of
        # each encode call (the template probe at load asks for the tokens).
        settings = tuple(
            (name, repr(kwargs.get(name)))
            for name in ("padding", "truncation", "max_length")
        )
        seen.add(settings)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", recording)
    for max_length in (8, None):
        vectorizer(tiny_model_dir, max_length=max_length).fit_transform(texts)
    vectorizer(tiny_model_dir, backend="onnx").fit_transform(texts)
    vectorizer(tiny_model_dir, backend="onnx", quantize=True).fit_transform(texts)

    assert len(seen) == 1, f"the tokenizer was called with several settings: {seen}"


def test_onnx_loads_and_torch_transforms_in_threads_agree_with_the_oracle(
    tiny_model_dir, tiny_oracle, onnx_home
):
    pytest.importorskip("onnxruntime")
    batches = [distinct_texts(12, seed=seed, longest=30) for seed in range(4)]
    expected = [tiny_oracle.vectors(batch, "mean") for batch in batches]
    torch_side = vectorizer(tiny_model_dir, pooling="mean", batch_size=3).fit(["probe"])
    stop = threading.Event()
    wrong: list[str] = []
    errors: list[BaseException] = []

    def load_onnx_again() -> None:
        try:
            while not stop.is_set():
                skbert.clear_model_cache()  # every fit exports or verifies again
                vectorizer(tiny_model_dir, backend="onnx").fit(["probe"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    loader = threading.Thread(target=load_onnx_again)
    loader.start()
    try:
        for round_ in range(40):
            for batch, oracle in zip(batches, expected, strict=True):
                found = torch_side.transform(batch)
                if not np.allclose(found, oracle, atol=1e-5, rtol=0):
                    wrong.append(f"round {round_}")
    finally:
        stop.set()
        loader.join()
    assert not errors, errors
    assert not wrong, f"{len(wrong)} transforms gave wrong vectors: {wrong[:5]}"


# -- 3. and 4. equal weights, other config: other identity ---------------------


@pytest.mark.parametrize("quantize", [False, True])
def test_onnx_graph_of_equal_weights_and_another_config_is_not_reused(
    same_weights_other_config, texts, onnx_home, quantize
):
    pytest.importorskip("onnxruntime")
    a, b = same_weights_other_config
    vectorizer(a, backend="onnx", quantize=quantize, pooling="mean").fit_transform(
        texts
    )
    skbert.clear_model_cache()

    found = vectorizer(b, backend="onnx", quantize=quantize, pooling="mean")
    found = found.fit_transform(texts)
    expected = vectorizer(b, pooling="mean").fit_transform(texts)
    other = vectorizer(a, pooling="mean").fit_transform(texts)

    assert not np.allclose(expected, other, atol=1e-3)  # the configs matter
    if quantize:
        errors_to_b = np.abs(found - expected).max()
        errors_to_a = np.abs(found - other).max()
        assert errors_to_b < errors_to_a, "the int8 graph of A served B"
    else:
        np.testing.assert_allclose(found, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("persist", ["weights", "reference"])
def test_pickle_of_a_is_accepted_after_loading_b_with_equal_weights(
    same_weights_other_config, texts, persist
):
    a, b = same_weights_other_config
    fitted_a = vectorizer(a, persist=persist, pooling="mean").fit(texts)
    expected = fitted_a.transform(texts)
    blob = pickle.dumps(fitted_a)
    skbert.clear_model_cache()
    vectorizer(b, pooling="mean").fit(texts)  # B is now in this process

    restored = pickle.loads(blob)

    np.testing.assert_allclose(restored.transform(texts), expected, atol=1e-6)


# -- 5. and 10. the cache is an optimisation: storage trouble never fails ----


def encode_with_cache(folder, cache, texts) -> tuple[np.ndarray, list[str]]:
    """Mean vectors of ``texts`` through the cache directory ``cache``, and the
    warnings about the cache that this raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = vectorizer(folder, cache=str(cache), pooling="mean").fit_transform(
            texts
        )
    return found, [str(w.message) for w in caught if "cache" in str(w.message)]


def patch_connect(monkeypatch, *, pragma: str):
    """Every new SQLite connection runs ``pragma`` first (e.g. a page limit that
    makes the disk "full")."""
    connect = sqlite3.connect

    def patched(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.execute(pragma)
        return conn

    monkeypatch.setattr(sqlite3, "connect", patched)


def test_a_busy_shared_cache_is_not_treated_as_corrupt(
    tiny_model_dir, tiny_oracle, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    vectorizer(tiny_model_dir, cache=str(cache)).fit_transform(["warm up"])
    database = next(cache.glob("*.sqlite"))
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process is writing
    monkeypatch.setattr(skbert._storage.disk, "BUSY_TIMEOUT", 0.2)
    skbert._storage.cache._DISK.clear()  # a new process opens the cache
    try:
        found, messages = encode_with_cache(tiny_model_dir, cache, TEXTS)
    finally:
        other.execute("ROLLBACK")
        other.close()

    np.testing.assert_allclose(found, tiny_oracle.vectors(TEXTS, "mean"), atol=1e-5)
    assert database.exists()
    assert not [p.name for p in cache.iterdir() if "corrupt" in p.name]
    assert messages and all("corrupt" not in m for m in messages), messages
    assert any("busy" in m or "locked" in m for m in messages), messages


def test_a_full_disk_under_the_cache_still_returns_correct_vectors(
    tiny_model_dir, tiny_oracle, tmp_path, monkeypatch
):
    patch_connect(monkeypatch, pragma="PRAGMA max_page_count = 8")  # a few kB
    texts = distinct_texts(300, seed=5)
    cache = tmp_path / "full"

    for attempt in range(2):
        found, messages = encode_with_cache(tiny_model_dir, cache, texts)
        np.testing.assert_allclose(
            found, tiny_oracle.vectors(texts, "mean"), atol=1e-5, rtol=0
        )
        assert len(messages) <= 1, messages
        assert attempt == 1 or any("full" in m for m in messages), messages


def test_a_malformed_cache_database_is_moved_aside_and_rebuilt(
    tiny_model_dir, tiny_oracle, tmp_path
):
    cache = tmp_path / "cache"
    texts = distinct_texts(400, seed=2)
    vectorizer(tiny_model_dir, cache=str(cache)).fit_transform(texts)
    skbert._storage.cache._DISK.clear()
    database = next(cache.glob("*.sqlite"))
    checkpoint = sqlite3.connect(database)
    checkpoint.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    checkpoint.close()
    data = bytearray(database.read_bytes())
    page = 4096
    for start in range(page, len(data), 3 * page):  # scribble over b-tree pages
        data[start : start + 64] = bytes(range(64))
    database.write_bytes(bytes(data))

    found, messages = encode_with_cache(tiny_model_dir, cache, texts)

    np.testing.assert_allclose(
        found, tiny_oracle.vectors(texts, "mean"), atol=1e-5, rtol=0
    )
    assert any("moved it to" in m for m in messages), messages
    assert list(cache.glob("embeddings.sqlite.corrupt-*"))
    skbert._storage.cache._DISK.clear()
    info = skbert.cache_info(str(cache))  # the rebuilt cache works
    assert info["entries"] >= 0


# -- 6. a reference pickle of a relative path works from another directory ----


def test_reference_pickle_of_a_relative_path_loads_from_another_directory(
    tiny_model_dir, tmp_path, monkeypatch
):
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    shutil.copytree(tiny_model_dir, project / "models" / "tiny")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(project)
    fitted = vectorizer("models/tiny", persist="reference").fit(["probe"])
    expected = fitted.transform(TEXTS)
    blob = pickle.dumps(fitted)
    skbert.clear_model_cache()
    monkeypatch.chdir(elsewhere)

    restored = pickle.loads(blob)

    np.testing.assert_allclose(restored.transform(TEXTS), expected, atol=1e-6)
    assert restored.get_params()["model_name_or_path"] == "models/tiny"


# -- 7. persist is read when the pickle is written -----------------------------


def test_persist_set_after_fit_decides_what_the_pickle_holds(tiny_model_dir):
    fitted = vectorizer(tiny_model_dir).fit(["probe"])  # persist="weights"
    with_weights = len(pickle.dumps(fitted))
    fitted.set_params(persist="reference")
    reference = len(pickle.dumps(fitted))
    fitted.set_params(persist="weights")

    assert reference < with_weights / 10, (reference, with_weights)
    assert len(pickle.dumps(fitted)) == pytest.approx(with_weights, rel=0.01)


def test_model_parameters_changed_after_fit_ask_for_a_refit(
    tiny_model_dir, make_tiny_bert
):
    fitted = vectorizer(tiny_model_dir).fit(["probe"])
    fitted.set_params(model_name_or_path=str(make_tiny_bert("other", seed=4)))

    with pytest.raises(ValueError, match="model_name_or_path.*fit"):
        fitted.transform(TEXTS)


# -- 8. no process-global state changed in place -----------------------------


def test_loading_leaves_transformers_verbosity_alone(make_tiny_bert):
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    during = []
    original = AutoModel.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        during.append(hf_logging.get_verbosity())
        return original(cls, *args, **kwargs)

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_info()
    AutoModel.from_pretrained = classmethod(recording)
    try:
        vectorizer(make_tiny_bert("a", masked_lm=True)).fit(["probe"])
        assert during == [hf_logging.INFO]
        assert hf_logging.get_verbosity() == hf_logging.INFO
    finally:
        AutoModel.from_pretrained = classmethod(original)
        hf_logging.set_verbosity(before)


def test_verbosity_is_unchanged_while_a_load_runs_in_another_thread(
    make_tiny_bert,
):
    # Runs on the first version too: the verbosity seen from another thread
    # in the middle of a load must be the user's.
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    folder = make_tiny_bert("a", masked_lm=True)
    inside = threading.Event()
    release = threading.Event()
    original = AutoModel.from_pretrained.__func__

    def slow(cls, *args, **kwargs):
        inside.set()
        release.wait(30)
        return original(cls, *args, **kwargs)

    AutoModel.from_pretrained = classmethod(slow)
    seen = []
    try:
        loader = threading.Thread(target=lambda: vectorizer(folder).fit(["probe"]))
        loader.start()
        assert inside.wait(30)
        seen.append(hf_logging.get_verbosity())
        release.set()
        loader.join()
    finally:
        AutoModel.from_pretrained = classmethod(original)
    assert seen == [hf_logging.get_verbosity()] and seen[0] != hf_logging.ERROR


def test_the_load_report_is_hidden_but_other_threads_still_log(make_tiny_bert, caplog):
    # transformers' load report of a masked-LM checkpoint ("pooler ...
    # MISSING ... newly initialized") is skbert's to turn into a decision; a
    # warning that another thread logs meanwhile is the user's and must show.
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    folder = make_tiny_bert("mlm", masked_lm=True)
    other_thread = hf_logging.get_logger("transformers.someone_else")
    original = AutoModel.from_pretrained.__func__

    def with_a_neighbour(cls, *args, **kwargs):
        neighbour = threading.Thread(
            target=lambda: other_thread.warning("a warning from another thread")
        )
        neighbour.start()
        neighbour.join()
        return original(cls, *args, **kwargs)

    hf_logging.enable_propagation()  # so that caplog (on the root) sees them
    AutoModel.from_pretrained = classmethod(with_a_neighbour)
    try:
        with caplog.at_level(logging.INFO):
            vectorizer(folder).fit(["probe"])
    finally:
        AutoModel.from_pretrained = classmethod(original)
        hf_logging.disable_propagation()
    messages = [r.getMessage() for r in caplog.records]
    assert "a warning from another thread" in messages
    assert not [m for m in messages if "LOAD REPORT" in m or "MISSING" in m]


def test_quantizing_leaves_the_root_logger_alone(tiny_model_dir, onnx_home):
    pytest.importorskip("onnxruntime")
    import onnxruntime.quantization

    root = logging.getLogger()
    levels = []
    original = onnxruntime.quantization.quantize_dynamic

    def recording(*args, **kwargs):
        levels.append(root.level)
        return original(*args, **kwargs)

    onnxruntime.quantization.quantize_dynamic = recording
    before = root.level
    root.setLevel(logging.INFO)
    try:
        vectorizer(tiny_model_dir, backend="onnx", quantize=True).fit(["probe"])
    finally:
        onnxruntime.quantization.quantize_dynamic = original
        root.setLevel(before)
    assert levels == [logging.INFO]


def test_a_slow_load_does_not_block_fits_of_other_models(
    tiny_model_dir, make_tiny_bert
):
    from transformers import AutoModel

    vectorizer(tiny_model_dir).fit(["probe"])  # registered
    slow_folder = make_tiny_bert("slow", seed=9)
    inside = threading.Event()
    release = threading.Event()
    original = AutoModel.from_pretrained.__func__

    def slow(cls, folder, *args, **kwargs):
        if Path(folder).name == "slow":
            inside.set()
            release.wait(60)
        return original(cls, folder, *args, **kwargs)

    AutoModel.from_pretrained = classmethod(slow)
    other_done = threading.Event()
    try:
        loader = threading.Thread(target=lambda: vectorizer(slow_folder).fit(["probe"]))
        loader.start()
        assert inside.wait(30)
        other = threading.Thread(
            target=lambda: (vectorizer(tiny_model_dir).fit(["probe"]), other_done.set())
        )
        other.start()
        finished = other_done.wait(20)
        release.set()
        loader.join()
        other.join()
    finally:
        AutoModel.from_pretrained = classmethod(original)
    assert finished, "a fit of a loaded model waited for another model's load"


# -- 9. versions are stamped into pickles, cache keys and ONNX exports --------


def test_pickle_records_versions_and_warns_when_they_differ(
    tiny_model_dir, monkeypatch
):
    import skbert._core.versions

    fitted = vectorizer(tiny_model_dir).fit(["probe"])
    versions = fitted.__getstate__()["_skbert_versions"]
    assert {"skbert", "torch", "transformers", "tokenizers"} <= set(versions)
    assert versions["skbert"] == skbert.__version__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pickle.loads(pickle.dumps(fitted))
    assert not [w for w in caught if "version" in str(w.message).lower()]

    installed = skbert._core.versions.installed_versions()
    with versions_installed(monkeypatch, torch="1.0.0"):  # written elsewhere
        old = pickle.dumps(fitted)
    with pytest.warns(skbert.InconsistentVersionWarning) as caught:
        restored = pickle.loads(old)

    message = str(caught[0].message)
    assert "torch 1.0.0" in message and f"torch {installed['torch']}" in message
    assert caught[0].message.package == "torch"
    assert restored.transform(TEXTS).shape == (len(TEXTS), 32)


def test_cache_entries_of_another_library_version_are_not_served(
    tiny_model_dir, texts, tmp_path, monkeypatch
):
    import skbert._core.versions

    cache = str(tmp_path / "cache")
    vectorizer(tiny_model_dir, cache=cache).fit_transform(texts)
    installed = skbert._core.versions.installed_versions()
    monkeypatch.setattr(
        skbert._core.versions,
        "installed_versions",
        lambda: {**installed, "torch": "99.0.0"},
    )
    skbert.clear_model_cache()
    before = skbert.cache_info(cache)["misses"]
    vectorizer(tiny_model_dir, cache=cache).fit_transform(texts)
    assert skbert.cache_info(cache)["misses"] - before == len(set(texts))


@pytest.mark.parametrize(
    "params, recipe, engine",
    [
        (dict(backend="onnx", quantize=True), "ONNX_EXPORT_VERSION", "onnxruntime"),
        (dict(backend="openvino"), "OPENVINO_GRAPH_VERSION", "openvino"),
    ],
    ids=["onnx-int8", "openvino"],
)
def test_cache_entries_of_another_graph_recipe_are_not_served(
    tiny_model_dir, texts, tmp_path, onnx_home, monkeypatch, params, recipe, engine
):
    """A new export recipe writes a new int8 graph, and OpenVINO compiles a
    graph of its own recipe (the plain export, and its int8 model): when the
    recipe changes, so do the vectors, and those of the old graph must not be
    served for the new one from a cache."""
    import skbert._core.versions

    pytest.importorskip("onnxruntime")
    pytest.importorskip(engine)
    cache = str(tmp_path / "cache")
    params = dict(params, pooling="mean", cache=cache)
    monkeypatch.setattr(skbert._core.versions, recipe, "old")
    vectorizer(tiny_model_dir, **params).fit_transform(texts)
    monkeypatch.setattr(skbert._core.versions, recipe, "new")
    skbert.clear_model_cache()
    before = skbert.cache_info(cache)["misses"]
    vectorizer(tiny_model_dir, **params).fit_transform(texts)
    assert skbert.cache_info(cache)["misses"] - before == len(set(texts))


# -- the soak: everything at once, every vector checked ----------------------


def test_concurrency_soak_every_vector_matches_the_oracle(
    tiny_model_dir, make_tiny_bert, tmp_path, onnx_home
):
    pytest.importorskip("onnxruntime")
    second = make_tiny_bert("second", seed=7)
    oracles = {
        "first": BertOracle(tiny_model_dir, 64),
        "second": BertOracle(second, 64),
    }
    folders = {"first": tiny_model_dir, "second": second}
    cache = str(tmp_path / "shared-cache")
    batches = [distinct_texts(8, seed=100 + i, longest=20) for i in range(6)]
    wrong: list[str] = []
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            name = "first" if index % 2 else "second"
            for round_ in range(6):
                if index == 0 and round_ % 2 == 0:
                    vectorizer(tiny_model_dir, backend="onnx").fit(["probe"])
                    continue
                pooling = ("mean", "max", "cls")[(index + round_) % 3]
                estimator = vectorizer(
                    folders[name],
                    pooling=pooling,
                    batch_size=3,
                    cache=(None, "auto", cache)[round_ % 3],
                )
                batch = batches[(index + round_) % len(batches)]
                found = estimator.fit_transform(batch)
                expected = oracles[name].vectors(batch, pooling)
                if not np.allclose(found, expected, atol=1e-5, rtol=0):
                    wrong.append(f"worker {index} round {round_} {pooling}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors
    assert not wrong, wrong


@pytest.mark.slow
def test_processes_sharing_a_cache_directory_get_the_oracle_vectors(
    tiny_model_dir, tiny_oracle, tmp_path
):
    texts = distinct_texts(60, seed=11) + [" ".join(WORDS[:40])]
    cache = tmp_path / "cache"
    code = f"""
        import numpy as np
        from skbert import BertCLSVectorizer
        texts = {texts!r}
        for pooling in ("mean", "cls", "max"):
            v = BertCLSVectorizer(model_name_or_path={str(tiny_model_dir)!r},
                                  device="cpu", pooling=pooling, batch_size=7,
                                  cache={str(cache)!r})
            np.save(f"{{pooling}}-{{__import__('os').getpid()}}.npy",
                    v.fit_transform(texts))
    """
    from helpers import finish_python, start_python

    children = [start_python(code, cwd=tmp_path) for _ in range(3)]
    for child in children:
        finish_python(child)
    saved = sorted(tmp_path.glob("*.npy"))
    assert len(saved) == 9
    for path in saved:
        pooling = path.name.split("-")[0]
        np.testing.assert_allclose(
            np.load(path), tiny_oracle.vectors(texts, pooling), atol=1e-5, rtol=0
        )
