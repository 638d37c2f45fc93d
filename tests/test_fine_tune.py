"""``fine_tune``: ``fit(X, y)`` adapts the encoder to the labels, when asked.

The task is built so that the tiny random BERT's frozen [CLS] vectors carry
nothing a linear classifier can use (one word among eight random ones says
the class): frozen vectors stay at chance, tuned ones must learn it. Tuning
settings here are for the tiny model (a high learning rate, several epochs);
the real checkpoint's are measured in ``benchmarks/evaluate_finetune.py``.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from counting import TUNE_LOG_ENV
from helpers import (
    TINY_MAX_LENGTH,
    WORDS,
    BertOracle,
    run_in_private_tmp,
    run_python,
    vectorizer,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline

import skbert
import skbert._tuning.loop

#: What makes the tiny model learn in a second.
FAST = {"tune_learning_rate": 3e-3, "tune_epochs": 8, "random_state": 0}
FAST_CONTRASTIVE = {
    "tune_learning_rate": 3e-3,
    "tune_epochs": 4,  # reaches 100% for each of the seeds 0-3
    "tune_pairs": 8,
    "random_state": 0,
}


def word_task(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Eight random words and one of "good" (class 1) or "bad" (class 0)."""
    rng = np.random.default_rng(seed)
    fill = [word for word in WORDS if word not in ("good", "bad")]
    texts, labels = [], []
    for _ in range(n):
        words = list(rng.choice(fill, size=8))
        label = int(rng.integers(2))
        words.insert(int(rng.integers(9)), "good" if label else "bad")
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.asarray(labels)


@pytest.fixture(scope="module")
def task():
    texts, labels = word_task(400)
    return train_test_split(texts, labels, test_size=0.5, random_state=0)


def accuracy(folder, task, **params) -> float:
    X_train, X_test, y_train, y_test = task
    pipe = make_pipeline(
        vectorizer(folder, pooling="cls", **params), LogisticRegression(max_iter=1000)
    )
    return pipe.fit(X_train, y_train).score(X_test, y_test)


@pytest.mark.parametrize(
    "objective, settings",
    [("classification", FAST), ("contrastive", FAST_CONTRASTIVE)],
)
def test_tuning_learns_what_frozen_vectors_cannot(
    tiny_model_dir, task, objective, settings
):
    frozen = accuracy(tiny_model_dir, task)
    tuned = accuracy(tiny_model_dir, task, fine_tune=objective, **settings)

    assert frozen < 0.65, f"the task is not hard for frozen vectors ({frozen})"
    assert tuned > 0.9, f"{objective} tuning reached only {tuned}"


def test_the_default_learns_nothing_from_y(tiny_model_dir, tiny_oracle, texts):
    labels = np.arange(len(texts)) % 2
    fitted = vectorizer(tiny_model_dir, pooling="mean").fit(texts, labels)

    np.testing.assert_allclose(
        fitted.transform(texts), tiny_oracle.vectors(texts, "mean"), atol=1e-5, rtol=0
    )
    assert not hasattr(fitted, "fine_tune_report_")


def test_the_tuned_encoder_is_the_one_transform_runs(tiny_model_dir, task, tmp_path):
    """Saved as a plain checkpoint, the tuned weights give transform's vectors
    through transformers' own BertModel (the oracle)."""
    X_train, X_test, y_train, _ = task
    tuned = vectorizer(
        tiny_model_dir, pooling="mean", fine_tune="classification", **FAST
    ).fit(X_train, y_train)
    folder = tmp_path / "tuned"
    with tuned.model_.checkpoint() as (files, _, _):
        shutil.copytree(files, folder)
    oracle = BertOracle(folder, TINY_MAX_LENGTH)

    np.testing.assert_allclose(
        tuned.transform(X_test), oracle.vectors(X_test, "mean"), atol=1e-5, rtol=0
    )
    base = vectorizer(tiny_model_dir, pooling="mean").fit(X_train)
    assert tuned.fingerprint_ != base.fingerprint_
    assert tuned.model_.identity.digest != base.model_.identity.digest
    assert not np.allclose(tuned.transform(X_test), base.transform(X_test), atol=1e-3)
    report = tuned.fine_tune_report_
    assert report["steps"] == 8 * 13 and len(report["losses"]) == 8
    assert report["losses"][-1] < report["losses"][0]


