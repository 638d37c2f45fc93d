"""Hostile persistence: files whose state was edited field by field.

An attacker who knows skbert's format can write any value into any field of
a pickle or skops file and recompute every digest in it (the digests catch
damage, not malice). Each forged file here must either load and give the
original vectors or be refused with a clear error; none may run code, and
none may write outside the temporary folder skbert makes.

All files are loaded in one fresh interpreter (offline, an empty Hugging
Face home, its temporary folder inside a scratch folder) that reports, per
file, the vectors it got or the error it raised; the test then checks which
files appeared outside the scratch folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import build_tiny_bert, run_python, vectorizer

import skbert._estimator.state
import skbert._model.bundle
import skbert._model.handle
import skbert._model.source
from skbert._estimator.vectorizer import BertCLSVectorizer
from skbert._model.handle import ModelHandle
from skbert._model.identity import canonical_digest

TEXTS = ["a great film", "dull and far too long", "the best story", ""]
TRUSTED = [
    "skbert.BertCLSVectorizer",
    "skbert.ModelHandle",
    "skbert.ModelSource",
]
OTHER_SHA = "sha256:" + "ab" * 32


@contextlib.contextmanager
def forging(
    edit_handle: Callable[[dict], None] | None = None,
    edit_estimator: Callable[[dict], None] | None = None,
) -> Iterator[None]:
    """While active, pickling a fitted vectorizer writes the edited state with
    every digest recomputed, as an attacker who knows the format would."""
    handle_getstate = ModelHandle.__getstate__
    estimator_getstate = BertCLSVectorizer.__getstate__

    def forged_handle_state(self):
        state = handle_getstate(self)
        if edit_handle is not None:
            edit_handle(state)
        if state.get("_bundle") and isinstance(state["_bundle"], dict):
            with contextlib.suppress(Exception):
                state["_bundle_digest"] = skbert._model.bundle.bundle_digest(
                    state["_bundle"]
                )
        with contextlib.suppress(Exception):
            state["_state_digest"] = skbert._model.handle._state_digest(state)
        return state

    class Stub:
        def digest_for_estimator(self) -> str:
            state = forged_handle_state(real_handle)
            return canonical_digest(
                {
                    "source": skbert._model.source.source_state(state["source"]),
                    "identity": state["identity"],
                    "info": state["info"],
                    "persist": state["persist"],
                }
            )

    def forged_estimator_state(self):
        nonlocal real_handle
        state = estimator_getstate(self)
        real_handle = state["model_"]
        if edit_estimator is not None:
            edit_estimator(state)
        digest_state = {k: v for k, v in state.items() if k != "model_"}
        with contextlib.suppress(Exception):
            digest_state["model_"] = Stub()
            state["_skbert_state_digest"] = skbert._estimator.state._state_digest(
                digest_state
            )
        return state

    real_handle = None
    ModelHandle.__getstate__ = forged_handle_state
    BertCLSVectorizer.__getstate__ = forged_estimator_state
    try:
        yield
    finally:
        ModelHandle.__getstate__ = handle_getstate
        BertCLSVectorizer.__getstate__ = estimator_getstate


def set_in(path: str, value) -> Callable[[dict], None]:
    """An edit that sets ``state[a][b]...`` (``source.x`` sets a dataclass field)."""

    def edit(state: dict) -> None:
        *parents, last = path.split(".")
        target = state
        for name in parents:
            target = target[name] if isinstance(target, dict) else getattr(target, name)
        if isinstance(target, dict):
            target[last] = value
        else:  # ModelSource: frozen dataclass
            replaced = type(target).__new__(type(target))
            fields = {**target.__dict__, last: value}
            object.__setattr__(replaced, "__dict__", fields)
            state[parents[0]] = replaced

    return edit


def add_bundle_file(name: str, data: bytes) -> Callable[[dict], None]:
    def edit(state: dict) -> None:
        state["_bundle"] = {**state["_bundle"], name: data}

    return edit


def change_bundle_json(name: str, **entries) -> Callable[[dict], None]:
    def edit(state: dict) -> None:
        content = json.loads(state["_bundle"][name])
        content.update(entries)
        state["_bundle"] = {**state["_bundle"], name: json.dumps(content).encode()}

    return edit


def both(*edits: Callable[[dict], None]) -> Callable[[dict], None]:
    def edit(state: dict) -> None:
        for one in edits:
            one(state)

    return edit


CHILD = """
import json
import pickle
import tempfile
from pathlib import Path

import numpy as np

tempfile.tempdir = CONFIG["scratch"]
import skops.io as sio

import skbert

results = {}
for name in CONFIG["files"]:
    path = Path(CONFIG["work"]) / name
    skbert.clear_model_cache()  # as if each file were loaded in a new process
    try:
        if name.endswith(".skops"):
            model = sio.load(path, trusted=CONFIG["trusted"])
        else:
            model = pickle.loads(path.read_bytes())
        vectors = model.transform(CONFIG["texts"])
    except Exception as exc:
        results[name] = {"error": type(exc).__name__, "message": str(exc)}
    else:
        results[name] = {"vectors": np.asarray(vectors).tolist()}
