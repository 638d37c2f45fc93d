"""Handle states written by skbert 0.1.0, before model identities."""

from __future__ import annotations

from typing import Any

__all__ = ["UNKNOWN_RECIPE", "from_legacy"]

#: The recipe of a handle read from a skbert 0.1.0 pickle, until its model is
#: loaded (those pickles recorded no recipe).
UNKNOWN_RECIPE = "sha256:" + "0" * 64


def from_legacy(state: dict[str, Any]) -> dict[str, Any]:
    """A handle state written by skbert 0.1.0 (before identities), converted."""
    needed = {
        "source",
        "persist",
        "fingerprint",
        "tokenizer_fingerprint",
        "config_fingerprint",
        "has_pooler",
        "missing_pooler_keys",
        "hidden_size",
        "n_hidden_states",
        "model_max_length",
        "_bundle",
    }
    if not needed <= set(state):
        raise ValueError("Refusing this file: its model state is not one skbert wrote.")
    identity = {
        "weights": state["fingerprint"],
        "tokenizer": state["tokenizer_fingerprint"],
        "config": state["config_fingerprint"],
        "recipe": UNKNOWN_RECIPE,  # replaced by the loaded model's recipe
    }
    missing = tuple(state["missing_pooler_keys"] or ())
    info = {
        "model_type": "bert",
        "model_class": "BertModel",
        "hidden_size": state["hidden_size"],
        "n_hidden_states": state["n_hidden_states"],
        "model_max_length": state["model_max_length"],
        "pooler": (
            "missing" if missing else "trained" if state["has_pooler"] else "absent"
        ),
        "missing_pooler_keys": list(missing),
        "first_token_special": True,
        "sentence": None,
    }
    return {
        "source": state["source"],
        "identity": identity,
        "info": info,
        "persist": state["persist"],
        "_bundle": state["_bundle"],
        "_bundle_digest": state.get("_bundle_digest"),
    }