def test_each_fold_tunes_on_its_own_training_texts_only(tiny_model_dir, task):
    X_train, _, y_train, _ = task
    seen: list[list[str]] = []
    original = skbert._tuning.loop.tune

    def recording(base, spec, texts, *args, **kwargs):
        seen.append(list(texts))
        return original(base, spec, texts, *args, **kwargs)

    pipe = make_pipeline(
        vectorizer(tiny_model_dir, fine_tune="classification", tune_max_steps=2),
        LogisticRegression(),
    )
    from sklearn.model_selection import StratifiedKFold

    folds = list(StratifiedKFold(3).split(X_train, y_train))
    with mock.patch.object(skbert._tuning.loop, "tune", recording):
        cross_val_score(pipe, X_train, y_train, cv=folds)

    assert len(seen) == len(folds)
    for tuned_on, (train, test) in zip(seen, folds, strict=True):
        assert sorted(tuned_on) == sorted(X_train[i] for i in train)
        assert not set(tuned_on) & {X_train[i] for i in test}


def test_a_fold_tuned_once_is_reused_by_other_candidates(tiny_model_dir, task):
    X_train, _, y_train, _ = task
    calls = []
    original = skbert._tuning.loop.tune

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    params = {"fine_tune": "classification", "tune_max_steps": 3, "random_state": 4}
    with mock.patch.object(skbert._tuning.loop, "tune", counting):
        first = vectorizer(tiny_model_dir, **params).fit(X_train, y_train)
        # an inference-only parameter: the same tuned encoder
        again = vectorizer(tiny_model_dir, batch_size=5, **params).fit(X_train, y_train)
        assert len(calls) == 1 and again.fingerprint_ == first.fingerprint_
        # a tuning parameter, or other labels: tuned again
        vectorizer(tiny_model_dir, **{**params, "tune_max_steps": 4}).fit(
            X_train, y_train
        )
        vectorizer(tiny_model_dir, **params).fit(X_train, 1 - y_train)
    assert len(calls) == 3


SEARCH = """
import numpy as np
from counting import CountingTuner
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

texts = {texts!r}
labels = np.arange(len(texts)) % 2
bert = CountingTuner(model_name_or_path={folder!r}, device="cpu",
                     fine_tune="classification", tune_max_steps=2, random_state=0)
pipe = Pipeline([("bert", bert), ("clf", LogisticRegression(max_iter=200))])
grid = {{"clf__C": [0.1, 1.0], "bert__batch_size": [8, 16]}}
search = GridSearchCV(pipe, grid, cv=5, n_jobs=2).fit(texts, labels)
print("best", search.best_params_)
"""


@pytest.mark.slow
def test_a_parallel_search_tunes_once_per_fold_and_refit(tiny_model_dir, tmp_path):
    """4 candidates x 5 folds with 2 workers: 5 tuning runs + 1 for the refit,
    not 21; and the session's files are gone when the search's process exits."""
    log = tmp_path / "tune.log"
    texts, _ = word_task(60, seed=3)
    code = SEARCH.format(texts=texts, folder=str(tiny_model_dir))
    private_tmp = run_in_private_tmp(code, tmp_path, **{TUNE_LOG_ENV: str(log)})

    runs = log.read_text().split()
    sizes = sorted(int(n) for n in runs[1::2])
    assert sizes == [48] * 5 + [60], runs
    assert sorted(p.name for p in private_tmp.iterdir()) == []


TUNE_AND_PRINT = """
import hashlib
import numpy as np
from skbert import BertCLSVectorizer
texts = {texts!r}
labels = {labels!r}
v = BertCLSVectorizer(model_name_or_path={folder!r}, device="cpu", cache=None,
                      pooling="mean", fine_tune={objective!r}, tune_max_steps=6,
                      tune_learning_rate=1e-3, random_state=7)
X = v.fit_transform(texts, labels)
print(v.fingerprint_, hashlib.sha256(X.tobytes()).hexdigest())
"""


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["classification", "contrastive"])
def test_tuning_is_bitwise_deterministic_across_processes(
    tiny_model_dir, tmp_path, objective
):
    texts, labels = word_task(40, seed=5)
    code = TUNE_AND_PRINT.format(
        texts=texts,
        labels=labels.tolist(),
        folder=str(tiny_model_dir),
        objective=objective,
    )
    first = run_python(code, cwd=tmp_path).split()[-2:]
    second = run_python(code, cwd=tmp_path).split()[-2:]
    other = run_python(code.replace("random_state=7", "random_state=8"), cwd=tmp_path)

    assert first == second
    base = vectorizer(tiny_model_dir).fit(texts)
    assert first[0] != base.fingerprint_
    assert other.split()[-2] != first[0]


