"""The examples a fine-tuning epoch trains on: texts, or pairs of texts.

``fine_tune="classification"`` trains on each text with its class;
``fine_tune="contrastive"`` on pairs drawn from the labels, as SetFit does
(Tunstall et al., 2022): each text is paired ``pairs`` times, alternately
with another text of its class (target similarity 1) and with a text of
another class (target 0). Everything is drawn from one seeded numpy
generator, so the same data and seed give the same examples.
"""

from __future__ import annotations

import numpy as np

__all__ = ["contrastive_pairs", "epoch_batches"]


def _distinct(pool: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` indices into ``range(pool)``, all distinct while the pool
    allows (then each index once more, in a new random order)."""
    rounds = [rng.permutation(pool) for _ in range(count // pool)]
    rounds.append(rng.choice(pool, count % pool, replace=False))
    return np.concatenate(rounds)


def contrastive_pairs(
    codes: np.ndarray, pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs of shape ``(n, 2)`` and their targets (1.0 same class, 0.0
    different), ``pairs`` per text, in a random order.

    Each text is paired alternately with another text of its class (itself
    only when it is its class's only member) and with a text of another
    class; its partners are distinct while its class (or the others) has
    enough members, as SetFit's unique pairs are in few-shot settings.
    """
    n = len(codes)
    positives, negatives = (pairs + 1) // 2, pairs // 2
    members = {label: np.flatnonzero(codes == label) for label in np.unique(codes)}
    others = {label: np.flatnonzero(codes != label) for label in members}
    rows, targets = [], []
    for anchor in range(n):
        own, rest = members[codes[anchor]], others[codes[anchor]]
        if len(own) == 1:
            same = np.full(positives, anchor)
        else:
            draw = _distinct(len(own) - 1, positives, rng)
            position = np.searchsorted(own, anchor)
            same = own[draw + (draw >= position)]  # never itself
        different = rest[_distinct(len(rest), negatives, rng)]
        partners = np.concatenate([same, different])
        rows.append(np.stack([np.full(pairs, anchor), partners], axis=1))
        targets.append(np.repeat([1.0, 0.0], [positives, negatives]))
    index, target = np.concatenate(rows), np.concatenate(targets)
    order = rng.permutation(len(index))
    return index[order], target[order].astype(np.float32)


def epoch_batches(
    costs: np.ndarray, batch_size: int, rng: np.random.Generator, group: int = 32
) -> list[np.ndarray]:
    """One epoch's examples in shuffled batches of ``batch_size`` (the last of
    each group may be smaller) that hold examples of similar ``costs``.

    The examples are shuffled, cut into groups of ``group`` batches, sorted by
    cost within each group and batched; the batches are shuffled again. So
    each batch is padded little (a random batch of sentences is padded to
    about twice its mean length) while the order stays random.
    """
    order = rng.permutation(len(costs))
    span = batch_size * group
    batches = []
    for start in range(0, len(order), span):
        part = order[start : start + span]
        part = part[np.argsort(-costs[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
