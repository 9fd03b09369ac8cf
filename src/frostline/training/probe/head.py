"""The engine's side of the convex linear probe: which Linear a head-only plan on cached features can fit, and the
fit itself (the solver is :mod:`frostline.training.probe.logistic`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ...core.task import Task
from ...data.batching import Encoded
from ...models.heads import find_head
from ..cache import PrefixCache
from .logistic import ProbeFit, fit_probe, log_loss, probs
from .multilabel import bce, fit_multilabel_probe
from .ridge import fit_ridge_probe


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
                    task: Task | None = None, progress: Callable[[int, int], None] | None = None,
                    ) -> tuple[dict[str, Any], np.ndarray, float, ProbeFit]:
    """Fit the head on the cached features to convergence (a regression: ridge in closed form); returns the probe
    record, train predictions (classes, or values in the target's units) and the training loss. ``progress`` is
    :func:`~.logistic.fit_probe`'s ``progress(done, total)`` (single-label classification only)."""
    head = model.get_submodule(linear)
    if task is None or task.kind == "classification":  # read from the cache a chunk at a time, never whole
        rows, val_rows = prefix.feature_rows("train"), prefix.feature_rows("val")
        w, b, pfit = fit_probe(rows, train.ds.labels, val_rows, val.ds.labels, head.out_features,
                               progress=progress, spill_over=prefix.budget)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(w).to(head.weight))
            if head.bias is not None:
                head.bias.copy_(torch.from_numpy(b).to(head.bias))
        loss, _ = log_loss(rows, train.ds.labels, w, b)
        return pfit.to_dict(), probs(rows, w, b).argmax(axis=1), loss, pfit
    x_train, x_val = prefix.features("train"), prefix.features("val")
    if task.kind == "regression":
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
    if task.kind == "multilabel":
        y = np.asarray(train.ds.labels, np.float64)
        w, b, mfit = fit_multilabel_probe(x_train, y, x_val, np.asarray(val.ds.labels, np.float64))
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(w).to(head.weight))
            if head.bias is not None:
                head.bias.copy_(torch.from_numpy(b).to(head.bias))
        x = np.asarray(x_train, np.float64)
    return mfit.to_dict(), (x @ w.T + b > 0).astype(np.uint8), bce(x, y, w, b), mfit


class FitBar:
    """``progress(done, total)`` for the probe's fits (each C on each fold) on the engine's progress bars; the bar is
    completed by :meth:`finish` when the search over C stops early, past its minimum."""

    def __init__(self, progress: Callable[[str, int], Any] | None, description: str) -> None:
        self.progress, self.description = progress, description
        self.advance: Any = None
        self.done = self.total = 0

    def __call__(self, done: int, total: int) -> None:
        if self.advance is None and self.progress is not None:
            self.advance, self.total = self.progress(self.description, total), total
        if self.advance is not None:
            for _ in range(done - self.done):
                self.advance(float("nan"))  # no loss to show
        self.done = done

    def finish(self) -> None:
        """Complete the bar."""
        if self.advance is not None:
            self(self.total, self.total)


def probe_epoch(run: Any, ep: Any, progress: Callable[[str, int], Any] | None
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """The engine's epoch of a head-only plan on cached features (``run`` and ``ep``: its loop state): fit to
    convergence as the convex problem it is (L-BFGS / ridge), with a bar counting its fits."""
    assert run.prefix is not None and run.clock is not None
    bar = FitBar(progress, f"epoch {ep.index + 1} linear probe: fits (C x folds)")
    with run.clock("probe"), run.status(f"epoch {ep.index + 1}: fitting the linear probe"):
        ep.probe, train_preds, train_loss, pfit = fit_probe_epoch(run.model, ep.linear, run.prefix,
                                                                  run.train, run.val, run.task, bar)
    bar.finish()
    ep.cache_status += f"; {pfit.describe()}"
    if run.task.loss == "huber":  # the closed form is least squares: say so rather than record a loss it did not use
        ep.cache_status += "; the ridge probe minimises squared error (--loss huber applies to epochs trained by SGD)"
    return train_preds, run.train.ds.labels, train_loss
