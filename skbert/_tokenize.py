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
"""

from __future__ import annotations

from typing import Any

__all__ = ["TextTokenizer"]

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

    def content_ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text without special tokens, never truncated."""
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
        :mod:`skbert._long_texts`)."""
        from ._long_texts import model_inputs

        if long_texts not in ("truncate", "head_tail"):
            raise ValueError(f"one input per text: long_texts={long_texts!r}")
        inputs = model_inputs(
            self.content_ids(texts),
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
