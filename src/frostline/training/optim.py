"""Optimizers over trainable parameters only, with no weight decay on biases and norms."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..core.errors import FrostlineError, did_you_mean
from ..freezing.check import check_model, raise_on_errors

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def _no_decay(name: str, p: torch.Tensor) -> bool:
    return p.ndim <= 1 or name.endswith(".bias")


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    names: Iterable[str] | None = None,
    label: str = "params",
) -> list[dict[str, Any]]:
    """Parameter groups holding trainable parameters only.

    Biases and 1-D tensors (norm weights) go in a group without weight decay.

    Args:
        model: The model.
        lr: Learning rate of the groups.
        weight_decay: Weight decay of the decayed group.
        names: Restrict to these parameter names (e.g. one block, for layer-wise learning rates).
        label: Name stored in each group's ``"name"`` key (``label`` and ``label/no_decay``).

    Returns:
        Zero, one or two groups (empty groups are left out).
    """
    wanted = set(names) if names is not None else None
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad or (wanted is not None and n not in wanted):
            continue
        (no_decay if _no_decay(n, p) else decay).append(p)
    groups = [
        {"params": decay, "lr": lr, "weight_decay": weight_decay, "name": label},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": f"{label}/no_decay"},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(
    model: nn.Module,
    name: str = "adamw",
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """Build an optimizer over the model's trainable parameters after checking for freezing mistakes.

    Args:
        model: The model, already frozen as wanted.
        name: ``"adamw"``, ``"adam"`` or ``"sgd"``.
        lr: Learning rate.
        weight_decay: Weight decay (not applied to biases and norm weights).
        **kwargs: Passed to the optimizer (e.g. ``momentum=0.9`` for SGD).

    Raises:
        FrostlineError: Unknown optimizer, bad learning rate, or a freezing mistake such as nothing trainable.
    """
    key = name.lower()
    if key not in OPTIMIZERS:
        raise FrostlineError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}"
                             f"{did_you_mean(key, OPTIMIZERS)}")
    if not lr > 0:
        raise FrostlineError(f"learning rate must be > 0, got {lr!r}")
    if weight_decay < 0:
        raise FrostlineError(f"weight_decay must be >= 0, got {weight_decay!r}")
    raise_on_errors(check_model(model))
    return OPTIMIZERS[key](param_groups(model, lr, weight_decay), lr=lr, **kwargs)
