"""One pass of a model over encoded data in eval mode: probabilities, labels and per-sample losses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.batching import Batch, Encoded
from ..evaluation.predictions import Predictions
from ..models.outputs import logits_of


def forward(model: nn.Module, inputs: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """Call ``model`` on a batch's inputs and return logits."""
    return logits_of(model(**inputs) if isinstance(inputs, dict) else model(inputs))


@torch.no_grad()
def predict(model: nn.Module, data: Encoded, batch_size: int = 128, fabric: Any = None,
            forward_fn: Callable[[Batch], torch.Tensor] | None = None) -> Predictions:
    """Probabilities for every sample of ``data`` in eval mode (order of the dataset).

    ``forward_fn(batch)`` replaces the plain forward pass (the engine passes the cached path).
    """
    was_training = model.training
    model.eval()
    device = fabric.device if fabric is not None else next(model.parameters()).device
    probs, labels, positions, losses = [], [], [], []
    for batch in data.batches(batch_size):
        batch = batch.to(device)
        logits = (forward_fn(batch) if forward_fn is not None else forward(model, batch.inputs)).float()
        losses.append(nn.functional.cross_entropy(logits, batch.labels, reduction="none").cpu().numpy())
        probs.append(torch.softmax(logits, dim=-1).cpu().numpy())
        labels.append(batch.labels.cpu().numpy())
        positions.append(batch.positions)
    model.train(was_training)
    if not probs:
        k = len(data.ds.label_names)
        return Predictions(np.zeros((0, k)), np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0, np.zeros(0))
    order = np.argsort(np.concatenate(positions))  # back to dataset order
    per_sample = np.concatenate(losses)[order].astype(np.float64)
    return Predictions(np.concatenate(probs)[order], np.concatenate(labels)[order],
                       np.concatenate(positions)[order], float(per_sample.mean()), per_sample)
