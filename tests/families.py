"""Tiny random checkpoints of every encoder family skbert supports, and of two
that are not sentence encoders (GPT-2, T5), written with ``save_pretrained``.

Each family gets its own special tokens, template, padding id and input names
(token types or not), as its real checkpoints have them; the vocabulary is
the tiny WordPiece vocabulary of ``helpers.py`` with the family's special
tokens first, trained into a ``tokenizers`` tokenizer in memory. Weights are
random (seeded): the tests compare skbert with transformers' own model run on
each text alone, so the values do not matter, only that both use the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from helpers import save_checkpoint, tiny_vocabulary

HIDDEN = 32
LIMIT = 64  # tokens the tiny models accept, special tokens included

BERT_SPECIALS = {
    "pad": "[PAD]",
    "unk": "[UNK]",
    "cls": "[CLS]",
    "sep": "[SEP]",
    "mask": "[MASK]",
}
ROBERTA_SPECIALS = {
    "cls": "<s>",
    "pad": "<pad>",
    "sep": "</s>",
    "unk": "<unk>",
    "mask": "<mask>",
}
T5_SPECIALS = {"pad": "<pad>", "sep": "</s>", "unk": "<unk>"}


@dataclass(frozen=True)
class Family:
    """How a family's tiny checkpoint is made."""

    model_type: str
    specials: dict[str, str]
    #: the order of special tokens at the start of the vocabulary (their ids)
    special_order: tuple[str, ...]
    token_types: bool
    #: special tokens before and after a text
    template: tuple[tuple[str, ...], tuple[str, ...]]
    config: dict
    masked_lm: str | None  # the masked-LM class name, if the family has one
    position_offset: int = 0


ENCODERS: dict[str, Family] = {
    "bert": Family(
        "bert",
        BERT_SPECIALS,
        ("pad", "unk", "cls", "sep", "mask"),
        True,
        (("cls",), ("sep",)),
        {},
        "BertForMaskedLM",
    ),
    "roberta": Family(
        "roberta",
        ROBERTA_SPECIALS,
        ("cls", "pad", "sep", "unk", "mask"),
        False,
        (("cls",), ("sep",)),
        {"type_vocab_size": 1},
        "RobertaForMaskedLM",
        2,
    ),
    "xlm-roberta": Family(
        "xlm-roberta",
        ROBERTA_SPECIALS,
        ("cls", "pad", "sep", "unk", "mask"),
        False,
        (("cls",), ("sep",)),
        {"type_vocab_size": 1},
        "XLMRobertaForMaskedLM",
        2,
    ),
    "camembert": Family(
        "camembert",
        ROBERTA_SPECIALS,
        ("cls", "pad", "sep", "unk", "mask"),
        False,
        (("cls",), ("sep",)),
        {"type_vocab_size": 1},
        "CamembertForMaskedLM",
        2,
    ),
    "distilbert": Family(
        "distilbert",
        BERT_SPECIALS,
        ("pad", "unk", "cls", "sep", "mask"),
        False,
        (("cls",), ("sep",)),
        {"dim": HIDDEN, "n_layers": 2, "n_heads": 2, "hidden_dim": 37},
        "DistilBertForMaskedLM",
    ),
    "albert": Family(
        "albert",
        BERT_SPECIALS,
        ("pad", "unk", "cls", "sep", "mask"),
        True,
        (("cls",), ("sep",)),
        {"embedding_size": 16},
        "AlbertForMaskedLM",
    ),
    "electra": Family(
        "electra",
        BERT_SPECIALS,
        ("pad", "unk", "cls", "sep", "mask"),
        True,
        (("cls",), ("sep",)),
        {"embedding_size": 16},
        "ElectraForMaskedLM",
    ),
    "deberta-v2": Family(
        "deberta-v2",
        BERT_SPECIALS,
        ("pad", "unk", "cls", "sep", "mask"),
        True,
        (("cls",), ("sep",)),
        {
            "relative_attention": True,
            "position_buckets": 16,
            "max_relative_positions": LIMIT,
            "pos_att_type": ["p2c", "c2p"],
            "position_biased_input": False,
        },
        "DebertaV2ForMaskedLM",
    ),
    "mpnet": Family(
        "mpnet",
        ROBERTA_SPECIALS,
        ("cls", "pad", "sep", "unk", "mask"),
        False,
        (("cls",), ("sep",)),
        {},
        "MPNetForMaskedLM",
        2,
    ),
    "modernbert": Family(
        "modernbert",
        BERT_SPECIALS,
        ("pad", "unk", "cls", "sep", "mask"),
        False,
        (("cls",), ("sep",)),
        {
            "global_attn_every_n_layers": 2,
            "local_attention": 8,
            "attn_implementation": "eager",
        },
        "ModernBertForMaskedLM",
    ),
}
OTHERS: dict[str, Family] = {
    "t5": Family(
        "t5",
        T5_SPECIALS,
        ("pad", "sep", "unk"),
        False,
        ((), ("sep",)),
        {
            "d_model": HIDDEN,
            "d_kv": 16,
            "d_ff": 37,
            "num_layers": 2,
            "num_decoder_layers": 2,
            "num_heads": 2,
            "decoder_start_token_id": 0,
        },
        None,
    ),
    "gpt2": Family(
        "gpt2",
        {"unk": "<|endoftext|>", "sep": "<|endoftext|>"},
        ("unk",),
        False,
        ((), ()),
        {"n_embd": HIDDEN, "n_layer": 2, "n_head": 2, "n_positions": LIMIT},
        None,
    ),
}
FAMILIES = {**ENCODERS, **OTHERS}


