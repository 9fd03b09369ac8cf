"""The engine's side of the convex linear probe: which Linear a head-only plan on cached features can fit, and the
fit itself (the solver is :mod:`frostline.probe`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .batching import Encoded
from .cache import PrefixCache
from .heads import find_head
from .probe import ProbeFit, fit_probe
from .probe import probs as probe_probs


def probe_target(model: nn.Module, plan_params: set[str], prefix: PrefixCache | None) -> str:
    """Module path of the Linear a convex probe can fit for this plan, or ``""`` with the reason logged."""
    if prefix is None or prefix.plan is None or prefix.plan.kind != "head" or not prefix.stores:
        return ""
    linear = find_head(model).linear
    module = model.get_submodule(linear)
    names = {f"{linear}.{n}" for n, _ in module.named_parameters()}
    return linear if isinstance(module, nn.Linear) and plan_params == names else ""


def fit_probe_epoch(model: nn.Module, linear: str, prefix: PrefixCache, train: Encoded, val: Encoded
                    ) -> tuple[dict[str, Any], np.ndarray, float, ProbeFit]:
    """Fit the head on the cached features to convergence; returns the probe record, train predictions and loss."""
    x_train, x_val = prefix.features("train"), prefix.features("val")
    k = model.get_submodule(linear).out_features
    w, b, pfit = fit_probe(x_train, train.ds.labels, x_val, val.ds.labels, k)
    head = model.get_submodule(linear)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(w).to(head.weight))
        if head.bias is not None:
            head.bias.copy_(torch.from_numpy(b).to(head.bias))
    p = probe_probs(x_train, w, b)
    y = train.ds.labels
    loss = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None)).mean())
    return pfit.to_dict(), p.argmax(axis=1), loss, pfit
