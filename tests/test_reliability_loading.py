"""Loading checkpoints safely: no code from a checkpoint runs unless
``trust_remote_code=True``, and pickle-based weights are refused by default.

The hostile files here would write a marker file if their code ever ran: a
custom modeling module (imported by transformers for ``auto_map``) and a
``pytorch_model.bin`` whose unpickling calls ``exec``. The tests assert that
the marker never appears, and positive controls show that it would.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import run_python, vectorizer

import skbert
import skbert._model.checkpoint
import skbert._model.resolve

TEXTS = ["a great film", "dull and far too long", "שלום 😀"]


# -- code shipped with a checkpoint -----------------------------------------


def add_remote_code(folder: Path, model_type: str, marker: Path) -> Path:
    """Make ``folder`` a checkpoint whose classes live in its own module."""
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {
        "AutoConfig": "modeling_evil.EvilConfig",
        "AutoModel": "modeling_evil.EvilModel",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text(
        f"""
import pathlib
pathlib.Path({str(marker)!r}).write_text("checkpoint code ran")
from transformers import BertConfig, BertModel
class EvilConfig(BertConfig):
    model_type = {model_type!r}
class EvilModel(BertModel):
    config_class = EvilConfig
"""
    )
    return folder


def test_unknown_architecture_with_code_is_refused_without_running_it(
    tiny_model_copy, tmp_path
):
    marker = tmp_path / "MARKER"
    add_remote_code(tiny_model_copy, "evilbert", marker)

    with pytest.raises(ValueError) as raised:
        vectorizer(tiny_model_copy).fit(TEXTS)

    message = str(raised.value)
    assert "needs its own Python code" in message
    assert "modeling_evil.py" in message
    assert "trust_remote_code=True" in message
    assert "only if you trust its author" in message
    assert not marker.exists()


def test_known_architecture_ignores_shipped_code(
    tiny_model_copy, tmp_path, tiny_oracle
):
    # model_type "bert" with an auto_map: transformers' own BertModel is used,
    # the shipped module is never imported.
    marker = tmp_path / "MARKER"
    add_remote_code(tiny_model_copy, "bert", marker)

    vectors = vectorizer(tiny_model_copy, pooling="mean").fit_transform(TEXTS)

    assert not marker.exists()
    np.testing.assert_allclose(
        vectors, tiny_oracle.vectors(TEXTS, "mean"), atol=1e-5, rtol=0
    )


@pytest.mark.slow
def test_trust_remote_code_true_does_run_it(tiny_model_copy, tmp_path):
    """Positive control, in a child process (the module cache goes to its
    own Hugging Face home): the marker is a working detector."""
    marker = tmp_path / "MARKER"
    add_remote_code(tiny_model_copy, "evilbert", marker)
    code = f"""
        from skbert import BertCLSVectorizer
        BertCLSVectorizer(model_name_or_path={str(tiny_model_copy)!r}, device="cpu",
                          trust_remote_code=True).fit(["probe"])
        print("fitted")
    """
    output = run_python(code, cwd=tmp_path)

    assert output.strip().splitlines()[-1] == "fitted"
    assert marker.read_text() == "checkpoint code ran"


# -- pickle-based weight files ----------------------------------------------


class ExecOnUnpickle:
    """Unpickling this runs ``code``: what a hostile pytorch_model.bin holds."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def to_pickle_weights(folder: Path) -> Path:
    """Replace ``model.safetensors`` by the same tensors in ``pytorch_model.bin``."""
    import torch
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    return folder


def write_hostile_bin(folder: Path, marker: Path) -> None:
    import torch

    payload = ExecOnUnpickle(f"open({str(marker)!r}, 'w').write('pickle code ran')")
    torch.save(
        {"embeddings.word_embeddings.weight": payload}, folder / "pytorch_model.bin"
    )


@pytest.fixture
def no_pickle_opt_in(monkeypatch):
    monkeypatch.delenv(skbert._model.checkpoint.ALLOW_PICKLE_WEIGHTS_ENV, raising=False)


@pytest.fixture
def pickle_opt_in(monkeypatch):
    monkeypatch.setenv(skbert._model.checkpoint.ALLOW_PICKLE_WEIGHTS_ENV, "1")


@pytest.fixture(scope="module")
def original_fingerprint(tiny_model_dir) -> str:
    return vectorizer(tiny_model_dir).fit(["probe"]).fingerprint_


def test_pickle_only_checkpoint_is_refused_by_default(
    tiny_model_copy, no_pickle_opt_in
):
    to_pickle_weights(tiny_model_copy)

    with pytest.raises(ValueError) as raised:
        vectorizer(tiny_model_copy).fit(TEXTS)

    message = str(raised.value)
    assert repr(str(tiny_model_copy)) in message
    assert "pytorch_model.bin, a pickle" in message
    assert "can run code" in message
    assert "save_file(" in message and "model.safetensors" in message
    assert "SKBERT_ALLOW_PICKLE_WEIGHTS=1" in message


