"""Bad values get clear errors: the exception type, and a message that names the
culprit and says what to do.

Covers every invalid parameter value (generated from
``BertCLSVectorizer._parameter_constraints``), every wrong element type at any
position, use before ``fit``, folders that are not (complete) models, and a
pickled pipeline whose model folder was replaced by a model of another width.
"""

from __future__ import annotations

import json
import pickle
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import run_python, vectorizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import (
    InvalidParameterError,
    generate_invalid_param_val,
    make_constraint,
)

import skbert
from skbert import BertCLSVectorizer

TEXTS = ["a great film", "dull and long", "the best story", "bad"]
LABELS = [1, 0, 1, 0]

#: Values of every kind; each parameter is tried with those it must refuse.
CANDIDATE_VALUES = [
    None,
    True,
    0,
    1,
    -1,
    1.5,
    float("nan"),
    "nonsense",
    b"bytes",
    object(),
    {"a": 1},
    ["a"],
    np.float64(2.0),
]


def invalid_values(name: str) -> list[object]:
    """Values no constraint of ``name`` accepts: generated ones plus candidates."""
    constraints = [
        make_constraint(c) for c in BertCLSVectorizer._parameter_constraints[name]
    ]
    values = []
    for constraint in constraints:
        try:
            values.append(generate_invalid_param_val(constraint))
        except NotImplementedError:
            pass
    values += CANDIDATE_VALUES
    unique = {f"{type(value).__name__}:{value!r}": value for value in values}
    return [
        value
        for value in unique.values()
        if not any(c.is_satisfied_by(value) for c in constraints)
    ]


INVALID_PARAMETERS = [
    pytest.param(name, value, id=f"{name}={type(value).__name__}:{value!r:.20}")
    for name in BertCLSVectorizer._parameter_constraints
    for value in invalid_values(name)
]


def test_every_parameter_has_invalid_values_to_try():
    tried = {param.values[0] for param in INVALID_PARAMETERS}
    assert tried == set(BertCLSVectorizer._parameter_constraints)
    assert tried == set(BertCLSVectorizer().get_params())


@pytest.mark.parametrize(("name", "value"), INVALID_PARAMETERS)
def test_invalid_parameter_value_is_refused_at_fit_naming_it(
    tiny_model_dir, name, value
):
    estimator = vectorizer(tiny_model_dir).set_params(**{name: value})

    with pytest.raises(InvalidParameterError) as raised:
        estimator.fit(TEXTS)

    message = str(raised.value)
    assert f"The '{name}' parameter of BertCLSVectorizer must be" in message
    assert "Got" in message


AFTER_FIT_CHILD = """
import json, signal, sys
sys.path.insert(0, CONFIG["tests"])
from sklearn.utils._param_validation import InvalidParameterError
from helpers import run_python, vectorizer
from test_reliability_errors import INVALID_PARAMETERS, TEXTS

def give_up(signum, frame):
    raise TimeoutError("still running after 2 s (a loop that never ends?)")

signal.signal(signal.SIGALRM, give_up)
fitted = vectorizer(CONFIG["model"]).fit(TEXTS)
valid = fitted.get_params()
unclear = []
for param in INVALID_PARAMETERS:
    name, value = param.values
    fitted.set_params(**{name: value})
    signal.alarm(2)
    try:
        fitted.transform(TEXTS)
    except InvalidParameterError as exc:
        if f"'{name}' parameter" not in str(exc):
            unclear.append(f"{param.id}: {exc}")
    except BaseException as exc:  # which exception, and its message, is the point
        unclear.append(f"{param.id}: {type(exc).__name__}: {str(exc)[:100]}")
    else:
        unclear.append(f"{param.id}: accepted")
    finally:
        signal.alarm(0)
    fitted.set_params(**valid)
print(json.dumps(unclear))
"""


@pytest.mark.slow
def test_invalid_parameter_set_after_fit_is_refused_at_transform(
    tiny_model_dir, tmp_path
):
    # transform reads pooling, layers, batch_size, device, dtype, cache, ...
    # at call time, so a value set with set_params after fit must be refused
    # as clearly as at fit. In a child process: batch_size=0 once looped
    # forever, allocating until the machine ran out of memory.
    config = {"tests": str(Path(__file__).parent), "model": str(tiny_model_dir)}
    output = run_python(f"CONFIG = {config!r}\n" + AFTER_FIT_CHILD, cwd=tmp_path)
    unclear = json.loads(output.strip().splitlines()[-1])

    assert not unclear, "\n".join(
        ["invalid parameters not refused with InvalidParameterError:", *unclear]
    )


