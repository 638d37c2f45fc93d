"""Fine-tuning: a copy of the encoder adapted to class labels (torch).

Data flow: texts -> the same model inputs ``transform`` makes (prompt,
lower-casing, ``long_texts`` windows; the estimator's ``tune_max_length``
gives a spec that cuts them shorter) -> examples (texts, or SetFit pairs,
:mod:`skbert._tuning.pairs`) -> shuffled batches -> micro-batches within the
token budget (``max_batch_tokens``; whole examples, so the accumulated
gradient is the batch's) -> the pooled vector exactly as ``transform``
computes it (poolings, windows combined, a folder's Dense layers, unit
length), with gradients -> the objective's loss -> AdamW with linear
warm-up and decay.

The base model is never changed: a deep copy is trained. Everything random
(the examples, dropout, the temporary head) comes from the seed, and the
generators' states are put back afterwards, so the caller's random state is
left as it was and the same data and seed give bitwise the same weights on
the CPU.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._core.plan import EncodingSpec, prepare
from .._encoding.batching import collate, pool_batch, spec_inputs
from .._encoding.finish import dense_layers, finish
from .pairs import contrastive_pairs, epoch_batches

if TYPE_CHECKING:
    import torch

    from .._model.checkpoint import LoadedModel

__all__ = ["TextVectors", "TuningPlan", "TuningReport", "text_windows", "tune"]

LOGGER = logging.getLogger("skbert.fine_tune")

#: The temporary classification head learns this many times faster than the
#: encoder: it starts from random weights, the encoder from trained ones.
HEAD_LEARNING_RATE_FACTOR = 20.0
#: AdamW's weight decay and the gradient-norm clip (the usual BERT recipe).
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
#: Batches per group of examples sorted by length (see ``epoch_batches``).
GROUP = 32


@dataclass(frozen=True)
class TuningPlan:
    """The tuning parameters of the estimator, checked."""

    objective: str
    epochs: int
    learning_rate: float
    batch_size: int
    warmup: float
    layers: int | None
    pairs: int
    max_steps: int | None
    seed: int

    def to_state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TuningReport:
    """What a tuning run did (the estimator's ``fine_tune_report_``)."""

    #: Mean training loss of each epoch.
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    examples: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def to_state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _blocks(model: Any) -> Any:
    """The model's list of transformer layers (one module per layer)."""
    import torch

    n_layers = getattr(model.config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers:
            return module
    return None


def _choose_trainable(model: Any, layers: int | None, description: str) -> None:
    """``layers=None``: every weight; ``k``: the top ``k`` layers and what
    follows them (final norms, the pooler), embeddings frozen."""
    if layers is None:
        model.requires_grad_(True)
        return
    blocks = _blocks(model)
    if blocks is None:
        raise ValueError(
            f"tune_layers={layers}: {description} has no list of separate layers "
            "to choose the top ones from (ALBERT shares one layer across depths). "
            "Use tune_layers=None to train every weight."
        )
    if layers > len(blocks):
        raise ValueError(
            f"tune_layers={layers}: {description} has only {len(blocks)} layers; "
            f"use a value <= {len(blocks)}, or None for all."
        )
    in_blocks = {id(p) for block in blocks for p in block.parameters()}
    trained = blocks[len(blocks) - layers :]
    top = {id(p) for block in trained for p in block.parameters()}
    for name, parameter in model.named_parameters():
        if id(parameter) in in_blocks:
            parameter.requires_grad_(id(parameter) in top)
        else:
            embedding = "embed" in name or name.split(".")[0] == "shared"
            parameter.requires_grad_(not embedding)


class TextVectors:
    """The pooled vectors of texts, as ``transform`` computes them, with
    gradients: windows combined, Dense layers, unit length."""

    def __init__(
        self, loaded: LoadedModel, spec: EncodingSpec, windows: list[list[list[int]]]
    ) -> None:
        self.loaded = loaded
        self.spec = spec
        self.windows = windows
        self.device = loaded.device
        self.dense = dense_layers(loaded, spec, self.device)

    def rows(self, text: int) -> int:
        """Model inputs of a text (its windows)."""
        return len(self.windows[text])

    def longest(self, text: int) -> int:
        """Tokens of a text's longest model input."""
        return max(len(row) for row in self.windows[text])

    def tokens(self, text: int) -> int:
        """Padded-token cost of a text alone (its windows at their longest)."""
        return self.rows(text) * self.longest(text)

    def __call__(self, texts: list[int]) -> torch.Tensor:

        rows, owners, weights = [], [], []
        for k, text in enumerate(texts):
            for row in self.windows[text]:
                rows.append(row)
                owners.append(k)
                weights.append(float(len(row)))
        tok = self.loaded.tokenizer
        batch = collate(rows, tok.pad_id, tok.with_token_types, self.device)
        pooled = pool_batch(
            self.loaded, batch, self.spec.layers, self.spec.modes, self.spec.skip
        )
        vectors = pooled.reshape(len(rows), -1)
        if len(rows) != len(texts):
            vectors = self._combine(vectors, owners, weights, len(texts))
        return finish(vectors, self.dense, self.spec.normalize)

    def _combine(
        self, vectors: torch.Tensor, owners: list[int], weights: list[float], n: int
    ) -> torch.Tensor:
        """Each text's windows as one vector (``chunk_combine``)."""
        import torch

        index = torch.tensor(owners, device=vectors.device)
        if self.spec.chunk_combine == "max":
            return torch.stack([vectors[index == k].amax(dim=0) for k in range(n)])
        w = torch.tensor(weights, device=vectors.device, dtype=vectors.dtype)
        sums = torch.zeros(n, vectors.shape[1], device=vectors.device)
        sums = sums.index_add(0, index, vectors * w[:, None])
        totals = torch.zeros(n, device=vectors.device).index_add(0, index, w)
        return sums / totals[:, None]


def text_windows(
    loaded: LoadedModel, spec: EncodingSpec, texts: list[str]
) -> list[list[list[int]]]:
    """Each text's model inputs (one, or its windows), as ``transform`` makes
    them: prompt, lower-casing, ``long_texts``."""
    inputs = spec_inputs(loaded.tokenizer, prepare(texts, spec), spec)
    windows: list[list[list[int]]] = [[] for _ in texts]
    for row, owner in zip(inputs.rows, inputs.owner, strict=True):
        windows[owner].append(row)
    return windows


def _micro_batches(
    examples: list[list[int]], vectors: TextVectors, budget: int | None
) -> list[list[int]]:
    """Positions of ``examples`` (each a list of texts) grouped so that each
    group, padded to its longest row as one forward pass, holds at most
    ``budget`` tokens (an example that alone holds more is a group of its own)."""
    if budget is None:
        return [list(range(len(examples)))]
    groups: list[list[int]] = [[]]
    rows = longest = 0
    for position, texts in enumerate(examples):
        own_rows = sum(vectors.rows(text) for text in texts)
        own_longest = max(vectors.longest(text) for text in texts)
        wider = max(longest, own_longest)
        if groups[-1] and (rows + own_rows) * wider > budget:
            groups.append([])
            rows, wider = 0, own_longest
        groups[-1].append(position)
        rows += own_rows
        longest = wider
    return groups


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the CPU generator (and the tuning device's) for the block, then
    put back the states they had: the caller's random state is untouched."""
    import torch

    cpu = torch.get_rng_state()
    saved = None
    if device.type == "cuda":
        saved = torch.cuda.get_rng_state(device)
    elif device.type == "mps":
        saved = torch.mps.get_rng_state()
    try:
        torch.random.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        elif device.type == "mps":
            torch.mps.manual_seed(seed)
        yield
    finally:
        torch.set_rng_state(cpu)
        if device.type == "cuda":
            torch.cuda.set_rng_state(saved, device)
        elif device.type == "mps":
            torch.mps.set_rng_state(saved)


def _adamw(groups: list[dict[str, Any]]) -> Any:
    """AdamW, fused where this torch has it for the device (a third of the
    step time of the per-tensor loop on the CPU), else the per-tensor loop."""
    import torch

    try:
        return torch.optim.AdamW(groups, weight_decay=WEIGHT_DECAY, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, weight_decay=WEIGHT_DECAY)


def _schedule(total: int, warmup: float) -> Callable[[int], float]:
    """Linear warm-up over ``warmup`` of the steps, then linear decay to 0."""
    warm = int(math.floor(warmup * total))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return max(0.0, (total - step) / max(1, total - warm))

    return factor


def _progress(total: int, show: bool | None) -> Any:
    from tqdm.auto import tqdm

    if show is None:
        show = total > 20 and sys.stderr.isatty()
    return tqdm(total=total, desc="skbert: fine-tuning", unit="step", disable=not show)


def tune(
    base: LoadedModel,
    spec: EncodingSpec,
    texts: list[str],
    codes: np.ndarray,
    plan: TuningPlan,
    *,
    max_batch_tokens: int | None,
    show_progress_bar: bool | None = None,
    description: str = "the model",
) -> tuple[Any, TuningReport]:
    """A copy of ``base.model`` trained on ``texts`` and class ``codes``.

    Returns the trained model (in eval mode, gradients off, on
    ``base.device`` in float32) and what the run did. ``base`` is not
    changed. Interrupted (Ctrl-C), nothing is kept.
    """
    import torch

    started, cpu_started = time.perf_counter(), time.process_time()
    device = base.device
    model = copy.deepcopy(base.model).to(dtype=torch.float32)
    if base.float32_state is not None:  # the running copy is in another dtype
        model.load_state_dict(base.float32_state)
    _choose_trainable(model, plan.layers, description)
    loaded = dataclasses.replace(base, model=model, dtype=torch.float32)

    vectors_of = TextVectors(loaded, spec, text_windows(base, spec, texts))

    rng = np.random.default_rng(plan.seed)
    n_classes = int(codes.max()) + 1
    if plan.objective == "contrastive":
        pairs, targets = contrastive_pairs(codes, plan.pairs, rng)
        examples = [list(pair) for pair in pairs.tolist()]
    else:
        examples = [[i] for i in range(len(texts))]
    costs = np.array([max(vectors_of.tokens(t) for t in ex) for ex in examples])
    per_epoch = sum(
        math.ceil(min(len(examples) - start, plan.batch_size * GROUP) / plan.batch_size)
        for start in range(0, len(examples), plan.batch_size * GROUP)
    )
    total = per_epoch * plan.epochs
    if plan.max_steps is not None:
        total = min(total, plan.max_steps)
    report = TuningReport(examples=len(examples))

    with _seeded(plan.seed, device):
        head = None
        if plan.objective == "classification":
            head = torch.nn.Linear(spec.output_size, n_classes).to(device)
            torch.nn.init.normal_(head.weight, std=0.02)
            torch.nn.init.zeros_(head.bias)
            labels = torch.as_tensor(codes, device=device)
        else:
            target = torch.as_tensor(targets, device=device)
        groups = [
            {
                "params": [p for p in model.parameters() if p.requires_grad],
                "lr": plan.learning_rate,
            }
        ]
        if head is not None:
            groups.append(
                {
                    "params": list(head.parameters()),
                    "lr": plan.learning_rate * HEAD_LEARNING_RATE_FACTOR,
                }
            )
        optimizer = _adamw(groups)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _schedule(total, plan.warmup)
        )
        trainable = [p for group in groups for p in group["params"]]
        autocast = contextlib.nullcontext()
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            autocast = torch.autocast("cuda", dtype=torch.bfloat16)
        model.train()
        with _progress(total, show_progress_bar) as bar:
            for epoch in range(plan.epochs):
                if report.steps >= total:
                    break
                losses = []
                for batch in epoch_batches(costs, plan.batch_size, rng, GROUP):
                    if report.steps >= total:
                        break
                    optimizer.zero_grad(set_to_none=True)
                    chosen = [examples[i] for i in batch]
                    batch_loss = 0.0
                    for group in _micro_batches(chosen, vectors_of, max_batch_tokens):
                        part = [batch[g] for g in group]
                        with autocast:
                            if head is not None:
                                vectors = vectors_of([examples[i][0] for i in part])
                                logits = head(vectors.float())
                                loss = torch.nn.functional.cross_entropy(
                                    logits, labels[[examples[i][0] for i in part]]
                                )
                            else:
                                flat = [t for i in part for t in examples[i]]
                                vectors = vectors_of(flat).float()
                                cosine = torch.nn.functional.cosine_similarity(
                                    vectors[0::2], vectors[1::2]
                                )
                                loss = torch.nn.functional.mse_loss(
                                    cosine, target[part]
                                )
                        scaled = loss * (len(part) / len(batch))
                        scaled.backward()
                        batch_loss += float(scaled.detach())
                    torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
                    optimizer.step()
                    scheduler.step()
                    report.steps += 1
                    losses.append(batch_loss)
                    bar.update(1)
                    bar.set_postfix(loss=f"{batch_loss:.4f}", refresh=False)
                mean = float(np.mean(losses)) if losses else float("nan")
                report.losses.append(mean)
                LOGGER.info(
                    "fine-tuning (%s) epoch %d of %d: mean loss %.4f over %d steps",
                    plan.objective,
                    epoch + 1,
                    plan.epochs,
                    mean,
                    len(losses),
                )
    model.eval()
    model.requires_grad_(False)
    report.seconds = time.perf_counter() - started
    report.cpu_seconds = time.process_time() - cpu_started
    return model, report
