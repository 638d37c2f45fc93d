"""skbert's fine-tuning side by side with SetFit, same model, data, head and CPU.

Both start from the same sentence-transformers checkpoint (all-MiniLM-L6-v2,
offline) and end in scikit-learn's ``LogisticRegression()`` on the tuned
vectors (SetFit's default head). Contenders alternate within each seed, in one
process. Data: SST-2 sentences (``sst2_sent_train`` to sample from,
``sst2_test`` to score).

* ``--shots 8,64``: SetFit's few-shot settings (its paper's 8 and 64 labelled
  texts per class, several seeds): SetFit with its defaults (pairs drawn by
  oversampling, one epoch, batch 16, body learning rate 2e-5); skbert's
  ``fine_tune="contrastive"`` with the same pair budget (``tune_pairs`` =
  SetFit's pairs per text) and learning rate, and ``"classification"``.
* ``--full``: the whole training set with a capped budget of ``--max-steps``
  optimizer steps for both.

It needs ``setfit`` next to skbert (``pip install setfit``, then
``pip install --no-deps -e .``); results go to ``--json``, one row per run.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import default_model, read_rows, read_tsv, save_rows
from evaluate_finetune import DATA, cpu_name


def sample(texts, labels, per_class: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == label), per_class, replace=False)
            for label in np.unique(labels)
        ]
    )
    chosen = rng.permutation(chosen)
    return [texts[i] for i in chosen], labels[chosen]


def timed(fit) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fit()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run_setfit(model, X, y, X_test, y_test, seed, max_steps, learning_rate):
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    setfit_model = SetFitModel.from_pretrained(model)
    options = {"max_steps": max_steps} if max_steps else {}
    output = tempfile.mkdtemp(prefix="setfit-")  # its checkpoints, not in the repo
    args = TrainingArguments(
        output_dir=output,
        seed=seed,
        batch_size=16,
        num_epochs=1,
        body_learning_rate=learning_rate,
        show_progress_bar=False,
        report_to="none",
        **options,
    )
    train = Dataset.from_dict({"text": X, "label": [int(v) for v in y]})
    trainer = Trainer(model=setfit_model, args=args, train_dataset=train)
    _, wall, cpu = timed(trainer.train)
    shutil.rmtree(output, ignore_errors=True)
    accuracy = float(np.mean(setfit_model.predict(X_test).numpy() == y_test))
    pairs = len(trainer.train_dataset) if hasattr(trainer, "train_dataset") else None
    return accuracy, wall, cpu, {"pairs": pairs}


def setfit_pairs(y: np.ndarray) -> int:
    """Pairs SetFit's default "oversampling" draws (its ContrastiveDataset)."""
    from setfit.sampler import ContrastiveDataset

    data = ContrastiveDataset(["t"] * len(y), list(map(int, y)), multilabel=False)
    return data.len_pos_pairs + data.len_neg_pairs


def run_skbert(model, X, y, X_test, y_test, seed, objective, pairs, max_steps, lr):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from skbert import BertCLSVectorizer

    options = {"tune_pairs": pairs} if objective == "contrastive" else {}
    bert = BertCLSVectorizer(
        model_name_or_path=model,
        pooling="auto",
        device="cpu",
        cache=None,
        show_progress_bar=False,
        fine_tune=objective,
        tune_learning_rate=lr,
        tune_max_steps=max_steps,
        random_state=seed,
        **options,
    )
    pipe = Pipeline([("bert", bert), ("clf", LogisticRegression())])
    _, wall, cpu = timed(lambda: pipe.fit(X, y))
    accuracy = float(pipe.score(X_test, y_test))
    report = pipe[0].fine_tune_report_
    return (
        accuracy,
        wall,
        cpu,
        {"steps": report["steps"], "tune_cpu": report["cpu_seconds"]},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", default="8,64")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds run from this one on"
    )
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--contenders", default="setfit,contrastive,classification")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    model = default_model()
    texts, labels = read_tsv(DATA / "sst2_sent_train.tsv")
    X_test, y_test = read_tsv(DATA / "sst2_test.tsv")
    results = read_rows(args.json)
    settings = [(f"{n} per class", int(n)) for n in args.shots.split(",") if n]
    if args.full:
        settings.append((f"full, {args.max_steps} steps", None))
    for label, per_class in settings:
        first = args.first_seed
        for seed in range(first, first + (args.seeds if per_class else 1)):
            if per_class:
                X, y = sample(texts, labels, per_class, seed)
                max_steps = None
            else:
                X, y, max_steps = texts, labels, args.max_steps
            pairs = max(2, round(setfit_pairs(y) / len(y)))
            for contender in args.contenders.split(","):
                if contender == "setfit":
                    out = run_setfit(model, X, y, X_test, y_test, seed, max_steps, 2e-5)
                else:
                    lr = 2e-5 if contender == "contrastive" else 5e-5
                    out = run_skbert(
                        model,
                        X,
                        y,
                        X_test,
                        y_test,
                        seed,
                        contender,
                        pairs,
                        max_steps,
                        lr,
                    )
                accuracy, wall, cpu, extra = out
                row = {
                    "setting": label,
                    "seed": seed,
                    "contender": contender,
                    "accuracy": accuracy,
                    "fit_seconds": wall,
                    "fit_cpu_seconds": cpu,
                    "cpu": cpu_name(),
                    **extra,
                }
                results.append(row)
                print(
                    f"{label} seed {seed} {contender}: {100 * accuracy:.2f} "
                    f"({wall:.0f} s wall, {cpu:.0f} s CPU) {extra}",
                    flush=True,
                )
                save_rows(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
