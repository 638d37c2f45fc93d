"""Pickles written by skbert 0.1.0 (before model identities) and 0.2.0 (before
the modules moved into layer packages) still load; new ones name only public
types.

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
from skbert._model.legacy import UNKNOWN_RECIPE

LEGACY = Path(__file__).parent / "data" / "legacy-0.1.0.pkl"
#: Written by 0.2.0, whose classes lived in ``skbert._vectorizer`` and
#: ``skbert._handle`` (tests/data/README.md).
V020 = Path(__file__).parent / "data" / "pickle-0.2.0.pkl"
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


def _oracle(pickled: Path, folder: Path) -> BertOracle:
    """transformers on the checkpoint files that ``pickled`` carries."""
    with open(pickled, "rb") as handle:
        raw = _RawUnpickler(handle).load()
    for name, data in raw.state["model_"].state["_bundle"].items():
        (folder / name).write_bytes(data)
    return BertOracle(folder, TINY_MAX_LENGTH)


@pytest.fixture(scope="module")
def legacy_oracle(tmp_path_factory) -> BertOracle:
    return _oracle(LEGACY, tmp_path_factory.mktemp("legacy-files"))


class _NamingUnpickler(pickle.Unpickler):
    """Records every skbert name a pickle asks for."""

    def __init__(self, file):
        super().__init__(file)
        self.named: set[str] = set()

    def find_class(self, module, name):
        if module.split(".")[0] == "skbert":
            self.named.add(f"{module}.{name}")
        return super().find_class(module, name)


def names_in(blob: bytes) -> set[str]:
    import io

    unpickler = _NamingUnpickler(io.BytesIO(blob))
    unpickler.load()
    return unpickler.named


#: The public names a pickle of a fitted vectorizer holds (docs/persistence.md).
PUBLIC_TYPES = {"skbert.BertCLSVectorizer", "skbert.ModelHandle", "skbert.ModelSource"}


def test_a_0_2_pickle_loads_from_the_old_module_paths(tmp_path):
    """0.2.0 wrote ``skbert._vectorizer.BertCLSVectorizer`` and
    ``skbert._handle.ModelHandle``; those paths still load, and the vectors are
    those of the model the pickle carries."""
    oracle = _oracle(V020, tmp_path)
    assert names_in(V020.read_bytes()) == {
        "skbert._vectorizer.BertCLSVectorizer",
        "skbert._handle.ModelHandle",
        "skbert._handle.ModelSource",
    }
    skbert.clear_model_cache()
    restored = pickle.loads(V020.read_bytes())
    with pytest.warns(skbert.TruncationWarning):
        vectors = restored.transform(TEXTS)
    np.testing.assert_allclose(vectors, oracle.vectors(TEXTS, "mean"), atol=1e-5)
    assert names_in(pickle.dumps(restored)) == PUBLIC_TYPES


@pytest.mark.parametrize("persist", ["weights", "reference"])
def test_a_pickle_names_only_public_skbert_types(tiny_model_dir, persist):
    """What a pickle (and a skops file) names is public and documented, so a
    move of private modules never breaks a stored model again."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    fitted = make_pipeline(
        skbert.BertCLSVectorizer(
            model_name_or_path=str(tiny_model_dir), persist=persist
        ),
        LogisticRegression(),
    ).fit(["a great film", "dull", "the best", "bad"], [1, 0, 1, 0])
    blob = pickle.dumps(fitted)
    assert names_in(blob) == PUBLIC_TYPES
    for name in PUBLIC_TYPES:
        assert name.removeprefix("skbert.") in skbert.__all__


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
