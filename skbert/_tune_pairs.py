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


def contrastive_pairs(
    codes: np.ndarray, pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs of shape ``(n, 2)`` and their targets (1.0 same class, 0.0
    different), ``pairs`` per text, in a random order.

    A positive partner is another text of the same class (the text itself
    only when it is its class's only member).
    """
    n = len(codes)
    anchors = np.repeat(np.arange(n), pairs)
    positive = np.tile(np.arange(pairs) % 2 == 0, n)
    partners = np.empty_like(anchors)
    for label in np.unique(codes):
        members = np.flatnonzero(codes == label)
        others = np.flatnonzero(codes != label)
        mine = codes[anchors] == label
        same = mine & positive
        if len(members) == 1:
            partners[same] = members[0]
        else:
            own = np.searchsorted(members, anchors[same])
            draw = rng.integers(0, len(members) - 1, size=int(same.sum()))
            partners[same] = members[draw + (draw >= own)]  # never itself
        other = mine & ~positive
        partners[other] = others[rng.integers(0, len(others), size=int(other.sum()))]
    order = rng.permutation(len(anchors))
    index = np.stack([anchors, partners], axis=1)[order]
    return index, positive[order].astype(np.float32)


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
