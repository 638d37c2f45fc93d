"""Texts -> token ids: the only place that calls a checkpoint's tokenizer.

A fast tokenizer keeps its truncation and padding settings in the Rust
backend, which every thread (and every clone of the estimator) shares; a call
with other settings rewrites them, so two threads calling with different
settings can each receive ids made with the other's. :class:`TextTokenizer`
removes that race by construction: it always calls the tokenizer with the same
settings (no special tokens, no truncation, no padding), so the shared state
never changes after the first call. Special tokens are added and texts are
cut here, in Python, the way the checkpoint's own template does it: the
prefix and suffix (``[CLS]`` ... ``[SEP]``, ``<s>`` ... ``</s>``, ...) are
read off the tokenizer once and checked on probe texts.

A text far longer than what its strategy keeps is never tokenized whole: the
tokens of the first (and, for ``"head_tail"``, the last) part are read from a
bounded piece of it, cut at a lone space between two words (every family's
pre-tokenizer splits there, so the tokens of the piece are the text's own, as
the tests check against the whole text for each family); ``"chunk"`` reads
the whole text in such pieces. A text without a lone space is read whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .long_texts import model_inputs

__all__ = ["TextTokenizer"]

#: A space with a non-space on each side: where a text is cut into pieces.
_LONE_SPACE = re.compile(r"(?<=\S) (?=\S)")
#: Characters a text needs per kept token before it is read in pieces, and the
#: smallest piece (a few thousand characters cost the tokenizer nothing).
_CHARS_PER_TOKEN = 16
_SMALLEST_PIECE = 8192
#: Characters per piece when a whole long text is read (``"chunk"``).
_PIECE_CHARS = 1 << 20

#: Texts on which the prefix/suffix reading is checked against the tokenizer.
_PROBES = ("probe", "A longer probe, with punctuation!", "")
#: transformers' one-time warning about texts longer than the model's limit:
#: skbert reports truncation itself.
_LONG_INPUT_WARNING = "sequence-length-is-longer-than-the-specified-maximum"


class TextTokenizer:
    """A checkpoint's tokenizer behind one fixed way of calling it.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        Owned by this object from now on: nothing else may call it.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        warned = getattr(tokenizer, "deprecation_warnings", None)
        if isinstance(warned, dict):
            warned[_LONG_INPUT_WARNING] = True
        self.pad_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        )
        self.with_token_types = "token_type_ids" in getattr(
            tokenizer, "model_input_names", ()
        )
        self.prefix, self.suffix = self._read_template()

    def __len__(self) -> int:
        return len(self._tokenizer)

    @property
    def n_special(self) -> int:
        """Special tokens added around every text."""
        return len(self.prefix) + len(self.suffix)

    def content_ids(
        self, texts: list[str], keep: tuple[int, int] | None = None
    ) -> list[list[int]]:
        """Token ids of each text without special tokens.

        ``keep=(head, tail)``: only a text's first ``head`` and last ``tail``
        tokens are used. A text with more gets its first ``head`` tokens
        followed by its last ``tail`` ones, read from bounded pieces of it
        (its length then says only that it has more than ``head``). Without
        ``keep``, every token, a long text read in pieces.
        """
        limit = self._long_from(keep)
        short = [i for i, text in enumerate(texts) if len(text) <= limit]
        out: list[list[int]] = [[] for _ in texts]
        read = self._all_ids([texts[i] for i in short])
        for index, ids in zip(short, read, strict=True):
            out[index] = ids
        for index, text in enumerate(texts):
            if len(text) > limit:
                out[index] = (
                    self._whole(text) if keep is None else self._ends(text, *keep)
                )
        return out

    @staticmethod
    def _long_from(keep: tuple[int, int] | None) -> int:
        """The length from which a text is read in pieces."""
        if keep is None:
            return 2 * _PIECE_CHARS
        return max(_SMALLEST_PIECE, _CHARS_PER_TOKEN * (keep[0] + keep[1]))

    def _ends(self, text: str, head: int, tail: int) -> list[int]:
        """The first ``head`` and last ``tail`` tokens of ``text`` (all of its
        tokens if it has no more than ``head``)."""
        size = max(_SMALLEST_PIECE, _CHARS_PER_TOKEN * head)
        while size < len(text):
            cut = _lone_space(text, size // 2, size, last=True)
            if cut is not None:
                front = self._all_ids([text[:cut]])[0]
                if len(front) > head:
                    return front[:head] + self._last(text, tail, cut)
            size *= 4
        return self._all_ids([text])[0]

    def _last(self, text: str, tail: int, after: int) -> list[int]:
        """The last ``tail`` tokens of ``text``, read from a piece that starts
        at a lone space after ``after`` (or the whole text)."""
        if not tail:
            return []
        size = max(_SMALLEST_PIECE, _CHARS_PER_TOKEN * tail)
        while len(text) - size > after:
            start = len(text) - size
            cut = _lone_space(text, start, start + size // 2, last=False)
            if cut is not None:
                back = self._all_ids([text[cut:]])[0]
                if len(back) >= tail:
                    return back[-tail:]
            size *= 4
        return self._all_ids([text])[0][-tail:]

    def _whole(self, text: str) -> list[int]:
        """Every token of ``text``, read piece by piece."""
        ids: list[int] = []
        for piece in _pieces(text, _PIECE_CHARS):
            ids.extend(self._all_ids([piece])[0])
        return ids

    def _all_ids(self, texts: list[str]) -> list[list[int]]:
        """Every token id of each text (no special tokens), in one call."""
        if not texts:
            return []
        encoded = self._tokenizer(
            texts,
            add_special_tokens=False,
            truncation=False,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [list(ids) for ids in encoded["input_ids"]]

    def kept(self, max_length: int, long_texts: str) -> tuple[int, int] | None:
        """What :meth:`content_ids` needs of each text for ``long_texts``: one
        token more than fits at the head (to know a text is cut), as many as
        fit at the tail for ``"head_tail"``, and every token for ``"chunk"``."""
        budget = max(max_length - self.n_special, 0)
        if long_texts == "truncate":
            return budget + 1, 0
        if long_texts == "head_tail":
            return budget + 1, budget
        return None

    def wrap(self, content: list[int]) -> list[int]:
        """``content`` with the checkpoint's special tokens around it."""
        return [*self.prefix, *content, *self.suffix]

    def encode(
        self,
        texts: list[str],
        max_length: int,
        *,
        long_texts: str = "truncate",
        head_tokens: int | None = None,
    ) -> tuple[list[list[int]], list[bool]]:
        """One model input of at most ``max_length`` tokens per text, and which
        were cut (``long_texts``: "truncate" or "head_tail", see
        :mod:`skbert._core.long_texts`)."""
        if long_texts not in ("truncate", "head_tail"):
            raise ValueError(f"one input per text: long_texts={long_texts!r}")
        inputs = model_inputs(
            self.content_ids(texts, self.kept(max_length, long_texts)),
            self.prefix,
            self.suffix,
            max_length=max_length,
            strategy=long_texts,
            head_tokens=head_tokens,
            stride=0,
        )
        return inputs.rows, inputs.cut

    def prompt_length(self, prompt: str, lowercase: bool = False) -> int:
        """Tokens a text starting with ``prompt`` begins with before its own:
        the leading special tokens and the prompt's tokens."""
        if not prompt:
            return 0
        text = prompt.lower() if lowercase else prompt
        return len(self.prefix) + len(self.content_ids([text])[0])

    def save_pretrained(self, folder: str) -> None:
        self._tokenizer.save_pretrained(folder)

    @property
    def backend(self) -> Any:
        """The transformers tokenizer, for fingerprinting only."""
        return self._tokenizer

    def _full_ids(self, text: str) -> list[int]:
        """``text`` as the tokenizer itself frames it (special tokens added)."""
        encoded = self._tokenizer(
            [text],
            truncation=False,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return list(encoded["input_ids"][0])

    def _read_template(self) -> tuple[list[int], list[int]]:
        """The special tokens before and after a text, checked on probes."""
        content = self.content_ids([_PROBES[0]])[0]
        full = self._full_ids(_PROBES[0])
        starts = [
            i
            for i in range(len(full) - len(content) + 1)
            if full[i : i + len(content)] == content
        ]
        if not content or not starts:
            raise ValueError(self._template_error(_PROBES[0], full, content))
        prefix, suffix = full[: starts[0]], full[starts[0] + len(content) :]
        for text in _PROBES[1:]:
            content = self.content_ids([text])[0]
            full = self._full_ids(text)
            if full != [*prefix, *content, *suffix]:
                raise ValueError(self._template_error(text, full, content))
        return prefix, suffix

    @staticmethod
    def _template_error(text: str, full: list[int], content: list[int]) -> str:
        return (
            "skbert could not read this tokenizer's special-token template (for "
            f"{text!r} it gives {full[:12]}, which does not frame the text's tokens "
            f"{content[:8]}), so it cannot cut long texts the way the model expects."
        )


def _lone_space(text: str, start: int, stop: int, *, last: bool) -> int | None:
    """The index of the last (or first) lone space in ``text[start:stop]``."""
    window = text[max(start - 1, 0) : stop + 1]
    offset = max(start - 1, 0)
    found = None
    for match in _LONE_SPACE.finditer(window):
        found = offset + match.start()
        if not last:
            break
    return found


def _pieces(text: str, size: int) -> Iterator[str]:
    """``text`` in pieces of about ``size`` characters, cut at lone spaces
    (the space starts the next piece)."""
    start = 0
    while len(text) - start > 2 * size:
        cut = _lone_space(text, start + size, start + 2 * size, last=False)
        if cut is None:
            break
        yield text[start:cut]
        start = cut
    yield text[start:]