def test_the_callers_random_state_is_left_alone(tiny_model_dir, task):
    import torch

    X_train, _, y_train, _ = task
    torch.manual_seed(123)
    np.random.seed(5)
    expected_torch, expected_numpy = torch.rand(3), np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(5)
    vectorizer(tiny_model_dir, fine_tune="contrastive", tune_max_steps=3).set_params(
        random_state=11
    ).fit(X_train, y_train)

    assert torch.equal(torch.rand(3), expected_torch)
    np.testing.assert_array_equal(np.random.rand(3), expected_numpy)


def test_a_tuned_pickle_loads_without_the_model_folder(tiny_model_copy, task):
    X_train, X_test, y_train, _ = task
    tuned = vectorizer(tiny_model_copy, fine_tune="classification", **FAST)
    expected = tuned.fit(X_train, y_train).transform(X_test)
    data = pickle.dumps(tuned)
    shutil.rmtree(tiny_model_copy)
    skbert.clear_model_cache()

    loaded = pickle.loads(data)

    np.testing.assert_array_equal(loaded.transform(X_test), expected)
    assert loaded.get_params() == tuned.get_params()
    assert loaded.fine_tune_report_ == tuned.fine_tune_report_


def test_a_tuned_encoder_is_never_pickled_by_reference(tiny_model_dir, task):
    X_train, _, y_train, _ = task
    tuned = vectorizer(
        tiny_model_dir, fine_tune="classification", tune_max_steps=1
    ).fit(X_train, y_train)
    tuned.set_params(persist="reference")

    with pytest.raises(ValueError, match="persist='weights'"):
        pickle.dumps(tuned)


def test_an_exported_tuned_pipeline_predicts_what_the_pipeline_predicts(
    tiny_model_dir, task, tmp_path
):
    from skbert import runtime

    X_train, X_test, y_train, _ = task
    pipe = make_pipeline(
        vectorizer(tiny_model_dir, pooling="cls", fine_tune="classification", **FAST),
        LogisticRegression(max_iter=1000),
    ).fit(X_train, y_train)

    skbert.export_onnx(pipe, tmp_path / "tuned.onnx")
    model = runtime.load(tmp_path / "tuned.onnx")

    np.testing.assert_array_equal(model.predict(X_test), pipe.predict(X_test))
    np.testing.assert_allclose(
        model.embed(X_test), pipe[0].transform(X_test), atol=1e-5, rtol=0
    )


