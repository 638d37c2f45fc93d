"""From texts to pooled vectors: tokens -> length-sorted batches -> forward.

Texts are tokenized a chunk at a time and sorted by token count inside the
chunk; batches hold at most ``batch_size`` texts and, with a token budget, at
most ``max_batch_tokens`` padded tokens, and are padded only to their own
longest text. Each batch runs under ``torch.inference_mode()`` on its device
and is pooled in float32. A batch that runs the device out of memory is split
in halves and retried, so a job finishes with every text exactly once. With
several devices, batches go round-robin to one thread per device.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from .._core.long_texts import Combiner, Inputs, model_inputs
from .._core.plan import EncodingSpec, RunReport, pad_rows, plan_batches
from .cpu_linear import onednn_linear
from .pooling import NUMPY_POOLINGS, TORCH_POOLINGS

if TYPE_CHECKING:
    import torch

    from .._model.checkpoint import LoadedModel

__all__ = ["collate", "iter_pooled", "pool_batch", "spec_inputs"]


def collate(
    rows: list[list[int]], pad_id: int, with_token_types: bool, device: torch.device
) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest row and move it to ``device``."""
    import torch

    input_ids, mask = pad_rows(rows, pad_id)
    batch = {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(mask),
    }
    if with_token_types:
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    if device.type == "cuda":
        return {
            name: tensor.pin_memory().to(device, non_blocking=True)
            for name, tensor in batch.items()
        }
    return {name: tensor.to(device) for name, tensor in batch.items()}


def pool_batch(
    loaded: LoadedModel,
    batch: dict[str, torch.Tensor],
    layers: tuple[int, ...],
    poolings: tuple[str, ...],
    skip: int = 0,
) -> torch.Tensor:
    """One forward pass; float32 vectors of shape ``(batch, poolings, hidden)``.

    The states stay in the model's precision; each pooling accumulates in
    float32. ``skip`` leading tokens (a prompt) are left out of the token
    poolings.
    """
    import torch

    last = loaded.info.n_hidden_states - 1
    need_hidden = any(layer != last for layer in layers)
    output = loaded.model(**batch, output_hidden_states=need_hidden, return_dict=True)
    mask = batch["attention_mask"]
    if skip:
        mask = mask.clone()
        mask[:, :skip] = 0
    if loaded.backend != "torch":  # ONNX Runtime: numpy arrays behind the tensors
        return torch.from_numpy(_pool_numpy(output, mask.numpy(), poolings))
    states = [
        output.hidden_states[layer] if need_hidden else output.last_hidden_state
        for layer in layers
    ]
    pooled = []
    for name in poolings:
        if name == "pooler":
            pooled.append(output.pooler_output.float())
            continue
        per_layer = [TORCH_POOLINGS[name](state, mask).float() for state in states]
        pooled.append(
            per_layer[0] if len(per_layer) == 1 else torch.stack(per_layer).mean(0)
        )
    return torch.stack(pooled, dim=1)


def _pool_numpy(output: Any, mask: np.ndarray, poolings: tuple[str, ...]) -> np.ndarray:
    """:func:`pool_batch` for the ONNX Runtime backend (last layer only), with
    the numpy poolings (see :mod:`skbert._encoding.pooling` for why)."""
    hidden = output.last_hidden_state.numpy()
    pooled = [
        output.pooler_output.numpy()
        if name == "pooler"
        else NUMPY_POOLINGS[name](hidden, mask)
        for name in poolings
    ]
    return np.stack(pooled, axis=1).astype(np.float32, copy=False)


def spec_inputs(tokenizer: Any, texts: list[str], spec: EncodingSpec) -> Inputs:
    """The model inputs of ``texts`` (prompt already added) under ``spec``: one
    per text, or several windows (``spec.long_texts``)."""
    return model_inputs(
        tokenizer.content_ids(texts, tokenizer.kept(spec.max_length, spec.long_texts)),
        tokenizer.prefix,
        tokenizer.suffix,
        max_length=spec.max_length,
        strategy=spec.long_texts,
        head_tokens=spec.head_tokens,
        stride=spec.stride,
    )


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device out-of-memory error (CUDA or MPS)."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    if isinstance(error, oom):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _free_device_memory(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


