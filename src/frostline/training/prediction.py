"""One pass of a model over encoded data in eval mode: probabilities, labels and per-sample losses."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.errors import FrostlineError
from ..core.task import Task
from ..data.batching import Batch, Encoded
from ..evaluation.predictions import Predictions
from ..models.outputs import logits_of
from .head_inputs import Capture, HeadInputs


def forward(model: nn.Module, inputs: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """Call ``model`` on a batch's inputs and return logits."""
    return logits_of(model(**inputs) if isinstance(inputs, dict) else model(inputs))


def default_task(data: Encoded, task: Task | None) -> Task:
    """``task``, or classification for classification data; other tasks must be given (a regression's outputs
    are read with its training targets' mean and standard deviation)."""
    if task is not None:
        if task.kind != data.ds.task:
            raise FrostlineError(f"the data is {data.ds.task} but the run is {task.kind}")
        return task
    if data.ds.task != "classification":
        raise FrostlineError(f"{data.ds.task} data needs its run's task (Task.for_targets on the training targets)")
    return Task()


@torch.no_grad()
def predict(model: nn.Module, data: Encoded, batch_size: int = 128, fabric: Any = None,
            forward_fn: Callable[[Batch], torch.Tensor] | None = None, task: Task | None = None,
            dist: Any = None, reuse: HeadInputs | None = None) -> Predictions:
    """Outputs for every sample of ``data`` in eval mode (order of the dataset): class probabilities, values or
    per-label probabilities as ``task`` says (default: classification).

    ``forward_fn(batch)`` replaces the plain forward pass (the engine passes the cached path). With ``dist`` (a
    :class:`frostline.training.distributed.Dist`), batch ``i`` runs on rank ``i % world`` and every rank gets
    all predictions back, gathered: the same as one process predicting all of them. With ``reuse`` (one process,
    plain forward) the head runs alone on its inputs from an earlier pass while the body is unchanged, and a full
    pass keeps them for the next (:mod:`frostline.training.head_inputs`).
    """
    task = default_task(data, task)
    was_training = model.training
    model.eval()
    device = fabric.device if fabric is not None else next(model.parameters()).device
    probs, labels, positions, losses = [], [], [], []
    reuse = reuse if dist is None and forward_fn is None else None
    kept = reuse.lookup(data) if reuse is not None else None
    capture = reuse.capture() if reuse is not None and kept is None else nullcontext()
    with capture:
        for i, batch in enumerate(data.batches(batch_size, snug=True)):
            if dist is not None and i % dist.world != dist.rank:
                continue
            batch = batch.to(device)
            if kept is not None:
                logits = reuse.logits(kept[torch.as_tensor(batch.positions)].to(device)).float()
            else:
                logits = (forward_fn(batch) if forward_fn is not None else forward(model, batch.inputs)).float()
                if isinstance(capture, Capture):
                    capture.batch(batch.positions, logits)
            losses.append(task.loss_fn(logits, batch.labels, reduction="none").cpu().numpy())
            probs.append(task.transform(logits).cpu().numpy())
            labels.append(np.asarray(data.ds.labels)[batch.positions])  # as read: float64 values, uint8 sets
            positions.append(batch.positions)
    if isinstance(capture, Capture):
        reuse.keep(data, capture)
    model.train(was_training)
    if dist is not None:
        parts = dist.gather((probs, labels, positions, losses))
        probs, labels, positions, losses = ([x for p in parts for x in p[j]] for j in range(4))
    if not probs:
        k = task.outputs(data.ds.label_names)
        return Predictions(np.zeros((0, k)), np.asarray(data.ds.labels)[:0], np.zeros(0, np.int64), 0.0,
                           np.zeros(0), task.kind)
    order = np.argsort(np.concatenate(positions))  # back to dataset order
    per_sample = np.concatenate(losses)[order].astype(np.float64)
    return Predictions(np.concatenate(probs)[order], np.concatenate(labels)[order],
                       np.concatenate(positions)[order], float(per_sample.mean()), per_sample, task.kind)
