"""A fit in a session whose other processes loaded the folder reads no weights.

The parent of a parallel search and its workers share a session folder; a
process that loads a checkpoint folder leaves a note there of what the
folder, as it is on disk now, holds. These tests play both processes in one:
the session is a temporary folder, and forgetting the loaded models
(``clear_model_cache``) stands for the fresh process. A vector is compared
with transformers run on each text alone; loads are counted at transformers'
``from_pretrained``.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil

import numpy as np
import pytest
from helpers import run_python, vectorizer

import skbert
from skbert._model import device as _device
from skbert._model.handle import FingerprintMismatchError
from skbert._storage import cache as _cache
from skbert._storage import session as _session


@pytest.fixture
def session(tmp_path, monkeypatch):
    """This process in a session of its own, for the test only."""
    folder = tmp_path / "skbert-session-1-test"
    folder.mkdir()
    monkeypatch.setitem(_session._STATE, "path", folder)
    monkeypatch.setitem(_session._STATE, "owner", None)
    skbert.clear_model_cache()
    yield folder
    skbert.clear_model_cache()


@pytest.fixture
def loads(monkeypatch):
    """The checkpoints transformers reads, counted."""
    from transformers.modeling_utils import PreTrainedModel

    counted = []
    original = PreTrainedModel.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        counted.append(args[0] if args else kwargs.get("pretrained_model_name_or_path"))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(counting))
    return counted


def _fresh_process(session) -> None:
    """Play another process of ``session``: its in-process caches are empty, and
    the notes it finds were left by some other process than itself."""
    skbert.clear_model_cache()
    _cache._MEMORY.clear()  # the in-process layer; the session's store stays
    for note in (session / "notes").glob("*.json"):
        try:
            value = json.loads(note.read_text())
        except ValueError:
            continue  # a damaged note stays damaged
        note.write_text(json.dumps({**value, "pid": os.getpid() + 1}))


def test_a_refit_reads_no_weights_and_serves_the_cached_vectors(
    session, loads, tiny_model_copy, tiny_oracle, texts
):
    first = vectorizer(tiny_model_copy, cache="auto", pooling="mean")
    expected = first.fit_transform(texts)
    fingerprint = first.fingerprint_
    assert len(loads) == 1
    _fresh_process(session)

    again = vectorizer(tiny_model_copy, cache="auto", pooling="mean").fit(texts)
    served = again.transform(texts)

    assert loads == [loads[0]], "the weights were read again"
    np.testing.assert_array_equal(served, expected)
    np.testing.assert_allclose(
        served, tiny_oracle.vectors(texts, "mean"), atol=1e-5, rtol=0
    )
    assert again.fingerprint_ == fingerprint
    # a text no process encoded yet: the weights are read now, and checked
    new = again.transform(["a text nobody encoded"])
    assert len(loads) == 2
    np.testing.assert_allclose(
        new, tiny_oracle.vectors(["a text nobody encoded"], "mean"), atol=1e-5, rtol=0
    )


def test_a_pickle_of_such_a_fit_carries_the_weights(
    session, loads, tiny_model_copy, tiny_oracle, texts, tmp_path
):
    vectorizer(tiny_model_copy, cache="auto").fit_transform(texts)
    _fresh_process(session)
    known = vectorizer(tiny_model_copy, cache="auto").fit(texts)
    assert len(loads) == 1

    data = pickle.dumps(known)  # reads the weights to bundle them
    shutil.rmtree(tiny_model_copy)
    _fresh_process(session)
    loaded = pickle.loads(data)

    unseen = ["fresh words here", "another line nobody encoded"]
    np.testing.assert_allclose(
        loaded.transform(unseen), tiny_oracle.vectors(unseen, "cls"), atol=1e-5, rtol=0
    )


def test_a_changed_folder_is_read_again(session, loads, tiny_model_copy, texts):
    vectorizer(tiny_model_copy, cache="auto").fit_transform(texts)
    _fresh_process(session)
    config = tiny_model_copy / "config.json"
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    vectorizer(tiny_model_copy, cache="auto").fit(texts)

    assert len(loads) == 2


def test_a_note_that_lies_is_caught_before_its_weights_are_used(
    session, loads, tiny_model_copy, make_tiny_bert, texts
):
    # A note naming another model's identity: nothing of that model is in the
    # cache, so the first transform reads the folder and refuses it.
    other = make_tiny_bert(seed=7)
    vectorizer(other, cache="auto").fit(["probe"])
    vectorizer(tiny_model_copy, cache="auto").fit(["probe"])
    notes = sorted((session / "notes").iterdir(), key=lambda p: p.stat().st_mtime_ns)
    lie = json.loads(notes[0].read_text())
    notes[1].write_text(json.dumps(lie))
    _fresh_process(session)

    known = vectorizer(tiny_model_copy, cache="auto").fit(["probe"])
    with pytest.raises(FingerprintMismatchError, match="weights"):
        known.transform(["never encoded"])


def test_a_damaged_note_is_ignored(session, loads, tiny_model_copy, texts):
    vectorizer(tiny_model_copy, cache="auto").fit(["probe"])
    for note in (session / "notes").iterdir():
        note.write_text("{not json")
    _fresh_process(session)

    vectorizer(tiny_model_copy, cache="auto").fit(["probe"])

    assert len(loads) == 2


def test_a_process_reads_its_own_notes_never(session, loads, tiny_model_copy):
    # clear_model_cache promises a new read of the weights in this process.
    vectorizer(tiny_model_copy, cache="auto").fit(["probe"])
    skbert.clear_model_cache()

    vectorizer(tiny_model_copy, cache="auto").fit(["probe"])

    assert len(loads) == 2


def test_a_fit_without_the_session_cache_reads_the_weights(
    session, loads, tiny_model_copy
):
    vectorizer(tiny_model_copy, cache="auto").fit(["probe"])
    _fresh_process(session)

    fitted = vectorizer(tiny_model_copy, cache=None).fit(["probe"])

    assert len(loads) == 2
    assert fitted.model_.torch_model is not None


@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_a_refit_whose_vectors_are_all_cached_imports_no_torch(
    session, tiny_model_copy, tiny_oracle, texts, tmp_path, device
):
    # The parent's refit after a parallel search: its workers loaded the folder
    # and encoded every text. A fresh process of the session fits and
    # transforms without importing torch (1-2 s of a small search).
    if device == "auto" and not _device._torch_sees_only_the_cpu():
        pytest.skip("torch here may see an accelerator: 'auto' must ask it")
    vectorizer(tiny_model_copy, cache="auto", pooling="mean").fit_transform(texts)

    out = run_python(
        f"""
        import json, sys
        from pathlib import Path
        from skbert._storage import session
        session._STATE.update(path=Path({str(session)!r}), owner=None)
        import skbert
        fitted = skbert.BertCLSVectorizer(
            model_name_or_path={str(tiny_model_copy)!r}, device={device!r},
            pooling="mean", cache="auto",
        ).fit({texts!r})
        vectors = fitted.transform({texts!r})
        print(json.dumps({{"torch": "torch" in sys.modules,
                           "vectors": vectors.tolist()}}))
        """,
        cwd=tmp_path,
    )

    result = json.loads(out.strip().splitlines()[-1])
    assert result["torch"] is False, "the refit imported torch"
    np.testing.assert_allclose(
        np.asarray(result["vectors"]),
        tiny_oracle.vectors(texts, "mean"),
        atol=1e-5,
        rtol=0,
    )


def test_a_fit_finds_the_checkpoint_folder_once(session, tiny_model_copy, monkeypatch):
    # (for a hub id, finding the folder asks the hub)
    from skbert._model.source import ModelSource

    found = []
    original = ModelSource.folder

    def counting(self):
        found.append(self.name)
        return original(self)

    monkeypatch.setattr(ModelSource, "folder", counting)
    vectorizer(tiny_model_copy, cache="auto").fit(["probe"])

    assert len(found) == 1
