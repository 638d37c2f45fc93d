"""Hostile and odd text: never a crash, the right shape, the same vector for the
same text whether it is alone or inside any batch.

Property-based tests (hypothesis) draw arbitrary Unicode mixed with
hand-picked hostile characters (NUL and other controls, zero-width and
bidirectional marks, combining sequences, emoji sequences, non-characters).
Oracles: the same text encoded alone (no padding, no neighbours), and for the
fixed cases transformers' own ``BertModel`` (``BertOracle``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import POOLINGS, TINY_HIDDEN_SIZE, TINY_MAX_LENGTH, vectorizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skbert

#: Characters that have broken text pipelines before, one code point each.
HOSTILE_CHARACTERS = [
    "\x00",  # NUL
    "\x01",
    "\x07",  # bell
    "\x08",  # backspace
    "\x1b",  # escape
    "\x7f",  # delete
    "\x85",  # next line (C1 control)
    "\t",
    "\n",
    "\r",
    "\x0b",
    "\x0c",
    "\u00a0",  # no-break space
    "\u1680",
    "\u2028",  # line separator
    "\u2029",  # paragraph separator
    "\u3000",  # ideographic space
    "\u200b",  # zero-width space
    "\u200c",  # zero-width non-joiner
    "\u200d",  # zero-width joiner
    "\u2060",  # word joiner
    "\ufeff",  # byte order mark
    "\u00ad",  # soft hyphen
    "\u200e",  # left-to-right mark
    "\u200f",  # right-to-left mark
    "\u061c",  # Arabic letter mark
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",  # right-to-left override
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u0301",  # combining acute accent
    "\u0308",  # combining diaeresis
    "\u0336",  # combining long stroke overlay
    "\u20dd",  # combining enclosing circle
    "\ufe0f",  # variation selector 16
    "\U000e0001",  # language tag
    "\ufffd",  # replacement character
    "\ufffe",  # non-characters
    "\uffff",
    "\U0010ffff",
    "\ue000",  # private use
    "😀",
    "🏽",  # skin tone modifier
    "🇫",  # regional indicator
    "ﷺ",  # one code point, many letters after NFKC
    "ﬁ",  # ligature
    "İ",  # changes length when lower-cased
    "ß",
    "中",
    "ש",
    "ف",
    " ",
    ".",
]
#: Pieces joined into texts: the characters above plus words and sequences.
HOSTILE_PIECES = [
    *HOSTILE_CHARACTERS,
    "film",
    " the ",
    "great",
    "👩\u200d👩\u200d👧",
    "e\u0301",
    "\r\n",
]

#: Whole texts that are odd as a unit.
HOSTILE_TEXTS = {
    "empty": "",
    "space": " ",
    "whitespace-only": " \t\n\r\x0b\x0c\u00a0\u2028\u2029\u3000",
    "nul-only": "\x00" * 7,
    "controls": "".join(chr(c) for c in range(32)),
    "zero-width-only": "\u200b\u200c\u200d\u2060\ufeff",
    "bidi-marks-only": "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2069",
    "rtl-override-in-text": "the \u202efilm\u202c was good",
    "rtl-words": "שלום עולם فيلم جميل",
    "combining-stack": "e" + "\u0301\u0308\u0336" * 30,
    "combining-without-base": "\u0301\u0308 film",
    "emoji-zwj-family": "👩\u200d👩\u200d👧\u200d👦 film",
    "emoji-flag-and-tone": "🏳️\u200d🌈 👍🏽 🇫🇷",
    "bom-prefixed": "\ufeffthe film",
    "noncharacters": "\ufffe\uffff\U0010ffff",
    "private-use": "\ue000\uf8ff film",
    "nfkc-expanding": "ﷺ ﬁlm ㎏",
    "mixed-scripts": "the 映画 фильм ταινία film",
}

HOSTILE_CHARACTER = st.sampled_from(HOSTILE_CHARACTERS)
#: Any code point except lone surrogates (which are refused, see the last test).
ANY_CHARACTER = st.characters(exclude_categories=["Cs"])
TEXT = st.one_of(
    st.text(st.one_of(ANY_CHARACTER, HOSTILE_CHARACTER), max_size=60),
    st.lists(st.sampled_from(HOSTILE_PIECES), max_size=30).map("".join),
    st.sampled_from(sorted(HOSTILE_TEXTS.values())),
)
#: Modest budgets: every example runs the model once per text plus once per batch.
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def fitted(tiny_model_dir) -> skbert.BertCLSVectorizer:
    """One fitted vectorizer; ``pooling`` and ``cache`` are read at transform time."""
    return vectorizer(tiny_model_dir).fit(["probe"])


def encode(model: skbert.BertCLSVectorizer, texts) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", skbert.TruncationWarning)
        return model.transform(texts)


def assert_well_formed(vectors: np.ndarray, n_texts: int) -> None:
    assert isinstance(vectors, np.ndarray)
    assert vectors.shape == (n_texts, TINY_HIDDEN_SIZE)
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()


@PROPERTY_SETTINGS
@given(
    batch=st.lists(TEXT, min_size=1, max_size=6),
    pooling=st.sampled_from(POOLINGS),
    cache=st.sampled_from([None, "auto"]),
)
def test_any_unicode_batch_gives_each_text_its_own_vector(
    fitted, batch, pooling, cache
):
    model = fitted.set_params(pooling=pooling, cache=cache, batch_size=32)
    skbert.clear_cache()

    vectors = encode(model, batch)

    assert_well_formed(vectors, len(batch))
    # batch_size=1 without cache: every text runs alone, unpadded.
    alone = encode(model.set_params(cache=None, batch_size=1), batch)
    np.testing.assert_allclose(vectors, alone, atol=1e-5, rtol=0)
    again = encode(model.set_params(batch_size=32), batch)
    np.testing.assert_array_equal(again, encode(model, batch))


@settings(PROPERTY_SETTINGS, max_examples=30)
@given(
    others=st.lists(TEXT, max_size=10),
    text=TEXT,
    data=st.data(),
)
def test_same_text_same_vector_at_any_position_among_any_neighbours(
    fitted, others, text, data
):
    model = fitted.set_params(pooling="mean", cache=None, batch_size=32)
    position = data.draw(st.integers(0, len(others)), label="position")
    batch = [*others[:position], text, *others[position:]]

    alone = encode(model, [text])[0]
    inside = encode(model, batch)[position]

    np.testing.assert_allclose(inside, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_hostile_texts_match_bert_model_one_by_one(fitted, tiny_oracle, pooling):
    texts = list(HOSTILE_TEXTS.values())

    model = fitted.set_params(pooling=pooling, cache=None, batch_size=32)
    vectors = encode(model, texts)

    assert_well_formed(vectors, len(texts))
    expected = tiny_oracle.vectors(texts, pooling)
    np.testing.assert_allclose(vectors, expected, atol=1e-5, rtol=0)


LONG = 100_000
LONG_TEXTS = {
    "one-word": "a" * LONG,  # longer than WordPiece's 100 characters: one [UNK]
    "words": ("the film was far too long " * LONG)[:LONG],
    "emoji": "😀" * LONG,
    "nul": "\x00" * LONG,
    "whitespace": " \t\n" * (LONG // 3),
    "one-grapheme": "e" + "\u0301" * (LONG - 1),
    "zero-width": "\u200b" * LONG,
    "rtl": ("\u202eשלום \u202c" * LONG)[:LONG],
    "cjk": "中文我爱电影好" * (LONG // 7),
    "mixed": ("a\u0301😀\x00 \u200f中 film\t" * LONG)[:LONG],
}


def test_texts_of_100k_characters_are_truncated_like_bert_model(fitted, tiny_oracle):
    texts = list(LONG_TEXTS.values())
    model = fitted.set_params(pooling="mean", cache=None, batch_size=32)
    too_long = [
        position
        for position, text in enumerate(texts)
        if tiny_oracle.n_tokens(text) > TINY_MAX_LENGTH
    ]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        together = model.transform(texts)

    assert_well_formed(together, len(texts))
    expected = tiny_oracle.vectors(texts, "mean")
    np.testing.assert_allclose(together, expected, atol=1e-5, rtol=0)
    truncation = [w for w in caught if w.category is skbert.TruncationWarning]
    assert len(truncation) == 1
    assert f"{len(too_long)} of {len(texts)} texts" in str(truncation[0].message)
    assert f"first at position {too_long[0]}" in str(truncation[0].message)


def test_twenty_thousand_one_character_texts(fitted, tiny_oracle):
    """Every distinct code point class, one text each, across tokenizer chunks."""
    code_points = [c for c in range(0x30000) if not 0xD800 <= c < 0xE000]
    picks = np.linspace(0, len(code_points) - 1, 20_000).astype(int)
    texts = [chr(code_points[i]) for i in picks]
    assert len(set(texts)) == 20_000
    model = fitted.set_params(pooling="mean", cache=None, batch_size=1024)
    vectors = encode(model, texts)

    assert_well_formed(vectors, len(texts))
    # Texts the tokenizer maps to the same ids (most to [UNK], controls to
    # nothing) must get bit-for-bit the same vector wherever they sit.
    ids = tiny_oracle.tokenizer(texts, add_special_tokens=False)["input_ids"]
    groups: dict[tuple[int, ...], list[int]] = {}
    for position, row in enumerate(ids):
        groups.setdefault(tuple(row), []).append(position)
    assert len(groups) > 20
    for members in groups.values():
        np.testing.assert_allclose(
            vectors[members], vectors[members[:1]].repeat(len(members), 0), atol=1e-5
        )
    # and one text of each group equals its vector when encoded alone
    firsts = [members[0] for members in groups.values()]
    alone = encode(model, [texts[i] for i in firsts])
    np.testing.assert_allclose(vectors[firsts], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "bad",
    ["\ud800", "film \udfff", "\udc80\udc81", "\ud83d\ude00"],
    ids=["high", "low-inside-text", "surrogateescape-bytes", "split-emoji-pair"],
)
@pytest.mark.parametrize("cache", [None, "auto"])
def test_lone_surrogates_are_refused_naming_the_text(fitted, bad, cache):
    # Python strings may hold lone surrogates (e.g. bytes decoded with
    # errors="surrogateescape"); they are not valid Unicode and no tokenizer
    # can encode them. The error must say which text and what to do, not be a
    # TypeError from inside the Rust tokenizer.
    model = fitted.set_params(pooling="cls", cache=cache, batch_size=32)
    texts = ["a great film", "dull", bad, "\ud800 later"]

    with pytest.raises(ValueError) as raised:
        model.transform(texts)

    message = str(raised.value)
    assert "position 2" in message
    assert "surrogate" in message
    assert "encode" in message or "replace" in message  # how to repair it
