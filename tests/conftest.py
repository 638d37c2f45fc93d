"""Shared fixtures: a tiny random BERT built once per session, its masked-LM twin,
and oracles computed by transformers itself (see ``helpers.py``)."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub, which reads it once at import.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from helpers import TINY_MAX_LENGTH, BertOracle, build_tiny_bert  # noqa: E402

import skbert  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny BERT, with pooler weights. Shared: never modify it."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="session")
def tiny_mlm_dir(tmp_path_factory) -> Path:
    """The tiny BERT saved as BertForMaskedLM (no pooler weights). Never modify it."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-mlm") / "bert", masked_lm=True)


@pytest.fixture
def tiny_model_copy(tiny_model_dir, tmp_path) -> Path:
    """A private copy of the tiny model that the test may change or delete."""
    return Path(shutil.copytree(tiny_model_dir, tmp_path / "model-copy"))


@pytest.fixture
def make_tiny_bert(tmp_path):
    """Build a tiny BERT variant: ``make_tiny_bert(name, seed=..., masked_lm=...)``."""

    def make(name: str = "variant", **options) -> Path:
        return build_tiny_bert(tmp_path / name, **options)

    return make


@pytest.fixture(scope="session")
def tiny_oracle(tiny_model_dir) -> BertOracle:
    return BertOracle(tiny_model_dir, TINY_MAX_LENGTH)


@pytest.fixture(scope="session")
def tiny_mlm_oracle(tiny_mlm_dir) -> BertOracle:
    """Hidden states of the pooler-less model (its pooler output is random)."""
    return BertOracle(tiny_mlm_dir, TINY_MAX_LENGTH)


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """Texts of very different token counts, all within the tiny model's limit."""
    return [
        "A great film.",
        "dull",
        "",
        "the story was far too long and the plot never goes anywhere at all, but "
        "the music and the cast were very good and the ending made me happy again",
        "Hello world!",
        "café naïve",
        "cafe\u0301 nai\u0308ve",  # combining accents
        "שלום עולם",  # right to left
        "فيلم جميل",
        "我爱电影 😀🎬",
        "actors acting badly: 3/10 ...",
        "one two three",
    ]


@pytest.fixture(autouse=True)
def _fresh_embedding_cache():
    """Every test starts with an empty in-process embedding cache, so that no
    vector computed by one test can be served to another."""
    skbert.clear_cache()
    yield
