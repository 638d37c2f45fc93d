"""Test helpers: the tiny BERT builder, the independent oracle, fresh processes.

Fixtures live in ``conftest.py``; this module holds the plain functions and
classes that tests import (``from helpers import ...``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import skbert

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = """
the a an and or but is was are be been this that these it its of to in on at for
with as by from not no never ever always all some one two three i you he she we
they me my your our their love hate like see saw watch make made time day night
end new old best worst good great bad dull boring fun funny long short far too
very so much more most less film movie story plot actor actors scene scenes cast
director music score sound ending start middle sad happy slow fast world hello
cafe naive sentence text word words vector model data test first last again here
there what why how when who which would could should will can do did does done
just only also even still yet back up down out over under after before while
""".split()
SUFFIXES = ["##s", "##ed", "##ing", "##ly", "##er", "##est", "##ness", "##ful", "##y"]
CHARACTERS = list("abcdefghijklmnopqrstuvwxyz0123456789")
PUNCTUATION = list(".,!?'\"-:;()/&@#%*+=_~")
# Hebrew (right to left), Arabic, Greek, Cyrillic and emoji: single characters
# plus their word-piece continuations, so that whole words tokenize.
SCRIPT_CHARACTERS = list(
    "אבגדהוזחטיכךלמםנןסעפףצץקרשתابتثجحخدذرزسشصضطظعغفقكلمنهويαβγδεζηθпривет😀🎬👍"
)
CJK_CHARACTERS = list("中文我爱电影好")  # each CJK character is its own token

#: Maximum sequence length of the tiny model (its max_position_embeddings).
TINY_MAX_LENGTH = 64
TINY_HIDDEN_SIZE = 32
POOLINGS = ("cls", "pooler", "mean", "max")


def tiny_vocabulary() -> list[str]:
    """The tiny model's WordPiece vocabulary (a few hundred entries)."""
    vocab = list(SPECIAL_TOKENS) + WORDS + SUFFIXES + CHARACTERS + PUNCTUATION
    vocab += ["##" + char for char in CHARACTERS]
    vocab += SCRIPT_CHARACTERS + ["##" + char for char in SCRIPT_CHARACTERS]
    vocab += CJK_CHARACTERS
    return list(dict.fromkeys(vocab))  # "a" and "i" are words and letters


def build_tiny_bert(
    folder: str | os.PathLike, *, seed: int = 0, masked_lm: bool = False
) -> Path:
    """Write a tiny random BERT checkpoint (config, tokenizer, weights) to ``folder``.

    ``masked_lm=True`` saves a ``BertForMaskedLM`` built from the same config:
    exactly how a masked-LM pre-trained checkpoint looks (``bert.*`` encoder
    weights and an MLM head, no ``pooler.*`` weights). Writing into an existing
    checkpoint folder replaces its weights.
    """
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocabulary()
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # From the folder, not BertTokenizerFast(vocab_file=...): transformers 5
    # silently ignores that argument and builds a 5-token vocabulary.
    tokenizer = BertTokenizerFast.from_pretrained(folder)
    if len(tokenizer) != len(vocab) or tokenizer.unk_token in tokenizer.tokenize(
        "the great film, שלום 我 😀 badly"
    ):
        raise RuntimeError("the tiny tokenizer did not load its vocabulary")
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=TINY_HIDDEN_SIZE,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=TINY_MAX_LENGTH,
    )
    torch.manual_seed(seed)
    model = (BertForMaskedLM if masked_lm else BertModel)(config)
    save_checkpoint(model, tokenizer, folder)
    return folder


