"""The engine's side of the convex linear probe: which Linear a head-only plan on cached features can fit, and the
fit itself (the solver is :mod:`frostline.training.probe`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.task import Task
from ..data.batching import Encoded
from ..models.heads import find_head
from .cache import PrefixCache
from .probe import ProbeFit, fit_probe, log_loss, probs
from .probe_multilabel import bce, fit_multilabel_probe
from .probe_ridge import fit_ridge_probe


def probe_target(model: nn.Module, plan_params: set[str], prefix: PrefixCache | None) -> str:
    """Module path of the Linear a convex probe can fit for this plan, or ``""`` (no head cache, or the plan trains
    more than one Linear)."""
    if prefix is None or prefix.plan is None or prefix.plan.kind != "head" or not prefix.stores:
        return ""
    linear = find_head(model).linear
    module = model.get_submodule(linear)
    names = {f"{linear}.{n}" for n, _ in module.named_parameters()}
    return linear if isinstance(module, nn.Linear) and plan_params == names else ""


def fit_probe_epoch(model: nn.Module, linear: str, prefix: PrefixCache, train: Encoded, val: Encoded,
                    task: Task | None = None) -> tuple[dict[str, Any], np.ndarray, float, ProbeFit]:
    """Fit the head on the cached features to convergence (a regression: ridge in closed form); returns the probe
    record, train predictions (classes, or values in the target's units) and the training loss."""
    x_train, x_val = prefix.features("train"), prefix.features("val")
    head = model.get_submodule(linear)
    if task is not None and task.kind == "regression":
        z, zv = ((np.asarray(d.ds.labels, np.float64) - task.mean) / task.std for d in (train, val))
        w1, b1, rfit = fit_ridge_probe(x_train, z, x_val, zv)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(w1[None, :]).to(head.weight))
            if head.bias is not None:
                head.bias.fill_(b1)
        pred = np.asarray(x_train, np.float64) @ w1 + b1
        loss = float(((pred - z) ** 2).mean()) if task.loss == "mse" else float(
            torch.nn.functional.huber_loss(torch.from_numpy(pred), torch.from_numpy(z)))
        return rfit.to_dict(), pred * task.std + task.mean, loss, rfit
    if task is not None and task.kind == "multilabel":
        y = np.asarray(train.ds.labels, np.float64)
        w, b, mfit = fit_multilabel_probe(x_train, y, x_val, np.asarray(val.ds.labels, np.float64))
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(w).to(head.weight))
            if head.bias is not None:
                head.bias.copy_(torch.from_numpy(b).to(head.bias))
        x = np.asarray(x_train, np.float64)
        return mfit.to_dict(), (x @ w.T + b > 0).astype(np.uint8), bce(x, y, w, b), mfit
    w, b, pfit = fit_probe(x_train, train.ds.labels, x_val, val.ds.labels, head.out_features)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w).to(head.weight))
        if head.bias is not None:
            head.bias.copy_(torch.from_numpy(b).to(head.bias))
    loss, _ = log_loss(x_train, train.ds.labels, w, b)
    return pfit.to_dict(), probs(x_train, w, b).argmax(axis=1), loss, pfit