print(json.dumps(results))
"""


def evil_folder(root: Path, marker: Path) -> Path:
    """A checkpoint whose config makes transformers import its own code."""
    folder = build_tiny_bert(root / "evil", seed=3)
    (folder / "modeling_evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import BertConfig, BertModel\n"
        "class EvilConfig(BertConfig):\n    model_type = 'bert'\n"
        "class EvilModel(BertModel):\n    config_class = EvilConfig\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {
        "AutoConfig": "modeling_evil.EvilConfig",
        "AutoModel": "modeling_evil.EvilModel",
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def cases(root: Path, marker: Path) -> dict[str, tuple[str, dict, str]]:
    """name -> (persist, edits, what must happen: "original", "refused" or "either")."""
    other = build_tiny_bert(root / "other", seed=5)
    evil = evil_folder(root, marker)
    handle = {
        # where the model comes from
        "name-other-folder-weights": ("weights", set_in("source.name", str(other))),
        "name-other-folder-ref": ("reference", set_in("source.name", str(other))),
        "location-other-folder": ("reference", set_in("source.location", str(other))),
        "location-relative-dotdot": (
            "reference",
            set_in("source.location", "../../other"),
        ),
        "location-evil-code": (
            "reference",
            both(
                set_in("source.location", str(evil)),
                set_in("source.trust_remote_code", True),
            ),
        ),
        "name-evil-code-weights": (
            "weights",
            both(
                set_in("source.name", str(evil)),
                set_in("source.trust_remote_code", True),
            ),
        ),
        "revision-nul": ("reference", set_in("source.revision", "main\0x")),
        "name-huge": ("reference", set_in("source.name", "x" * 100_000)),
        "trust-not-bool": ("weights", set_in("source.trust_remote_code", "yes")),
        # fingerprints
        "weights-fingerprint-other": ("weights", set_in("identity.weights", OTHER_SHA)),
        "weights-fingerprint-garbage": (
            "weights",
            set_in("identity.weights", "../../etc"),
        ),
        "tokenizer-fingerprint-other": (
            "reference",
            set_in("identity.tokenizer", OTHER_SHA),
        ),
        "config-fingerprint-other": ("weights", set_in("identity.config", OTHER_SHA)),
        "recipe-fingerprint-other": ("weights", set_in("identity.recipe", OTHER_SHA)),
        # description and sizes
        "hidden-size-huge": ("weights", set_in("info.hidden_size", 10**12)),
        "layers-fewer": ("weights", set_in("info.n_hidden_states", 2)),
        "max-length-huge": ("weights", set_in("info.model_max_length", 10**9)),
        "pooler-status-other": ("weights", set_in("info.pooler", "missing")),
        "persist-invalid": ("weights", set_in("persist", "../evil")),
        "format-unknown": ("weights", set_in("format", 99)),
        # the model files
        "bundle-dotdot-name": ("weights", add_bundle_file("../escaped.json", b"{}")),
        "bundle-absolute-name": (
            "weights",
            add_bundle_file(str(root / "escaped-absolute.json"), b"{}"),
        ),
        "bundle-subfolder-name": (
            "weights",
            add_bundle_file("sub/escaped.json", b"{}"),
        ),
        "bundle-python-file": (
            "weights",
            add_bundle_file("modeling_evil.py", b"raise SystemExit('ran')"),
        ),
        "bundle-pickle-weights": (
            "weights",
            add_bundle_file("pytorch_model.bin", b"x"),
        ),
        "bundle-not-a-dict": ("weights", set_in("_bundle", [("config.json", b"{}")])),
        "bundle-missing": ("weights", set_in("_bundle", None)),
        "bundle-auto-map": (
            "weights",
            change_bundle_json(
                "config.json",
                auto_map={"AutoModel": "modeling_evil.EvilModel"},
            ),
        ),
        "bundle-other-activation": (
            "weights",
            change_bundle_json("config.json", hidden_act="relu"),
        ),
        "bundle-huge-extra-file": (
            "weights",
            add_bundle_file("extra.json", b"{}" + b" " * 3_000_000),
        ),
    }
    # Edits of the handle made consistent with the estimator's own fields, so
    # that only the model loaded from the files can refuse them.
    consistent = {
        "location-evil-code-consistent": (
            "reference",
            both(
                set_in("source.name", str(evil)),
                set_in("source.location", str(evil)),
                set_in("source.trust_remote_code", True),
            ),
            {"model_name_or_path": str(evil), "trust_remote_code": True},
        ),
        "weights-fingerprint-other-consistent": (
            "weights",
            set_in("identity.weights", OTHER_SHA),
            {"fingerprint_": OTHER_SHA},
        ),
        "layers-fewer-consistent": (
            "weights",
            set_in("info.n_hidden_states", 2),
            {"n_layers_": 2},
        ),
        "pooler-missing-consistent": (
            "weights",
            set_in("info.pooler", "missing"),
            {"has_pooler_": False},
        ),
        "hidden-size-other-consistent": (
            "weights",
            set_in("info.hidden_size", 31),
            {"hidden_size_": 31},
        ),
    }
    estimator = {
        "fitted-hidden-size": ("weights", {"hidden_size_": 31}),
        "fitted-layers": ("weights", {"n_layers_": 2}),
        "fitted-pooler": ("weights", {"has_pooler_": False}),
        "fitted-fingerprint": ("weights", {"fingerprint_": OTHER_SHA}),
        "fitted-model-not-a-handle": ("weights", {"model_": {"not": "a handle"}}),
        "param-trust-evil-reference": (
            "reference",
            {"trust_remote_code": True, "model_name_or_path": str(evil)},
        ),
    }
    # Unused extra bytes change nothing; every other edit is refused.
    expected = {"bundle-huge-extra-file": "original"}
    out = {}
    for name, (persist, edit) in handle.items():
        out[name] = (persist, {"handle": edit}, expected.get(name, "refused"))
    for name, (persist, values) in estimator.items():
        out[name] = (persist, {"estimator": update(values)}, "refused")
    for name, (persist, edit, values) in consistent.items():
        out[name] = (persist, {"handle": edit, "estimator": update(values)}, "refused")
    return out


def update(values: dict) -> Callable[[dict], None]:
    def edit(state: dict) -> None:
        state.update(values)

    return edit


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tiny_model_dir):
    pytest.importorskip("skops.io")
    import skops.io as sio

    root = tmp_path_factory.mktemp("hostile")
    work = root / "work"
    scratch = root / "scratch"
    work.mkdir()
    scratch.mkdir()
    marker = root / "MARKER"
    model = Path(shutil.copytree(tiny_model_dir, root / "model"))
    fitted = {
        persist: vectorizer(model, persist=persist, pooling="mean").fit(TEXTS)
        for persist in ("weights", "reference")
    }
    original = fitted["weights"].transform(TEXTS)
    files, expectations = [], {}
    for name, (persist, edits, expected) in cases(root, marker).items():
        with forging(edits.get("handle"), edits.get("estimator")):
            blob = pickle.dumps(fitted[persist])
            sio.dump(fitted[persist], work / f"{name}.skops")
        (work / f"{name}.pkl").write_bytes(blob)
        for suffix in (".pkl", ".skops"):
            files.append(name + suffix)
            expectations[name + suffix] = expected
    before = {p for p in root.rglob("*") if scratch not in p.parents}
    config = {
        "work": str(work),
        "scratch": str(scratch),
        "files": files,
        "trusted": TRUSTED,
        "texts": TEXTS,
    }
    output = run_python(f"CONFIG = {config!r}\n" + CHILD, cwd=scratch, timeout=600)
    after = {p for p in root.rglob("*") if scratch not in p.parents}
    return {
        "results": json.loads(output.strip().splitlines()[-1]),
        "expected": expectations,
        "original": original,
        "written": sorted(str(p) for p in after - before),
        "marker": marker,
    }


@pytest.mark.slow
def test_no_forged_file_runs_code(hostile):
    assert not hostile["marker"].exists()


@pytest.mark.slow
def test_no_forged_file_writes_outside_the_temporary_folder(hostile):
    assert hostile["written"] == []
    assert not any(
        name.startswith("escaped") for name in os.listdir(hostile["marker"].parent)
    )


@pytest.mark.slow
def test_every_forged_file_gives_the_original_vectors_or_is_refused(hostile):
    other_vectors, silent = [], []
    for name, seen in hostile["results"].items():
        if "vectors" in seen:
            if not np.allclose(seen["vectors"], hostile["original"], atol=1e-6):
                other_vectors.append(name)
        elif not seen["message"].strip():
            silent.append(name)
    assert not other_vectors, f"forged files gave other vectors: {other_vectors}"
    assert not silent, f"refused without a message: {silent}"


@pytest.mark.slow
def test_each_forged_file_gets_the_outcome_its_edit_deserves(hostile):
    wrong = {}
    for name, expected in hostile["expected"].items():
        seen = hostile["results"][name]
        outcome = "original" if "vectors" in seen else "refused"
        if outcome != expected:
            wrong[name] = seen.get("message", "gave vectors")[:200]
    assert not wrong, wrong


@pytest.mark.slow
def test_refusals_are_clear_errors_not_crashes(hostile):
    allowed = {"ValueError", "FingerprintMismatchError", "FileNotFoundError", "OSError"}
    crashes = {
        name: f"{seen['error']}: {seen['message'][:120]}"
        for name, seen in hostile["results"].items()
        if "error" in seen and seen["error"] not in allowed
    }
    assert not crashes, crashes