def save_checkpoint(model, tokenizer, folder: Path) -> None:
    """``save_pretrained`` both, without transformers' progress bar."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def numpy_pool(
    states: np.ndarray, pooling: str, mask: np.ndarray | None = None
) -> np.ndarray:
    """Masked pooling of ``(tokens, hidden)`` states, written out one text at a
    time (mask: 1 for counted tokens; a prompt or padding is 0). Every pooling
    of ``skbert._encoding.pooling``, with sentence-transformers' definitions: positions
    count from 1 for ``weightedmean``; ``lasttoken`` is the last counted token.
    A text without any counted token averages to zeros and has no last token
    (zeros), and its maximum is -inf."""
    counted = (
        np.ones(len(states), dtype=bool) if mask is None else np.asarray(mask) != 0
    )
    positions = np.flatnonzero(counted)
    real = states[counted]
    if pooling == "cls":
        return states[positions[0] if len(positions) else 0]
    if pooling == "mean":
        return real.mean(axis=0) if len(real) else np.zeros_like(states[0])
    if pooling == "max":  # no counted token: -inf (nothing is larger)
        return real.max(axis=0) if len(real) else np.full_like(states[0], -np.inf)
    if pooling == "mean_sqrt_len":
        return real.sum(axis=0) / np.sqrt(max(len(real), 1e-9))
    if pooling == "weightedmean":
        weights = (positions + 1).astype(states.dtype)
        return (real * weights[:, None]).sum(axis=0) / max(weights.sum(), 1e-9)
    if pooling == "lasttoken":
        return states[positions[-1]] if len(positions) else np.zeros_like(states[0])
    raise ValueError(f"no numpy pooling {pooling!r}")


class BertOracle:
    """Expected vectors from transformers' own ``BertModel``, one text at a time.

    The pooling is done here with numpy on ``output_hidden_states``, so nothing
    of skbert's batching, padding or pooling takes part in the expected values.
    """

    def __init__(self, folder: str | os.PathLike, max_length: int) -> None:
        import torch
        from transformers import AutoTokenizer, BertModel

        self.folder = Path(folder)
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = BertModel.from_pretrained(folder, dtype=torch.float32).eval()
        self._memo: dict[tuple[str, int], tuple[list[np.ndarray], np.ndarray]] = {}

    def outputs(
        self, text: str, max_length: int | None = None
    ) -> tuple[list[np.ndarray], np.ndarray]:
        """Hidden states (each ``(tokens, hidden)``) and pooler output of ``text``."""
        import torch

        max_length = max_length or self.max_length
        key = (text, max_length)
        if key not in self._memo:
            encoded = self.tokenizer(
                text, return_tensors="pt", truncation=True, max_length=max_length
            )
            with torch.no_grad():
                out = self.model(**encoded, output_hidden_states=True)
            states = [layer[0].double().numpy() for layer in out.hidden_states]
            self._memo[key] = (states, out.pooler_output[0].double().numpy())
        return self._memo[key]

    def n_tokens(self, text: str) -> int:
        """Token count of ``text`` with [CLS] and [SEP], before any truncation."""
        return len(self.tokenizer(text)["input_ids"])

    def vector(
        self,
        text: str,
        pooling: str = "cls",
        *,
        layers: int | Sequence[int] = -1,
        normalize: bool = False,
        max_length: int | None = None,
    ) -> np.ndarray:
        states, pooler = self.outputs(text, max_length)
        if pooling == "pooler":
            vector = pooler
        else:
            chosen = [layers] if isinstance(layers, int) else list(layers)
            vector = np.mean([numpy_pool(states[i], pooling) for i in chosen], axis=0)
        if normalize:
            vector = vector / np.linalg.norm(vector)
        return vector.astype(np.float32)

    def vectors(self, texts: Sequence[str], pooling: str = "cls", **kwargs):
        return np.stack([self.vector(text, pooling, **kwargs) for text in texts])


def distinct_texts(n: int, seed: int = 0, longest: int = 14) -> list[str]:
    """``n`` different texts of 1 to ``longest - 1`` random words (and a number)."""
    rng = np.random.default_rng(seed)
    return [
        " ".join(rng.choice(WORDS, size=rng.integers(1, longest))) + f" {seed}-{i}"
        for i in range(n)
    ]


def in_threads(callers: Sequence[int], work: Callable[[int], object]) -> list:
    """``work(caller)`` for each caller, in as many threads, all started at once;
    the results in the order of ``callers``."""
    start = threading.Barrier(len(callers))

    def run(caller: int) -> object:
        start.wait()
        return work(caller)

    with ThreadPoolExecutor(max_workers=len(callers)) as pool:
        return list(pool.map(run, callers))


def vectorizer(folder: str | os.PathLike, **params) -> skbert.BertCLSVectorizer:
    """A CPU vectorizer on ``folder`` with the embedding cache off unless asked.

    Most tests check what the model computes, so a cached vector must not stand
    in for a forward pass; tests of the cached path pass ``cache="auto"``.
    """
    params.setdefault("device", "cpu")
    params.setdefault("cache", None)
    return skbert.BertCLSVectorizer(model_name_or_path=str(folder), **params)


def clean_env(hf_home: str | os.PathLike) -> dict[str, str]:
    """Environment of a fresh process: offline, with an empty Hugging Face home."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "SKBERT_"))
    }
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(hf_home), TOKENIZERS_PARALLELISM="false")
    return env