def test_the_onnx_backend_runs_the_tuned_encoder(tiny_model_dir, task):
    X_train, X_test, y_train, _ = task
    params = {"fine_tune": "classification", "tune_max_steps": 5, "random_state": 1}
    torch_side = vectorizer(tiny_model_dir, **params).fit(X_train, y_train)
    onnx_side = vectorizer(tiny_model_dir, backend="onnx", **params).fit(
        X_train, y_train
    )

    np.testing.assert_allclose(
        onnx_side.transform(X_test), torch_side.transform(X_test), atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("long_texts", ["chunk", "head_tail"])
def test_long_texts_are_tuned_as_transform_reads_them(tiny_model_dir, long_texts):
    texts, labels = word_task(40, seed=9)
    texts = [f"{text} {text} {text}" for text in texts]  # ~30 tokens
    tuned = vectorizer(
        tiny_model_dir,
        pooling="mean",
        max_length=12,
        stride=2 if long_texts == "chunk" else 0,
        long_texts=long_texts,
        fine_tune="classification",
        tune_max_steps=2,
        max_batch_tokens=40,
    ).fit(texts, labels)

    assert tuned.fine_tune_report_["steps"] == 2
    assert tuned.transform(texts[:3]).shape == (3, 32)


def _head_and_tail(tokenizer, text: str, length: int, head=None) -> list[int]:
    """The oracle: the model input of ``text`` cut to ``length`` tokens by its
    head (``head`` tokens, by default a quarter of the room) and tail, with the
    tokenizer's special tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    room = length - 2
    if len(ids) > room:
        head = room // 4 if head is None else head
        ids = ids[:head] + ids[len(ids) - (room - head) :]
    return [tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]


@pytest.mark.parametrize("long_texts", ["chunk", "head_tail", "truncate"])
def test_tune_max_length_tunes_on_a_bounded_part_of_each_text(
    tiny_model_dir, long_texts
):
    """Tuning reads each text once, cut to ``tune_max_length`` tokens (the
    first tokens, or the head and tail), whatever ``long_texts`` reads at
    transform; the rows tuning forwards are the tokenizer's own."""
    from transformers import AutoTokenizer

    texts, labels = word_task(24, seed=5)
    texts = [f"{text} {text} {text}" for text in texts]  # ~30 tokens each
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    forwarded: list[list[int]] = []
    collate = skbert._tuning.loop.collate

    def recording(rows, *args, **kwargs):
        forwarded.extend(list(row) for row in rows)
        return collate(rows, *args, **kwargs)

    head_tokens = 8 if long_texts == "head_tail" else None
    # random_state=None: each case tunes afresh (the chunk and head_tail cases
    # share their tuning inputs, and would share a memo entry under one seed)
    tuned = vectorizer(
        tiny_model_dir,
        pooling="mean",
        max_length=20,
        long_texts=long_texts,
        head_tokens=head_tokens,
        fine_tune="classification",
        tune_max_length=10,
        tune_epochs=1,
    )
    with mock.patch.object(skbert._tuning.loop, "collate", recording):
        tuned.fit(texts, labels)

    if long_texts == "truncate":
        ids = [
            tokenizer(text, truncation=True, max_length=10)["input_ids"]
            for text in texts
        ]
    else:  # head_tokens=8 of 20 is 4 of 10: the tail keeps the same share
        head = None if head_tokens is None else 4
        ids = [_head_and_tail(tokenizer, text, 10, head) for text in texts]
    assert sorted(forwarded) == sorted(ids)  # one epoch: each text once
    assert all(len(row) == 10 for row in forwarded)


def test_a_search_over_how_transform_reads_long_texts_tunes_once(tiny_model_dir):
    """With ``tune_max_length``, tuning reads the same inputs whatever
    ``long_texts`` and ``max_length`` say (head and tail): one tuning run."""
    texts, labels = word_task(24, seed=6)
    texts = [f"{text} {text} {text}" for text in texts]
    calls, counting = _tuning_calls()
    params = {"fine_tune": "classification", "tune_max_length": 10, "random_state": 1}
    with mock.patch.object(skbert._tuning.loop, "tune", counting):
        fitted = [
            vectorizer(
                tiny_model_dir,
                long_texts=long_texts,
                max_length=length,
                stride=stride,
                **params,
            ).fit(texts, labels)
            for long_texts, length, stride in [
                ("chunk", 20, 0),
                ("chunk", 16, 4),
                ("head_tail", 20, 0),
            ]
        ]
    assert len(calls) == 1
    assert len({v.fingerprint_ for v in fitted}) == 1


def test_a_tune_max_length_beyond_max_length_is_refused(tiny_model_dir, task):
    X_train, _, y_train, _ = task
    with pytest.raises(ValueError, match=r"tune_max_length=40 exceeds max_length=20"):
        vectorizer(
            tiny_model_dir,
            max_length=20,
            fine_tune="classification",
            tune_max_length=40,
        ).fit(X_train, y_train)


def test_a_tune_max_length_without_room_after_the_prompt_is_refused(
    st_dense_folder, task
):
    """The folder's "query: " prompt is left out of the pooling: its tokens
    and the two special tokens leave no text to tune on."""
    from transformers import AutoTokenizer

    X_train, _, y_train, _ = task
    tokenizer = AutoTokenizer.from_pretrained(st_dense_folder)
    full = len(tokenizer("query: ", add_special_tokens=False)["input_ids"]) + 2
    tuning = {"pooling": "auto", "fine_tune": "classification", "tune_max_steps": 1}
    with pytest.raises(ValueError, match=f"tune_max_length={full} leaves no room"):
        vectorizer(st_dense_folder, tune_max_length=full, **tuning).fit(
            X_train, y_train
        )
    vectorizer(st_dense_folder, tune_max_length=full + 1, **tuning).fit(
        X_train, y_train
    )


def test_an_encoder_tuned_before_a_tuning_parameter_existed_still_encodes(
    tiny_model_dir, task
):
    """A fitted record without a tuning parameter added since (an older
    pickle's) reads as that parameter's default, not as a changed setting."""
    X_train, X_test, y_train, _ = task
    tuned = vectorizer(
        tiny_model_dir, fine_tune="classification", tune_max_steps=1
    ).fit(X_train, y_train)
    expected = tuned.transform(X_test[:3])
    del tuned.fine_tune_report_["params"]["tune_max_length"]

    np.testing.assert_array_equal(tuned.transform(X_test[:3]), expected)
    tuned.set_params(tune_max_length=8)
    with pytest.raises(ValueError, match="tune_max_length changed after fit"):
        tuned.transform(X_test[:3])


def test_three_string_classes_are_learned(tiny_model_dir):
    """One of three words says the class; the labels are strings."""
    rng = np.random.default_rng(4)
    names = np.array(["neg", "neutral", "pos"])
    words = ["bad", "dull", "good"]
    fill = [word for word in WORDS if word not in words]
    labels = rng.integers(3, size=300)
    texts = [" ".join([*rng.choice(fill, size=6), words[label]]) for label in labels]
    X_train, X_test, y_train, y_test = train_test_split(
        texts, names[labels], test_size=0.5, random_state=0
    )
    pipe = make_pipeline(
        vectorizer(tiny_model_dir, pooling="cls", fine_tune="classification", **FAST),
        LogisticRegression(max_iter=1000),
    ).fit(X_train, y_train)

    assert pipe.score(X_test, y_test) > 0.85
    assert list(pipe.classes_) == ["neg", "neutral", "pos"]


@pytest.mark.parametrize(
    "y, message",
    [
        (None, "fit was called without y"),
        (np.linspace(0, 1, 20), "regression target"),
        (np.ones(20), "at least two classes"),
        (np.arange(19) % 2, "X has 20 texts but y has 19 labels"),
        (np.eye(20, 3), "'multilabel-indicator' target"),
    ],
)
def test_labels_tuning_cannot_learn_from_are_refused(tiny_model_dir, y, message):
    texts, _ = word_task(20, seed=1)
    with pytest.raises(ValueError, match=message):
        vectorizer(tiny_model_dir, fine_tune="classification").fit(texts, y)


def test_tuning_parameters_changed_after_fit_ask_for_a_refit(tiny_model_dir, task):
    X_train, X_test, y_train, _ = task
    tuned = vectorizer(
        tiny_model_dir, fine_tune="classification", tune_max_steps=1
    ).fit(X_train, y_train)
    tuned.set_params(tune_epochs=3)
    with pytest.raises(ValueError, match="tune_epochs changed after fit"):
        tuned.transform(X_test)

    frozen = vectorizer(tiny_model_dir).fit(X_train)
    frozen.set_params(fine_tune="contrastive")
    with pytest.raises(ValueError, match="fine_tune changed after fit"):
        frozen.transform(X_test)


def test_top_layers_only_leave_the_others_as_they_were(tiny_model_dir, task):
    from safetensors.numpy import load

    X_train, _, y_train, _ = task
    tuned = vectorizer(
        tiny_model_dir, fine_tune="classification", tune_layers=1, **FAST
    ).fit(X_train, y_train)
    with tuned.model_.checkpoint() as (folder, _, _):
        after = load((folder / "model.safetensors").read_bytes())
    before = load((tiny_model_dir / "model.safetensors").read_bytes())

    changed = {name for name in before if not np.array_equal(before[name], after[name])}
    assert changed and all(
        name.startswith(("encoder.layer.1.", "pooler.")) for name in changed
    ), sorted(changed)


def test_a_digest_of_the_tuning_inputs_names_the_tuned_source(tiny_model_dir, task):
    X_train, _, y_train, _ = task
    tuned = vectorizer(
        tiny_model_dir, fine_tune="classification", tune_max_steps=1
    ).fit(X_train, y_train)
    assert tuned.model_.source.tuning.startswith("sha256:")
    with pytest.raises(FileNotFoundError, match="fine-tuned"):
        tuned.model_.source.folder()


def _tuning_calls() -> tuple[list[int], object]:
    calls: list[int] = []
    original = skbert._tuning.loop.tune

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    return calls, counting


@pytest.mark.parametrize("where", ["training", "storing"])
def test_ctrl_c_while_tuning_leaves_nothing_half_made(tiny_model_dir, task, where):
    import skbert._tuning.memo
    from skbert._storage import session as _session

    X_train, _, y_train, _ = task
    original = skbert._tuning.loop.epoch_batches

    def interrupted_training(*args):
        yield original(*args)[0]
        raise KeyboardInterrupt

    def interrupted_storing(*args, **kwargs):
        raise KeyboardInterrupt  # after the files, before the record and rename

    seed = {"training": 3, "storing": 13}[where]
    tuner = vectorizer(tiny_model_dir, fine_tune="classification", random_state=seed)
    target = (
        mock.patch.object(skbert._tuning.loop, "epoch_batches", interrupted_training)
        if where == "training"
        else mock.patch.object(
            skbert._tuning.memo, "_write_record", interrupted_storing
        )
    )
    with target, pytest.raises(KeyboardInterrupt):
        tuner.fit(X_train, y_train)

    assert not hasattr(tuner, "model_")
    stored = _session.active() / "tuned"
    assert not [p.name for p in stored.iterdir() if p.name.startswith(".writing-")]
    calls, counting = _tuning_calls()
    with mock.patch.object(skbert._tuning.loop, "tune", counting):
        tuned = tuner.fit(X_train, y_train)
    assert calls == [1]  # tuned again from the start: nothing was kept
    assert tuned.fine_tune_report_["steps"] == 13


def test_a_random_state_instance_survives_a_pickle(tiny_model_dir, task):
    X_train, X_test, y_train, _ = task
    tuned = vectorizer(
        tiny_model_dir,
        fine_tune="classification",
        tune_max_steps=1,
        random_state=np.random.RandomState(0),
    ).fit(X_train, y_train)

    again = pickle.loads(pickle.dumps(tuned))

    np.testing.assert_array_equal(again.transform(X_test), tuned.transform(X_test))


def test_a_micro_batch_padded_to_its_longest_row_stays_in_the_budget():
    from skbert._tuning.loop import _micro_batches

    class Windows:
        """Text i: ``counts[i]`` windows of ``lengths[i]`` tokens."""

        counts = [1, 1, 1, 3, 1, 1]
        lengths = [100, 100, 100, 20, 512, 100]

        def rows(self, text):
            return self.counts[text]

        def longest(self, text):
            return self.lengths[text]

    windows = Windows()
    examples = [[0], [1], [2, 3], [4], [5]]
    groups = _micro_batches(examples, windows, 1024)

    assert sorted(i for group in groups for i in group) == list(range(5))
    for group in groups:
        texts = [t for i in group for t in examples[i]]
        padded = sum(windows.counts[t] for t in texts) * max(
            windows.lengths[t] for t in texts
        )
        assert padded <= 1024 or len(group) == 1, (group, padded)


@pytest.mark.parametrize(
    "params, unused",
    [
        ({"tune_epochs": 3}, "tune_epochs=3 does nothing with fine_tune=None"),
        (
            {"fine_tune": "classification", "tune_pairs": 4, "tune_max_steps": 1},
            "tune_pairs=4 does nothing with fine_tune='classification'",
        ),
    ],
)
def test_a_tuning_option_that_does_nothing_warns_at_the_users_line(
    tiny_model_dir, params, unused
):
    texts, labels = word_task(20)
    with pytest.warns(UserWarning, match=unused) as caught:
        vectorizer(tiny_model_dir, **params).fit(texts, labels)
    assert {Path(w.filename).name for w in caught} == {"test_fine_tune.py"}


@pytest.fixture(scope="module")
def st_dense_folder(tiny_model_dir, tmp_path_factory):
    from test_recipe import build_st_folder

    return build_st_folder(
        tiny_model_dir,
        tmp_path_factory.mktemp("st") / "dense",
        pooling="mean",
        prompts={"query": "query: "},
        default_prompt_name="query",
        include_prompt=False,
    )


TRAINING_PATHS = {
    "chunk-mean": {"pooling": "mean", "long_texts": "chunk", "stride": 2},
    "chunk-max": {"pooling": "max", "long_texts": "chunk", "chunk_combine": "max"},
    "head-tail-cls-normalize": {
        "pooling": "cls",
        "long_texts": "head_tail",
        "normalize": True,
    },
    "layers": {"pooling": "mean", "layers": (0, -1)},
    "pooler": {"pooling": "pooler"},
    "st-dense-normalize-prompt": {"pooling": "auto"},
}


@pytest.mark.filterwarnings("ignore::skbert.TruncationWarning")
@pytest.mark.parametrize("case", TRAINING_PATHS)
def test_tuning_trains_the_vector_transform_computes(
    tiny_model_dir, st_dense_folder, case
):
    """The differentiable path (windows combined in torch, Dense, unit length,
    a prompt left out of the pooling) gives transform's vectors, which the
    long-text and recipe tests check against transformers and
    sentence-transformers."""
    import torch

    from skbert._estimator.fitted import fitted_encoder
    from skbert._tuning.loop import TextVectors, text_windows

    params = TRAINING_PATHS[case]
    folder = st_dense_folder if case.startswith("st-") else tiny_model_dir
    texts, _ = word_task(12, seed=6)
    texts = [f"{text} and {text}" for text in texts]  # ~20 tokens: windows of 12
    fitted = vectorizer(folder, max_length=12, **params).fit(texts)
    loaded = fitted.model_.torch_model
    spec = fitted_encoder(fitted).spec  # what transform runs

    with torch.no_grad():
        vectors = TextVectors(loaded, spec, text_windows(loaded, spec, texts))
        trained = vectors(list(range(len(texts)))).numpy()

    expected = fitted.transform(texts)
    np.testing.assert_allclose(trained, expected, atol=1e-5, rtol=0)


LOAD_AND_ENCODE = """
import pickle, sys
import numpy as np
with open(sys.argv[1] if len(sys.argv) > 1 else {pickle_path!r}, "rb") as f:
    tuned = pickle.load(f)
np.save({out!r}, tuned.transform({texts!r}))
"""


@pytest.mark.slow
def test_a_tuned_pickle_loads_in_a_fresh_process_without_the_folder(
    tiny_model_copy, task, tmp_path
):
    X_train, X_test, y_train, _ = task
    tuned = vectorizer(tiny_model_copy, fine_tune="classification", **FAST)
    expected = tuned.fit(X_train, y_train).transform(X_test)
    (tmp_path / "tuned.pkl").write_bytes(pickle.dumps(tuned))
    shutil.rmtree(tiny_model_copy)

    code = LOAD_AND_ENCODE.format(
        pickle_path=str(tmp_path / "tuned.pkl"),
        out=str(tmp_path / "vectors.npy"),
        texts=list(X_test),
    )
    run_python(code, cwd=tmp_path)

    np.testing.assert_allclose(
        np.load(tmp_path / "vectors.npy"), expected, atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("pairs", [1, 9, 40])
def test_contrastive_pairs_are_labelled_right_and_distinct_while_they_can_be(pairs):
    from skbert._tuning.pairs import contrastive_pairs

    codes = np.array([0] * 8 + [1] * 8 + [2] * 1)
    index, targets = contrastive_pairs(codes, pairs, np.random.default_rng(3))

    assert index.shape == (len(codes) * pairs, 2) and len(targets) == len(index)
    same = codes[index[:, 0]] == codes[index[:, 1]]
    np.testing.assert_array_equal(targets, same.astype(np.float32))
    for anchor in range(len(codes)):
        mine = index[:, 0] == anchor
        assert mine.sum() == pairs
        assert targets[mine].sum() == (pairs + 1) // 2
        positives = index[mine & (targets == 1), 1]
        if codes[anchor] != 2:  # the single member of class 2 pairs with itself
            assert anchor not in positives
            # distinct while the 7 other members of its class last
            assert len(set(positives)) == min(len(positives), 7)
    again = contrastive_pairs(codes, pairs, np.random.default_rng(3))
    np.testing.assert_array_equal(again[0], index)