# -- wrong input types ------------------------------------------------------

BAD_ELEMENTS = [
    (None, "None"),
    (float("nan"), "NaN"),
    (3, "(int)"),
    (2.5, "(float)"),
    (b"bytes", "(bytes)"),
    (bytearray(b"x"), "(bytearray)"),
    (["nested"], "(list)"),
    ({"text": "a"}, "(dict)"),
    (np.float64(1.0), "(float64)"),
    (np.int64(7), "(int64)"),
    (Decimal("1.5"), "(Decimal)"),
    (pd.NA, "(NAType)"),
    (object(), "(object)"),
]


def object_array(items: list[object]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    for position, item in enumerate(items):
        array[position] = item
    return array


CONTAINERS = {
    "list": list,
    "tuple": tuple,
    "ndarray": object_array,
    "series": lambda items: pd.Series(items, dtype=object),
    "generator": lambda items: (item for item in items),
}


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    good=st.lists(st.text(max_size=5), max_size=12),
    bad=st.lists(st.sampled_from(range(len(BAD_ELEMENTS))), min_size=1, max_size=3),
    data=st.data(),
    container=st.sampled_from(sorted(CONTAINERS)),
    method=st.sampled_from(["fit", "transform", "fit_transform"]),
)
def test_wrong_element_type_names_the_first_offender(
    fitted_tiny, good, bad, data, container, method
):
    items: list[object] = list(good)
    for index in bad:
        position = data.draw(st.integers(0, len(items)), label="position")
        items.insert(position, BAD_ELEMENTS[index][0])
    first = next(i for i, item in enumerate(items) if not isinstance(item, str))
    expected_type = next(
        label for value, label in BAD_ELEMENTS if value is items[first]
    )

    with pytest.raises(TypeError) as raised:
        getattr(fitted_tiny, method)(CONTAINERS[container](items))

    message = str(raised.value)
    assert f"Every text must be a str; element at position {first} is" in message
    assert expected_type in message


@pytest.fixture(scope="module")
def fitted_tiny(tiny_model_dir) -> BertCLSVectorizer:
    return vectorizer(tiny_model_dir).fit(["probe"])


# -- use before fit ---------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda est: est.transform(TEXTS),
        lambda est: est.get_feature_names_out(),
        lambda est: Pipeline([("bert", est)]).transform(TEXTS),
        lambda est: pickle.loads(pickle.dumps(est)).transform(TEXTS),
    ],
    ids=["transform", "feature-names", "in-pipeline", "unfitted-pickle"],
)
def test_use_before_fit_raises_not_fitted_saying_call_fit(tiny_model_dir, call):
    with pytest.raises(NotFittedError) as raised:
        call(vectorizer(tiny_model_dir))

    message = str(raised.value)
    if message == "Pipeline is not fitted yet.":  # scikit-learn < 1.8's wording
        return
    assert "instance is not fitted yet" in message
    assert "Call 'fit'" in message


# -- folders that are not (complete) models ---------------------------------


def _write(name: str, data: bytes | str):
    def change(folder: Path) -> None:
        path = folder / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())

    return change


def _remove(*names: str):
    def change(folder: Path) -> None:
        for name in names:
            (folder / name).unlink()

    return change


def _truncate(name: str, keep: int):
    def change(folder: Path) -> None:
        path = folder / name
        path.write_bytes(path.read_bytes()[:keep])

    return change