def _tokenizer(family: Family, *, declare_limit: bool):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = [family.specials[name] for name in family.special_order]
    words = [w for w in tiny_vocabulary() if w not in BERT_SPECIALS.values()]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(specials + words))}
    backend = Tokenizer(models.WordPiece(vocab, unk_token=family.specials["unk"]))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    before, after = (
        [family.specials[name] for name in part] for part in family.template
    )
    if before or after:
        single = " ".join([*before, "$A", *after])
        backend.post_processor = processors.TemplateProcessing(
            single=single,
            pair=" ".join([*before, "$A", *after, "$B", *after]),
            special_tokens=[
                (token, vocab[token]) for token in dict.fromkeys(before + after)
            ],
        )
    names = {
        "pad": "pad_token",
        "unk": "unk_token",
        "cls": "cls_token",
        "sep": "sep_token",
        "mask": "mask_token",
    }
    kwargs = {names[k]: v for k, v in family.specials.items() if k in names}
    if family.model_type == "gpt2":
        kwargs = {
            "unk_token": family.specials["unk"],
            "eos_token": family.specials["sep"],
        }
    if family.model_type in ("roberta", "xlm-roberta", "camembert", "mpnet"):
        kwargs.update(bos_token="<s>", eos_token="</s>")
    if family.model_type == "t5":
        kwargs["eos_token"] = "</s>"
    input_names = ["input_ids", "attention_mask"]
    if family.token_types:
        input_names.insert(1, "token_type_ids")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_input_names=input_names,
        **({"model_max_length": LIMIT} if declare_limit else {}),
        **kwargs,
    )
    return tokenizer, vocab


def _config(family: Family, vocab: dict[str, int]):
    from transformers import AutoConfig

    entries = {
        "vocab_size": len(vocab),
        "hidden_size": HIDDEN,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "max_position_embeddings": LIMIT + family.position_offset,
    }
    pad = family.specials.get("pad")
    if pad is not None:
        entries["pad_token_id"] = vocab[pad]
    if family.model_type in ("roberta", "xlm-roberta", "camembert", "mpnet"):
        entries.update(bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"])
    if family.model_type == "modernbert":
        entries.update(
            cls_token_id=vocab["[CLS]"],
            sep_token_id=vocab["[SEP]"],
            bos_token_id=vocab["[CLS]"],
            eos_token_id=vocab["[SEP]"],
        )
    if family.model_type == "t5":
        entries = {
            "vocab_size": len(vocab),
            "pad_token_id": vocab["<pad>"],
            "eos_token_id": vocab["</s>"],
        }
    if family.model_type == "gpt2":
        end = vocab["<|endoftext|>"]
        entries = {"vocab_size": len(vocab), "bos_token_id": end, "eos_token_id": end}
    entries.update(family.config)
    return AutoConfig.for_model(family.model_type, **entries)


def build_family(
    name: str,
    folder: str | os.PathLike,
    *,
    masked_lm: bool = False,
    seed: int = 0,
    declare_limit: bool = True,
) -> Path:
    """Write a tiny random checkpoint of family ``name`` to ``folder``.

    ``masked_lm=True`` saves the family's masked-LM class (no pooler weights,
    a masked-LM head), as masked-LM pre-training leaves a checkpoint.
    ``declare_limit=False`` leaves ``model_max_length`` out of the tokenizer
    files, as many converted RoBERTa checkpoints do.
    """
    import torch
    import transformers

    family = FAMILIES[name]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer, vocab = _tokenizer(family, declare_limit=declare_limit)
    config = _config(family, vocab)
    torch.manual_seed(seed)
    if masked_lm:
        model = getattr(transformers, family.masked_lm)(config)
    elif name == "t5":
        model = transformers.T5ForConditionalGeneration(config)
    elif name == "gpt2":
        model = transformers.GPT2LMHeadModel(config)
    else:
        model = transformers.AutoModel.from_config(config)
    save_checkpoint(model, tokenizer, folder)
    return folder
