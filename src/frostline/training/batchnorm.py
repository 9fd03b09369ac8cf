"""BatchNorm while fine-tuning: frozen in eval mode, trained, or re-estimated on the new data (``--bn``).

A pretrained CNN's BatchNorm layers hold running statistics of the data it was trained on. Fine-tuning can

* ``eval``: keep every BatchNorm layer in eval mode, trainable blocks included: it normalises with the pretrained
  statistics, which stay unchanged (checksummed); its weight and bias still train. Keras's fine-tuning guide advises
  this; it makes training and evaluation compute the same function.
* ``train``: PyTorch's default: batch statistics while training, running statistics updated with the layer's
  momentum. With a small momentum (EfficientNet's 0.01, TensorFlow's 0.99 convention) the running statistics lag
  the changing weights and the model scores far worse in eval mode than it trained (the ``train-eval-gap`` finding).
* ``reestimate``: as ``train``, then before each evaluation the running statistics of the trainable BatchNorm layers
  are recomputed on the training split (a cumulative average over one pass in eval mode otherwise, no gradient, no
  augmentation; "precise BN").

``auto`` is ``eval`` for a model with pretrained BatchNorm layers (measured on pretrained CNNs: docs/images.md),
``train`` when their running statistics were never updated (mean 0 and variance 1 everywhere: a model that was not
trained, whose eval-mode statistics would normalise nothing), and means nothing for a model without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..core.errors import FrostlineError, did_you_mean
from ..data.batching import Batch, Encoded
from ..freezing.plan import is_pinned, set_norm_statistics
from ..models.tree import has_running_stats

BN_MODES = ("auto", "eval", "train", "reestimate")


def check_bn(mode: Any) -> str:
    """``--bn``: one of :data:`BN_MODES`."""
    if mode not in BN_MODES:
        raise FrostlineError(f"--bn must be one of {', '.join(BN_MODES)}, got {mode!r}"
                             f"{did_you_mean(str(mode), BN_MODES)}")
    return str(mode)


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has normalisation layers with running statistics."""
    return any(has_running_stats(m) for m in model.modules())


def untouched_statistics(model: nn.Module) -> bool:
    """Whether every BatchNorm layer still holds its initial running statistics (mean 0, variance 1): a model that
    was never trained, or whose statistics were never saved."""
    norms = [m for m in model.modules() if has_running_stats(m)]
    return bool(norms) and all(
        m.running_mean is not None and m.running_var is not None
        and not m.running_mean.any() and bool(torch.all(m.running_var == 1)) for m in norms)


def resolve_bn(model: nn.Module, mode: str) -> str:
    """The BatchNorm mode a run uses (``"none"`` for a model without BatchNorm): ``auto`` becomes ``eval``, or
    ``train`` when the statistics were never updated (:func:`untouched_statistics`). Call it on the model as loaded,
    before a checkpoint is restored, so a resumed run decides as the first one did."""
    check_bn(mode)
    if not has_batchnorm(model):
        return "none"
    if mode != "auto":
        return mode
    return "train" if untouched_statistics(model) else "eval"


def apply_bn(model: nn.Module, mode: str) -> None:
    """Set the trainable BatchNorm layers' behaviour for ``mode`` (``"none"``: nothing to set)."""
    if mode != "none":
        set_norm_statistics(model, "eval" if mode == "eval" else "train")


def reestimate(model: nn.Module, data: Encoded, logits: Callable[[Batch, str], torch.Tensor], batch_size: int,
               device: torch.device) -> int:
    """Recompute the running statistics of the trainable (unpinned) BatchNorm layers on ``data`` (the training split,
    unshuffled, unaugmented): one pass, cumulative average. Returns how many layers were re-estimated.

    ``logits(batch, "train")`` runs the model (through the frozen-prefix cache when one is active).
    """
    norms = [m for m in model.modules() if has_running_stats(m) and not is_pinned(m)]
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass (each batch weighs the same)
            m.train()
        with torch.no_grad():
            for batch in data.batches(batch_size):
                logits(batch.to(device), "train")
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    return len(norms)