def _shrink_vocabulary_in_config(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 100  # the weights have 401 rows
    (folder / "config.json").write_text(json.dumps(config))


def _replace_with_smaller_vocabulary(folder: Path) -> None:
    """Consistent config and weights for 100 tokens; the tokenizer keeps 401."""
    replace_with_bert(folder, vocab_size=100)


NOT_A_MODEL = {
    # case: (change to a copy of the tiny model, exception, what the message says)
    "config-not-json": (
        _write("config.json", "not json {"),
        ValueError,
        ["config.json", "JSONDecodeError", "save_pretrained"],
    ),
    "config-without-model-type": (
        _write("config.json", "{}"),
        ValueError,
        ["config.json", "model_type", "save_pretrained"],
    ),
    "config-a-list": (
        _write("config.json", "[1, 2]"),
        ValueError,
        ["config.json", "model_type", "download the checkpoint again"],
    ),
    "no-weights": (
        _remove("model.safetensors"),
        FileNotFoundError,
        ["no weights", "model.safetensors", "save_pretrained"],
    ),
    "weights-not-safetensors": (
        _write("model.safetensors", b"garbage" * 100),
        ValueError,
        ["weights", "SafetensorError", "download the checkpoint again"],
    ),
    "weights-empty": (
        _write("model.safetensors", b""),
        ValueError,
        ["weights", "SafetensorError", "download the checkpoint again"],
    ),
    "weights-truncated": (
        _truncate("model.safetensors", 5000),
        ValueError,
        ["weights", "SafetensorError", "download the checkpoint again"],
    ),
    "no-tokenizer-files": (
        _remove("tokenizer.json", "tokenizer_config.json", "vocab.txt"),
        FileNotFoundError,
        ["no tokenizer files", "[UNK]", "tokenizer.save_pretrained"],
    ),
    "tokenizer-not-json": (
        lambda folder: [
            _write("tokenizer.json", "{oops")(folder),
            _remove("vocab.txt")(folder),
        ],
        ValueError,
        ["tokenizer", "JSONDecodeError", "download the checkpoint again"],
    ),
    "config-of-another-model": (
        _shrink_vocabulary_in_config,
        ValueError,
        ["wrong shape", "word_embeddings", "never fills missing weights"],
    ),
    "tokenizer-of-another-model": (
        _replace_with_smaller_vocabulary,
        ValueError,
        ["401 tokens", "only 100", "do not belong to these weights"],
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_A_MODEL))
def test_folder_that_is_not_a_complete_model_is_refused_clearly(tiny_model_copy, case):
    change, error, phrases = NOT_A_MODEL[case]
    change(tiny_model_copy)
    skbert.clear_model_cache()

    with pytest.raises(error) as raised:
        vectorizer(tiny_model_copy).fit(TEXTS)

    message = str(raised.value)
    assert str(tiny_model_copy) in message
    for phrase in phrases:
        assert phrase in message


def test_a_file_instead_of_the_folder_names_the_folder(tiny_model_dir):
    with pytest.raises(ValueError) as raised:
        vectorizer(tiny_model_dir / "model.safetensors").fit(TEXTS)

    message = str(raised.value)
    assert "is a file, not a model folder" in message
    assert repr(str(tiny_model_dir)) in message


# -- a pickled pipeline whose model changed width ---------------------------


def replace_with_bert(folder: Path, **changes: int) -> None:
    """Overwrite the weights in ``folder`` with a random BERT, config ``changes``."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(folder)
    for name, value in changes.items():
        setattr(config, name, value)
    torch.manual_seed(3)
    BertModel(config).save_pretrained(folder)


def test_pickled_pipeline_refuses_a_replaced_model_of_another_width(make_tiny_bert):
    folder = make_tiny_bert("model-a")
    by_reference = Pipeline(
        [
            ("bert", vectorizer(folder, persist="reference")),
            ("clf", LogisticRegression()),
        ]
    ).fit(TEXTS, LABELS)
    by_weights = Pipeline(
        [("bert", vectorizer(folder)), ("clf", LogisticRegression())]
    ).fit(TEXTS, LABELS)
    expected = by_reference.named_steps["bert"].fingerprint_
    predictions = by_weights.predict_proba(TEXTS)
    blobs = pickle.dumps(by_reference), pickle.dumps(by_weights)

    replace_with_bert(folder, hidden_size=48, intermediate_size=96)
    wider = vectorizer(folder).fit(["probe"])
    assert wider.hidden_size_ == 48
    skbert.clear_model_cache()  # as in a fresh process: nothing loaded yet
    restored_reference, restored_weights = map(pickle.loads, blobs)

    with pytest.raises(skbert.FingerprintMismatchError) as raised:
        restored_reference.predict(TEXTS)
    message = str(raised.value)
    assert f"the weights of {str(folder)!r} changed since fit" in message
    assert f"Expected fingerprint {expected}" in message
    assert f"found {wider.fingerprint_}" in message
    assert "Refit the vectorizer" in message and "restore the original" in message

    # The default persist="weights" carries its model: the swap cannot touch it.
    np.testing.assert_allclose(
        restored_weights.predict_proba(TEXTS), predictions, atol=1e-6, rtol=0
    )

    # Refitting only the vectorizer hands 48 columns to a classifier that
    # learned 32: scikit-learn's own check names both numbers.
    restored_reference.named_steps["bert"].fit(["probe"])
    with pytest.raises(ValueError, match="X has 48 features, but LogisticRegression"):
        restored_reference.predict(TEXTS)
