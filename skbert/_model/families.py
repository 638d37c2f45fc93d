"""What skbert knows about each model family: which are sentence encoders, which
pre-training trained the pooler, and how positions are offset.

A pooler is *trained* only when some objective used it: BERT's next-sentence
prediction, ALBERT's sentence-order prediction, or a fine-tuning with a
sequence-classification head on top of it. The RoBERTa lineage (RoBERTa,
XLM-RoBERTa, CamemBERT) and MPNet were pre-trained without a sentence-level
objective; their checkpoints usually carry pooler weights that conversion
scripts saved and no objective ever touched, so their pooler gives
deterministic but meaningless vectors.

Everything here is derived from the configuration and the loaded model, never
from a checkpoint's name.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BERT_LAYOUT_FAMILIES",
    "ONNX_FAMILIES",
    "ONNX_MIN_TRANSFORMERS",
    "onnx_refusal",
    "encoder_class_name",
    "model_kind",
    "pooler_status",
    "pooler_reason",
    "position_offset",
]

#: Families whose encoders are exported in the BERT layout (embeddings, a
#: stack of ``encoder.layer``, an optional pooler), written layer by layer in
#: the pattern ONNX Runtime fuses into one ``Attention`` node per layer.
BERT_LAYOUT_FAMILIES = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
#: Families whose encoders ``backend="onnx"`` and ``export_onnx`` export: the
#: BERT layout, and those exported through their own forward (each graph is
#: checked against torch before it is used).
ONNX_FAMILIES = (
    *BERT_LAYOUT_FAMILIES,
    "distilbert",
    "albert",
    "mpnet",
    "deberta-v2",
    "modernbert",
    "t5",
)
#: Families whose export needs a newer transformers than skbert does: older
#: releases build their attention mask (``masking_utils``) in a way the ONNX
#: exporter cannot trace. The version is the oldest these exports were tested
#: with (5.4.0 fails).
ONNX_MIN_TRANSFORMERS = {
    "distilbert": "5.25",
    "albert": "5.25",
    "modernbert": "5.25",
    "t5": "5.25",
}
#: Families whose pre-training trains the pooler, and the objective that does.
POOLER_OBJECTIVES = {
    "bert": "next-sentence prediction",
    "albert": "sentence-order prediction",
}


def model_kind(config: Any) -> str:
    """``"encoder"``, ``"encoder-decoder"`` or ``"decoder"`` (decoder-only)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    model_type = config.model_type
    if (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    ) or getattr(config, "is_decoder", False):
        return "decoder"
    return "encoder"


def encoder_class_name(config: Any) -> str | None:
    """The encoder-only class of an encoder-decoder family (``T5EncoderModel``)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES,
    )

    return MODEL_FOR_TEXT_ENCODING_MAPPING_NAMES.get(config.model_type)


def pooler_status(model: Any, missing: tuple[str, ...]) -> str:
    """``"trained"``, ``"untrained"``, ``"missing"`` or ``"absent"`` (no pooler)."""
    if missing:
        return "missing"
    if getattr(model, "pooler", None) is None:
        return "absent"
    if model.config.model_type in POOLER_OBJECTIVES:
        return "trained"
    return "untrained"  # unknown families too: opt in with trust_pooler=True


def pooler_reason(model_type: str, model_class: str, status: str) -> str:
    """Why the pooler of this family has the status it has, for messages."""
    masked_lm = model_class.replace("Model", "ForMaskedLM")
    if status == "trained":
        objective = POOLER_OBJECTIVES.get(model_type, "fine-tuning through it")
        return f"{model_type} pre-training trains it with {objective}"
    if status == "missing":
        return (
            f"the checkpoint has no pooler weights, typical of one saved by "
            f"{masked_lm} (masked-LM pre-training only); transformers' "
            f"{model_class} would fill them with RANDOM values, giving a "
            "different vector after every load"
        )
    if status == "untrained":
        return (
            f"{model_type} checkpoints are pre-trained without a sentence-level "
            "objective (no next-sentence prediction), so the pooler weights this "
            f"checkpoint carries were never trained: {model_class}'s pooler gives "
            "deterministic but meaningless vectors"
        )
    return f"{model_class} has no pooler layer"


def position_offset(model: Any) -> int:
    """Positions a family reserves before the first token (RoBERTa: 2).

    RoBERTa-style embeddings number positions from ``padding_idx + 1``, so a
    model with ``max_position_embeddings`` positions takes that many minus
    the offset tokens.
    """
    embeddings = getattr(model, "embeddings", None)
    positions = getattr(embeddings, "position_embeddings", None)
    padding_idx = getattr(positions, "padding_idx", None)
    if isinstance(padding_idx, int) and padding_idx >= 0:
        return padding_idx + 1
    return 0


def onnx_refusal(model_type: str, model_class: str) -> str | None:
    """Why ``backend="onnx"`` (and ``export_onnx``) cannot export this family
    here, or ``None`` when it can."""
    if model_type not in ONNX_FAMILIES:
        return (
            f"backend='onnx' exports the encoders of {', '.join(ONNX_FAMILIES)}; "
            f"{model_type} ({model_class}) is not one: no export of it has been "
            "checked against torch. Use backend='torch'."
        )
    needed = ONNX_MIN_TRANSFORMERS.get(model_type)
    if needed is None:
        return None
    from importlib.metadata import version

    from packaging.version import Version

    installed = version("transformers")
    if Version(installed) >= Version(needed):
        return None
    return (
        f"backend='onnx' exports {model_type} ({model_class}) with transformers "
        f"{needed} or newer: older releases build its attention mask in a way the "
        f"ONNX exporter cannot trace, and {installed} is installed. Upgrade "
        "transformers, or use backend='torch'."
    )