def child_command(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def start_python(code: str, *, cwd: str | os.PathLike) -> subprocess.Popen:
    """Start ``code`` in a fresh interpreter (offline, empty HF home) in ``cwd``."""
    hf_home = Path(cwd) / "hf-home"
    hf_home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        child_command(code),
        cwd=cwd,
        env=clean_env(hf_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_storing_child(
    folder: str | os.PathLike,
    cache: str | os.PathLike,
    texts: list[str],
    *,
    batch_size: int,
    cwd: str | os.PathLike,
    pause: float = 0.0,
) -> subprocess.Popen:
    """A fresh process encoding ``texts`` into the cache directory ``cache``; it
    prints ``stored N`` after each batch it stores, then sleeps ``pause`` s."""
    code = f"""
        import signal, time
        # Ctrl-C raises KeyboardInterrupt, as in a user's shell, even when the
        # tests run in a background job (which starts with SIGINT ignored)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import skbert._storage.cache as c
        from skbert import BertCLSVectorizer
        put = c.DiskStore.put_many
        def reporting_put(self, items):
            put(self, items)
            print("stored", len(items), flush=True)
            time.sleep({pause!r})
        c.DiskStore.put_many = reporting_put
        BertCLSVectorizer(model_name_or_path={str(folder)!r}, device="cpu",
                          batch_size={batch_size}, cache={str(cache)!r}
                          ).fit_transform({texts!r})
    """
    return start_python(code, cwd=cwd)


def read_stored(child: subprocess.Popen, at_least: int) -> int:
    """Rows the child of :func:`start_storing_child` stored, read from its
    output until there are ``at_least`` (or it ends)."""
    stored = 0
    for line in child.stdout:
        stored += int(line.split()[1])
        if stored >= at_least:
            break
    return stored


def finish_python(process: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for a child started by :func:`start_python`; its stdout, or fail."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"child process timed out:\n{stdout}\n{stderr}")
    if process.returncode != 0:
        pytest.fail(
            f"child process failed with exit code {process.returncode}:\n"
            f"--- stdout\n{stdout}\n--- stderr\n{stderr}"
        )
    return stdout


def run_python(code: str, *, cwd: str | os.PathLike, timeout: float = 300) -> str:
    """Run ``code`` in a fresh interpreter and return its stdout (fail on error)."""
    return finish_python(start_python(code, cwd=cwd), timeout=timeout)


def run_in_private_tmp(code: str, tmp_path: Path, **env_vars: str) -> Path:
    """Run ``code`` in a fresh interpreter (offline, empty HF home) whose
    temporary folder is ``tmp_path / "tmp"`` (returned: what it left there can be
    checked), with the tests folder importable and ``env_vars`` set."""
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = clean_env(tmp_path / "hf-home")
    tests = str(Path(__file__).parent)
    env.update(
        TMPDIR=str(private_tmp),
        PYTHONPATH=os.pathsep.join([tests, env.get("PYTHONPATH", "")]),
        **env_vars,
    )
    done = subprocess.run(
        child_command(code), env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return private_tmp


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@contextlib.contextmanager
def versions_installed(monkeypatch, **versions: str):
    """Inside the block, skbert believes these package versions are installed
    (as in a pickle written elsewhere: ``torch="1.0.0"``)."""
    import skbert._core.versions

    installed = skbert._core.versions.installed_versions()
    with monkeypatch.context() as patch:
        patch.setattr(
            skbert._core.versions,
            "installed_versions",
            lambda: {**installed, **versions},
        )
        yield


def use_few_sentences(monkeypatch, stop: int, start: int) -> None:
    """Make ``skbert.datasets.load_sentiment_sentences`` return the Yelp
    sentences ``[0, stop)`` and ``[start, 1000)``: both classes, few texts."""
    from skbert import datasets

    texts, labels = datasets.load_sentiment_sentences("yelp")
    keep = np.r_[0:stop, start:1000]
    monkeypatch.setattr(
        datasets,
        "load_sentiment_sentences",
        lambda source: ([texts[i] for i in keep], labels[keep]),
    )
