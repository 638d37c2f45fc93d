"""Pickles written by skbert 0.1.0 (before model identities) still load.

The oracle is transformers' own model run on the checkpoint files that the
old pickle carries, read out of the pickle without skbert's classes.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY_MAX_LENGTH, BertOracle

import skbert
from skbert._handle import UNKNOWN_RECIPE

LEGACY = Path(__file__).parent / "data" / "legacy-0.1.0.pkl"
TEXTS = ["a great film", "dull and far too long", "", "the story " * 40]


class _State:
    """Stands in for any skbert class: keeps the state it is given."""

    def __setstate__(self, state):
        self.state = state


class _RawUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.startswith("skbert"):
            return _State
        return super().find_class(module, name)


@pytest.fixture(scope="module")
def legacy_oracle(tmp_path_factory) -> BertOracle:
    with open(LEGACY, "rb") as handle:
        raw = _RawUnpickler(handle).load()
    bundle = raw.state["model_"].state["_bundle"]
    folder = tmp_path_factory.mktemp("legacy-files")
    for name, data in bundle.items():
        (folder / name).write_bytes(data)
    return BertOracle(folder, TINY_MAX_LENGTH)


def load_legacy():
    with warnings.catch_warnings():
        # written with another scikit-learn, perhaps: not what this tests
        warnings.simplefilter("ignore", UserWarning)
        return pickle.loads(LEGACY.read_bytes())


def test_a_legacy_pickle_gives_the_vectors_of_the_model_it_carries(legacy_oracle):
    skbert.clear_model_cache()
    restored = load_legacy()

    with pytest.warns(skbert.TruncationWarning):
        vectors = restored.transform(TEXTS)

    np.testing.assert_allclose(
        vectors, legacy_oracle.vectors(TEXTS, "mean"), atol=1e-5, rtol=0
    )
    assert restored.get_params()["pooling"] == "mean"


@pytest.mark.parametrize("used", [False, True])
def test_a_legacy_pickle_is_written_again_in_the_current_format(legacy_oracle, used):
    skbert.clear_model_cache()
    restored = load_legacy()
    expected = legacy_oracle.vectors(TEXTS[:3], "mean")
    if used:  # its model was loaded: the identity is complete now
        restored.transform(TEXTS[:3])

    blob = pickle.dumps(restored)
    skbert.clear_model_cache()
    again = pickle.loads(blob)

    state = again.__getstate__()
    assert "_skbert_versions" in state and "_skbert_state_digest" in state
    recipe_known = state["model_"].identity.recipe != UNKNOWN_RECIPE
    assert recipe_known == used
    np.testing.assert_allclose(again.transform(TEXTS[:3]), expected, atol=1e-5)


def test_a_legacy_pickle_with_damaged_weights_is_refused():
    blob = bytearray(LEGACY.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # inside the weights
    skbert.clear_model_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            restored = pickle.loads(bytes(blob))
        except (pickle.UnpicklingError, ValueError, EOFError):
            return
    with pytest.raises(ValueError, match="corrupted"):
        restored.transform(TEXTS)
