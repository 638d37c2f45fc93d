"""A long text is never tokenized whole when its strategy keeps a part of it,
and its pieces give exactly the tokens of the whole text (issue 25, item 6).

The oracle is the tokenizer itself run on the whole text, for the kinds of
tokenizer skbert's families use: WordPiece behind BERT's normalizer and
pre-tokenizer (BERT, DistilBERT, ELECTRA, MPNet), byte-level BPE (RoBERTa,
ModernBERT, GPT-2 style) and SentencePiece-style Metaspace with Unigram (XLM-R,
ALBERT, DeBERTa-v2/v3, T5) and BPE, each trained here on a small corpus in a
second. The texts mix words, runs of spaces, tabs, newlines, punctuation,
accents, CJK and emoji; the piece sizes are made small, so that every text is
cut many times.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
from helpers import WORDS
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)
from transformers import PreTrainedTokenizerFast

import skbert._core.tokenize
from skbert._core.long_texts import model_inputs
from skbert._core.tokenize import TextTokenizer

PIECES = [*WORDS, "déjà", "Ærø", "naïve", "東京", "日本語", "🙂", "👍🏽", "can't", "x2"]
GAPS = [" ", " ", " ", " ", "  ", "   ", "\t", "\n", " \n ", ", ", ". ", "!", "-"]


def _corpus(rng: np.random.Generator, n: int = 300) -> list[str]:
    return [_text(rng, 40) for _ in range(n)]


def _text(rng: np.random.Generator, words: int) -> str:
    parts = []
    for _ in range(words):
        parts.append(PIECES[int(rng.integers(len(PIECES)))])
        parts.append(GAPS[int(rng.integers(len(GAPS)))])
    return "".join(parts)


def _wordpiece(corpus):
    backend = Tokenizer(
        models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100)
    )
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    )
    return backend, trainer, ("[CLS]", "[SEP]", "[PAD]", "[UNK]")


def _byte_level(corpus):
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    return backend, trainer, ("<s>", "</s>", "<pad>", "<unk>")


def _metaspace(kind):
    def build(corpus):
        model = models.Unigram() if kind == "unigram" else models.BPE(unk_token="<unk>")
        backend = Tokenizer(model)
        backend.normalizer = normalizers.Sequence(
            [normalizers.NFKC(), normalizers.Replace("\t", " ")]
        )
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Metaspace()
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        trainer = (
            trainers.UnigramTrainer(
                vocab_size=300, special_tokens=specials, unk_token="<unk>"
            )
            if kind == "unigram"
            else trainers.BpeTrainer(vocab_size=300, special_tokens=specials)
        )
        return backend, trainer, ("<s>", "</s>", "<pad>", "<unk>")

    return build


KINDS = {
    "wordpiece": _wordpiece,
    "byte-level-bpe": _byte_level,
    "metaspace-unigram": _metaspace("unigram"),
    "metaspace-bpe": _metaspace("bpe"),
}


@pytest.fixture(scope="module", params=KINDS)
def tokenizer(request) -> TextTokenizer:
    from tokenizers.processors import TemplateProcessing

    corpus = _corpus(np.random.default_rng(0))
    backend, trainer, (first, last, pad, unk) = KINDS[request.param](corpus)
    backend.train_from_iterator(corpus, trainer)
    backend.post_processor = TemplateProcessing(
        single=f"{first} $A {last}",
        special_tokens=[
            (first, backend.token_to_id(first)),
            (last, backend.token_to_id(last)),
        ],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=pad, unk_token=unk, model_max_length=64
    )
    return TextTokenizer(fast)


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of a few hundred characters: every text is cut many times."""
    monkeypatch.setattr(skbert._core.tokenize, "_SMALLEST_PIECE", 64)
    monkeypatch.setattr(skbert._core.tokenize, "_CHARS_PER_TOKEN", 2)
    monkeypatch.setattr(skbert._core.tokenize, "_PIECE_CHARS", 97)


def _inputs(tokenizer, contents, max_length, strategy):
    return model_inputs(
        contents,
        tokenizer.prefix,
        tokenizer.suffix,
        max_length=max_length,
        strategy=strategy,
        head_tokens=None,
        stride=0,
    )


@pytest.mark.parametrize("strategy", ["truncate", "head_tail", "chunk"])
@pytest.mark.parametrize("max_length", [8, 64])
def test_pieces_give_the_tokens_of_the_whole_text(
    tokenizer, small_pieces, strategy, max_length
):
    rng = np.random.default_rng(max_length)
    texts = [_text(rng, int(words)) for words in rng.integers(1, 1500, size=40)]
    texts += ["word " * 3000, "東京" * 2000 + " end", "a  b" * 800, ""]

    whole = tokenizer._all_ids(texts)  # the oracle: each text tokenized whole
    pieces = tokenizer.content_ids(texts, tokenizer.kept(max_length, strategy))

    expected = _inputs(tokenizer, whole, max_length, strategy)
    found = _inputs(tokenizer, pieces, max_length, strategy)
    assert found.rows == expected.rows
    assert found.cut == expected.cut
    assert found.count == expected.count


def test_a_long_text_is_read_only_as_far_as_it_is_kept(tokenizer, monkeypatch):
    """The tokenizer sees a bounded part of a 3-million-character text."""
    seen = []
    read = TextTokenizer._all_ids

    def counting(self, texts):
        seen.extend(len(text) for text in texts)
        return read(self, texts)

    monkeypatch.setattr(TextTokenizer, "_all_ids", counting)
    text = _text(np.random.default_rng(1), 100_000) * 6
    assert len(text) > 3_000_000
    for strategy in ("truncate", "head_tail"):
        seen.clear()
        tokenizer.content_ids([text], tokenizer.kept(512, strategy))
        assert 0 < sum(seen) < 100_000, (strategy, seen)


@pytest.mark.slow
def test_a_30_million_character_text_costs_what_a_short_one_does(tokenizer):
    """Time and memory to read the kept tokens of a 30-million-character text:
    generous bounds that the whole-text tokenization (tens of seconds and
    gigabytes for a BERT tokenizer) cannot meet."""
    text = _text(np.random.default_rng(2), 100_000) * 60
    assert len(text) > 30_000_000
    tracemalloc.start()
    started = time.perf_counter()
    ids = tokenizer.content_ids([text], tokenizer.kept(256, "truncate"))
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(ids[0]) > 254
    assert seconds < 2.0
    assert peak < 50 * 2**20