def test_the_conversion_the_refusal_prescribes_works(
    tiny_model_copy, no_pickle_opt_in, original_fingerprint
):
    to_pickle_weights(tiny_model_copy)
    with pytest.raises(ValueError) as raised:
        vectorizer(tiny_model_copy).fit(TEXTS)
    recipe = "\n".join(
        line[4:] for line in str(raised.value).splitlines() if line.startswith("    ")
    )

    exec(recipe, {})  # the lines the message tells the user to run

    assert (tiny_model_copy / "model.safetensors").is_file()
    assert (
        vectorizer(tiny_model_copy).fit(["probe"]).fingerprint_ == original_fingerprint
    )


def test_pickle_weights_load_with_the_opt_in(
    tiny_model_copy, pickle_opt_in, original_fingerprint, tiny_oracle
):
    to_pickle_weights(tiny_model_copy)

    fitted = vectorizer(tiny_model_copy, pooling="mean").fit(TEXTS)

    assert fitted.fingerprint_ == original_fingerprint
    np.testing.assert_allclose(
        fitted.transform(TEXTS), tiny_oracle.vectors(TEXTS, "mean"), atol=1e-5, rtol=0
    )


def test_hostile_pickle_never_runs_not_even_with_the_opt_in(
    tiny_model_copy, tmp_path, monkeypatch
):
    marker = tmp_path / "MARKER"
    (tiny_model_copy / "model.safetensors").unlink()
    write_hostile_bin(tiny_model_copy, marker)

    monkeypatch.delenv(skbert._model.checkpoint.ALLOW_PICKLE_WEIGHTS_ENV, raising=False)
    with pytest.raises(ValueError, match="a pickle"):
        vectorizer(tiny_model_copy).fit(TEXTS)
    assert not marker.exists()

    # Opted in, transformers 5 reads it with torch.load(weights_only=True),
    # whose restricted unpickler refuses the exec global.
    monkeypatch.setenv(skbert._model.checkpoint.ALLOW_PICKLE_WEIGHTS_ENV, "1")
    skbert.clear_model_cache()
    with pytest.raises(ValueError) as raised:
        vectorizer(tiny_model_copy).fit(TEXTS)
    assert "could not be read (UnpicklingError: Weights only load failed" in str(
        raised.value
    )
    assert not marker.exists()


def test_safetensors_are_preferred_over_a_pickle_beside_them(
    tiny_model_copy, tmp_path, pickle_opt_in, original_fingerprint
):
    marker = tmp_path / "MARKER"
    write_hostile_bin(tiny_model_copy, marker)

    fitted = vectorizer(tiny_model_copy).fit(TEXTS)

    assert fitted.fingerprint_ == original_fingerprint
    assert not marker.exists()


def test_a_pickle_named_by_config_json_is_judged_too(
    tiny_model_copy, tmp_path, no_pickle_opt_in
):
    # config.json's "transformers_weights" makes transformers load that file
    # even when model.safetensors is present.
    marker = tmp_path / "MARKER"
    write_hostile_bin(tiny_model_copy, marker)
    config = json.loads((tiny_model_copy / "config.json").read_text())
    config["transformers_weights"] = "pytorch_model.bin"
    (tiny_model_copy / "config.json").write_text(json.dumps(config))

    with pytest.raises(ValueError, match="exist only as pytorch_model.bin, a pickle"):
        vectorizer(tiny_model_copy).fit(TEXTS)
    assert not marker.exists()


def test_hub_model_downloads_pickle_weights_only_with_the_opt_in(
    tiny_model_dir, tmp_path, monkeypatch
):
    import huggingface_hub

    requested = []
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, snapshot / name)

    def fake_snapshot_download(repo_id, *, allow_patterns, **kwargs):
        requested.append(list(allow_patterns))
        return str(snapshot)  # a repository without safetensors

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.delenv(skbert._model.checkpoint.ALLOW_PICKLE_WEIGHTS_ENV, raising=False)

    with pytest.raises(FileNotFoundError) as raised:
        vectorizer("someone/pickle-only-bert").fit(TEXTS)
    assert "SKBERT_ALLOW_PICKLE_WEIGHTS=1" in str(raised.value)
    assert not any("pytorch_model*.bin" in patterns for patterns in requested)

    monkeypatch.setenv(skbert._model.checkpoint.ALLOW_PICKLE_WEIGHTS_ENV, "1")
    requested.clear()
    skbert._model.resolve.resolve_model_folder("someone/pickle-only-bert")
    assert any("pytorch_model*.bin" in patterns for patterns in requested)
