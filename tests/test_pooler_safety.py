"""A checkpoint without pooler weights never gets random ones.

``BertModel.from_pretrained`` on a masked-LM checkpoint silently invents the
pooler (a different one on every load); skbert refuses ``pooling="pooler"``
there, and its other poolings are deterministic and quiet.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from helpers import finish_python, start_python, vectorizer

import skbert

NOISE = ("newly initialized", "MISSING", "LOAD REPORT", "UNEXPECTED")


@pytest.fixture
def transformers_logs(caplog):
    """caplog that also sees transformers' own logger (it does not propagate)."""
    logger = logging.getLogger("transformers")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def assert_quiet(capfd, caplog) -> None:
    out, err = capfd.readouterr()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for text in NOISE:
        assert text not in out
        assert text not in err
        assert text not in logged


def test_pooler_on_masked_lm_checkpoint_is_refused_with_the_reason(tiny_mlm_dir):
    estimator = vectorizer(tiny_mlm_dir, pooling="pooler")

    with pytest.raises(ValueError) as raised:
        estimator.fit(["a great film"])

    message = str(raised.value)
    assert "pooler.dense.weight" in message
    assert "pooler.dense.bias" in message
    assert "masked-LM" in message or "BertForMaskedLM" in message
    assert "'cls'" in message and "'mean'" in message
    assert not hasattr(estimator, "model_")


def test_fitted_estimator_refuses_switching_to_pooler(tiny_mlm_dir):
    estimator = vectorizer(tiny_mlm_dir, pooling="cls").fit(["a"])
    assert estimator.has_pooler_ is False

    estimator.set_params(pooling="pooler")

    with pytest.raises(ValueError, match="pooler.dense.weight"):
        estimator.transform(["a"])


def test_checkpoint_with_pooler_reports_it(tiny_model_dir):
    assert vectorizer(tiny_model_dir).fit(["a"]).has_pooler_ is True


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_other_poolings_are_deterministic_across_fits_and_fresh_loads(
    tiny_mlm_dir, tiny_mlm_oracle, texts, pooling, capfd, transformers_logs
):
    capfd.readouterr()
    runs = []
    for _ in range(2):
        estimator = vectorizer(tiny_mlm_dir, pooling=pooling).fit(texts)
        runs.append(estimator.transform(texts))
        runs.append(estimator.transform(texts))
        skbert.clear_model_cache()  # the next fit loads the checkpoint again

    for run in runs[1:]:
        np.testing.assert_array_equal(run, runs[0])
    np.testing.assert_allclose(
        runs[0], tiny_mlm_oracle.vectors(texts, pooling), atol=1e-5, rtol=0
    )
    assert_quiet(capfd, transformers_logs)


def test_refusal_is_quiet_too(tiny_mlm_dir, capfd, transformers_logs):
    capfd.readouterr()
    skbert.clear_model_cache()

    with pytest.raises(ValueError):
        vectorizer(tiny_mlm_dir, pooling="pooler").fit(["a"])

    assert_quiet(capfd, transformers_logs)


def test_plain_transformers_invents_a_different_pooler_on_every_load(
    tiny_mlm_dir, capfd, transformers_logs
):
    # The trap skbert protects from, and a check that the capture used by the
    # "quiet" tests does see transformers' load report.
    import torch
    from transformers import BertModel

    capfd.readouterr()
    encoded = None
    outputs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = BertModel.from_pretrained(tiny_mlm_dir).eval()
        if encoded is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tiny_mlm_dir)
            encoded = tokenizer(["a great film"], return_tensors="pt")
        with torch.no_grad():
            output = model(**encoded)
        outputs.append((output.last_hidden_state, output.pooler_output))

    assert torch.equal(outputs[0][0], outputs[1][0])  # the encoder is the same
    assert not torch.allclose(outputs[0][1], outputs[1][1])  # the pooler is not
    out, err = capfd.readouterr()
    logged = "\n".join(record.getMessage() for record in transformers_logs.records)
    assert any(text in out + err + logged for text in ("MISSING", "newly initialized"))


CHILD_VECTORS = """
    import sys
    import numpy as np
    import skbert

    texts = {texts!r}
    result = {{}}
    for pooling in ("cls", "mean", "max"):
        estimator = skbert.BertCLSVectorizer(
            model_name_or_path={folder!r}, pooling=pooling, device="cpu", cache=None
        )
        result[pooling] = estimator.fit(texts).transform(texts)
    np.savez({out!r}, **result)
"""


@pytest.mark.slow
def test_same_vectors_in_two_fresh_processes(tiny_mlm_dir, texts, tmp_path):
    children = []
    for index in range(2):
        out = str(tmp_path / f"child{index}.npz")
        code = CHILD_VECTORS.format(texts=texts, folder=str(tiny_mlm_dir), out=out)
        children.append((start_python(code, cwd=tmp_path), out))
    for child, _ in children:
        finish_python(child)

    first, second = (np.load(out) for _, out in children)
    for pooling in ("cls", "mean", "max"):
        here = vectorizer(tiny_mlm_dir, pooling=pooling).fit(texts).transform(texts)
        np.testing.assert_array_equal(first[pooling], second[pooling])
        np.testing.assert_allclose(first[pooling], here, atol=1e-6, rtol=0)
