"""Finding and loading checkpoints: clear errors, no invented weights, one load."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import WORDS, build_tiny_bert, cuda_available, vectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import skbert
import skbert._encoding.models
import skbert._model.handle


@pytest.fixture
def load_calls(monkeypatch):
    """Folders read by skbert's loader, with an empty model registry to start."""
    skbert.clear_model_cache()
    calls = []
    original = skbert._encoding.models.load_folder

    def counting_load_folder(folder, **kwargs):
        calls.append(os.path.realpath(folder))
        return original(folder, **kwargs)

    # Imported by name where it is called: a fit reads a folder in
    # _encoding.models, a fitted handle its checkpoint in _model.handle.
    monkeypatch.setattr(skbert._encoding.models, "load_folder", counting_load_folder)
    monkeypatch.setattr(skbert._model.handle, "load_folder", counting_load_folder)
    yield calls
    skbert.clear_model_cache()


def labelled_texts(count: int = 24) -> tuple[list[str], np.ndarray]:
    good = ["great", "good", "fun", "best", "happy", "love"]
    bad = ["dull", "boring", "bad", "worst", "sad", "hate"]
    texts, labels = [], []
    for index in range(count):
        words = good if index % 2 else bad
        filler = WORDS[index % len(WORDS)]
        texts.append(f"the {filler} film was {words[index % 6]} and {words[-1]}")
        labels.append(index % 2)
    return texts, np.array(labels)


def test_missing_folder_raises_file_not_found_naming_it(tmp_path):
    missing = tmp_path / "no-such-model"

    with pytest.raises(FileNotFoundError, match="no-such-model"):
        vectorizer(missing).fit(["a"])


def test_folder_without_config_json_raises_value_error(tiny_model_copy):
    (tiny_model_copy / "config.json").unlink()

    with pytest.raises(ValueError, match="config.json"):
        vectorizer(tiny_model_copy).fit(["a"])


def test_missing_encoder_weight_is_refused_not_invented(tiny_model_copy):
    from safetensors.torch import load_file, save_file

    weights = tiny_model_copy / "model.safetensors"
    state = load_file(weights)
    del state["encoder.layer.0.attention.self.query.weight"]
    save_file(state, weights, metadata={"format": "pt"})

    with pytest.raises(ValueError, match="attention.self.query.weight"):
        vectorizer(tiny_model_copy, pooling="mean").fit(["a"])


def test_hub_id_offline_raises_os_error_telling_how_to_fix(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub read HF_HOME at import; point its cache there as well.
    monkeypatch.setattr(
        huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-home")
    )

    with pytest.raises(OSError) as raised:
        vectorizer("bert-base-uncased").fit(["a"])

    message = str(raised.value)
    assert "bert-base-uncased" in message
    assert "HF_HUB_OFFLINE" in message
    assert "local model folder" in message


def test_hub_id_with_local_files_only_says_so(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(
        huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-home")
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    with pytest.raises(OSError, match="local_files_only=True"):
        vectorizer("bert-base-uncased", local_files_only=True).fit(["a"])


def test_invalid_hub_id_raises_file_not_found():
    with pytest.raises(FileNotFoundError, match="not a valid id!!"):
        vectorizer("not a valid id!!").fit(["a"])


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA")
def test_cuda_device_on_a_cpu_only_machine_raises_at_fit(tiny_model_dir):
    estimator = vectorizer(tiny_model_dir, device="cuda")

    with pytest.raises(ValueError, match="CUDA is not available"):
        estimator.fit(["a"])


def test_invalid_device_string_raises_value_error(tiny_model_dir):
    with pytest.raises(ValueError, match="not a valid torch device"):
        vectorizer(tiny_model_dir, device="gpu-please").fit(["a"])


def test_device_auto_runs_on_cpu_here(tiny_model_dir, tiny_oracle):
    if cuda_available():
        pytest.skip("auto picks CUDA on this machine")
    vectors = vectorizer(tiny_model_dir, device="auto").fit(["a"]).transform(["a"])

    np.testing.assert_allclose(vectors, tiny_oracle.vectors(["a"]), atol=1e-5, rtol=0)


def test_pathlike_and_str_paths_are_the_same_model(tiny_model_dir, load_calls):
    by_path = skbert.BertCLSVectorizer(model_name_or_path=tiny_model_dir, device="cpu")
    by_str = vectorizer(tiny_model_dir)

    by_path.fit(["a"])
    by_str.fit(["a"])

    assert by_path.fingerprint_ == by_str.fingerprint_
    assert len(load_calls) == 1


def test_grid_search_over_poolings_loads_the_model_once(tiny_model_dir, load_calls):
    texts, labels = labelled_texts()
    pipeline = Pipeline(
        [("bert", vectorizer(tiny_model_dir)), ("clf", LogisticRegression())]
    )
    search = GridSearchCV(
        pipeline,
        {"bert__pooling": ["cls", "pooler", "mean", "max"]},
        cv=3,
        n_jobs=1,
        error_score="raise",
    )

    search.fit(texts, labels)

    assert load_calls == [os.path.realpath(tiny_model_dir)]
    assert len(search.cv_results_["mean_test_score"]) == 4


def test_refit_reads_the_folder_again_when_its_files_changed(
    tiny_model_copy, load_calls
):
    estimator = vectorizer(tiny_model_copy).fit(["a"])
    before = estimator.fingerprint_

    build_tiny_bert(tiny_model_copy, seed=1)  # new weights in the same folder
    estimator.fit(["a"])

    assert len(load_calls) == 2
    assert estimator.fingerprint_ != before


def test_refit_with_other_parameters_rebuilds_everything(tiny_model_dir, tiny_mlm_dir):
    estimator = vectorizer(tiny_model_dir, pooling="mean").fit(["a"])
    assert estimator.has_pooler_ is True
    with_pooler = estimator.fingerprint_

    estimator.set_params(model_name_or_path=str(tiny_mlm_dir)).fit(["a"])

    assert estimator.has_pooler_ is False
    assert estimator.fingerprint_ != with_pooler
    assert estimator.n_layers_ == 3
    assert estimator.hidden_size_ == 32


def test_registry_keeps_the_most_recently_used_model(
    tiny_model_dir, make_tiny_bert, load_calls
):
    # The in-process registry keeps two models. Using A again after B makes B
    # the least recently used one, so loading C must evict B, not A.
    model_b = make_tiny_bert("b", seed=1)
    model_c = make_tiny_bert("c", seed=2)
    for folder in (tiny_model_dir, model_b, tiny_model_dir, model_c, tiny_model_dir):
        vectorizer(folder).fit(["a"])

    assert load_calls == [
        os.path.realpath(tiny_model_dir),
        os.path.realpath(model_b),
        os.path.realpath(model_c),
    ]


def test_clear_model_cache_forces_a_new_load(tiny_model_dir, load_calls):
    vectorizer(tiny_model_dir).fit(["a"])
    vectorizer(tiny_model_dir).fit(["a"])
    assert len(load_calls) == 1

    skbert.clear_model_cache()
    vectorizer(tiny_model_dir).fit(["a"])

    assert len(load_calls) == 2


def test_fitted_estimator_keeps_working_after_clear_model_cache(
    tiny_model_dir, tiny_oracle, load_calls
):
    estimator = vectorizer(tiny_model_dir, pooling="mean").fit(["a"])
    skbert.clear_model_cache()

    vectors = estimator.transform(["a great film"])

    np.testing.assert_allclose(
        vectors, tiny_oracle.vectors(["a great film"], "mean"), atol=1e-5, rtol=0
    )
    assert len(load_calls) == 1