class _Runner:
    """Runs batches of token ids on one model, splitting on out-of-memory."""

    def __init__(
        self,
        loaded: LoadedModel,
        spec: EncodingSpec,
        poolings: tuple[str, ...],
        report: RunReport,
    ) -> None:
        self.loaded = loaded
        self.layers = spec.layers
        self.skip = spec.skip
        self.poolings = poolings
        self.report = report
        self.pad_id = loaded.tokenizer.pad_id
        self.with_token_types = loaded.tokenizer.with_token_types

    def __call__(self, rows: list[list[int]]) -> np.ndarray:
        import torch

        try:
            # both thread-local: entered per call
            with torch.inference_mode(), onednn_linear(self.loaded.device):
                batch = collate(
                    rows, self.pad_id, self.with_token_types, self.loaded.device
                )
                pooled = pool_batch(
                    self.loaded, batch, self.layers, self.poolings, self.skip
                )
                return pooled.to("cpu").numpy()
        except Exception as error:
            if len(rows) == 1 or not is_out_of_memory(error):
                raise
        # outside the except block, so the failed batch's memory can be freed
        _free_device_memory(self.loaded.device)
        self.report.out_of_memory_splits.append(len(rows))
        half = len(rows) // 2
        return np.concatenate([self(rows[:half]), self(rows[half:])])


def iter_pooled(
    texts: list[str],
    models: list[LoadedModel],
    spec: EncodingSpec,
    poolings: tuple[str, ...],
    *,
    chunk_size: int,
    report: RunReport,
    bar: Any,
) -> Iterator[tuple[list[int], np.ndarray, list[bool], list[bool]]]:
    """Yield ``(positions in texts, pooled vectors, truncated, long)`` as texts
    are completed, batch by batch.

    Texts are tokenized ``chunk_size`` at a time and made into model inputs by
    ``spec.long_texts`` (one per text, or several windows; see
    :mod:`skbert._core.long_texts`); inputs of all texts are batched together by
    token count. ``truncated`` says, for each text, whether tokens were left
    out (all of them are also in ``report.truncated``), ``long`` whether it
    was longer than ``spec.max_length``. ``models`` holds one loaded model per
    device; batches are dealt to them in turn, at most two per device in
    flight, and handled in the order dealt.
    """
    runners = [_Runner(loaded, spec, poolings, report) for loaded in models]
    tokenizer = models[0].tokenizer
    pool = ThreadPoolExecutor(len(runners)) if len(runners) > 1 else None
    pending: deque = deque()
    dealt = 0

    def finish(start, inputs, combiner, rows, pooled):
        done, vectors = combiner.add(rows, pooled)
        bar.update(len(done))
        positions = [start + i for i in done]
        return (
            positions,
            vectors,
            [inputs.cut[i] for i in done],
            [inputs.long[i] for i in done],
        )

    try:
        for start in range(0, len(texts), chunk_size):
            inputs = spec_inputs(tokenizer, texts[start : start + chunk_size], spec)
            report.truncated.extend(
                start + i for i, flag in enumerate(inputs.cut) if flag
            )
            report.tokens += sum(len(row) for row in inputs.rows)
            combiner = Combiner(inputs, spec.chunk_combine)
            for rows in plan_batches([len(row) for row in inputs.rows], spec):
                token_rows = [inputs.rows[i] for i in rows]
                runner = runners[dealt % len(runners)]
                dealt += 1
                if pool is None:
                    yield finish(start, inputs, combiner, rows, runner(token_rows))
                    continue
                future = pool.submit(runner, token_rows)
                pending.append((start, inputs, combiner, rows, future))
                while len(pending) >= 2 * len(runners):
                    *head, future = pending.popleft()
                    yield finish(*head, future.result())
        while pending:
            *head, future = pending.popleft()
            yield finish(*head, future.result())
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
