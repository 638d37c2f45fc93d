"""``skbert.runtime`` runs an artefact with torch, transformers and
scikit-learn made unimportable, in a fresh process: a deployment needs
numpy, onnxruntime and tokenizers only."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_python, vectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

import skbert
from skbert.datasets import load_sentiment_sentences

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

pytestmark = pytest.mark.filterwarnings("ignore::skbert.TruncationWarning")

#: Top-level packages the child refuses to import: everything skbert's
#: training side uses that a deployment must not need.
BLOCKED = (
    "torch",
    "transformers",
    "sklearn",
    "scipy",
    "onnx",
    "skl2onnx",
    "huggingface_hub",
    "safetensors",
    "sentence_transformers",
    "joblib",
    "pandas",
)
#: What the child may import beyond the standard library.
ALLOWED = {"numpy", "onnxruntime", "tokenizers", "skbert"}

CHILD = """
import importlib.abc
import json
import sys

BLOCKED = {blocked!r}


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked in this process")
        return None


sys.meta_path.insert(0, Blocker())
for name in BLOCKED:
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"the blocker let {{name}} through")

from skbert import runtime

model = runtime.load({path!r})
texts = {texts!r}
loaded = sorted(
    {{name.split(".")[0] for name in sys.modules}} - set(sys.stdlib_module_names)
)
print(json.dumps({{
    "predict": model.predict(texts).tolist(),
    "predict_proba": model.predict_proba(texts).tolist(),
    "modules": [name for name in loaded if not name.startswith("_")],
}}))
"""


def test_the_runtime_needs_neither_torch_transformers_nor_scikit_learn(
    tiny_model_dir, tmp_path
):
    texts, labels = load_sentiment_sentences("amazon")
    pipe = make_pipeline(
        vectorizer(tiny_model_dir, pooling="mean"), LogisticRegression()
    ).fit(texts[:200], labels[:200])
    path = tmp_path / "sentiment.onnx"
    skbert.export_onnx(pipe, path)
    unseen = texts[200:260]

    code = CHILD.format(blocked=BLOCKED, path=str(path), texts=unseen)
    result = json.loads(run_python(code, cwd=tmp_path).strip().splitlines()[-1])

    assert set(result["modules"]) <= ALLOWED, result["modules"]
    assert result["predict"] == pipe.predict(unseen).tolist()
    np.testing.assert_allclose(
        result["predict_proba"], pipe.predict_proba(unseen), atol=1e-5, rtol=0
    )
