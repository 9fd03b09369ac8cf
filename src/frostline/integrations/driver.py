"""What both callbacks do, loop-independent: apply a frostline strategy (or selectors) epoch by epoch, say which
parameters became trainable and at what learning rate, checksum what each plan froze and verify it when the plan
ends, and collect the freezing audit."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..core.errors import FrostlineError
from ..core.findings import Finding
from ..freezing.check import check_model
from ..freezing.plan import freeze, set_trainable
from ..freezing.verify import Snapshot, snapshot, verify_frozen
from ..models.parts import model_parts
from ..training.plans import EpochPlan, Group
from ..training.strategies import parse_strategy

log = logging.getLogger("frostline")


@dataclass
class PlanDriver:
    """Drives one model's freezing through a run of someone else's loop.

    Args:
        model: The model the plan names parameters of.
        strategy: A frostline strategy (``gradual``, ``partial:2``, ``lp-ft:1``, ``discriminative``, ...); strategies
            that decide from scores or gradients on the data (``surgical:auto``, ``mask:fisher``, ``auto-freeze``)
            need ``frostline train``.
        freeze: Selectors to freeze instead of a strategy (``["all"]``, ``["embeddings", "encoder.layer.0"]``).
        except_: Selectors kept trainable with ``freeze``.
        lr: Learning rate of body parameters a strategy unfreezes.
        head_lr: Learning rate of the head.
        verify: Checksum frozen tensors when a plan starts and verify them when it ends.
    """

    model: nn.Module
    strategy: str | None = None
    freeze: Sequence[str] | None = None
    except_: Sequence[str] | None = None
    lr: float = 1e-4
    head_lr: float = 1e-2
    verify: bool = True
    epochs: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    _current: set[str] | None = None
    _snap: Snapshot | None = None

    def __post_init__(self) -> None:
        if self.strategy is not None and self.freeze is not None:
            raise FrostlineError("give a strategy or freeze selectors, not both")
        self._strategy = None
        if self.freeze is None:
            self._strategy = parse_strategy(self.strategy or "full", self.model)
            automatic = (self._strategy.needs_data and not self._strategy.ready) or self._strategy.watches_gradients
            if automatic:
                raise FrostlineError(f"strategy {self.strategy!r} decides from the model's scores or gradients on "
                                     "the training data, which only frostline's own loop measures; "
                                     "in a callback use a strategy that plans by epoch (full, partial:N, gradual, "
                                     "discriminative, lp-ft, surgical:SELECTOR) or frostline train")
        self._parts = model_parts(self.model)

    def plan(self, epoch: int) -> EpochPlan | None:
        """The strategy's plan for ``epoch`` (0-based); ``None`` for a fixed freeze."""
        return self._strategy.plan(epoch, self._parts, self.lr, self.head_lr) if self._strategy else None

    def start(self) -> list[Finding]:
        """Freeze for the first epoch (before the optimizer is built); returns the freezing audit's findings."""
        if self._strategy is None:
            freeze(self.model, *list(self.freeze or ["all"]), except_=list(self.except_ or []) or None)
            self._current = {n for n, p in self.model.named_parameters() if p.requires_grad}
        else:
            plan = self.plan(0)
            assert plan is not None
            set_trainable(self.model, plan.params)
            self._current = set(plan.params)
        self.findings = list(check_model(self.model))
        for finding in self.findings:
            log.warning("%s", finding)
        if self.verify:
            self._snap = snapshot(self.model)
        return self.findings

    def enter(self, epoch: int) -> list[Group]:
        """Apply ``epoch``'s plan; the groups of parameters that train from now on (to add to the optimizer)."""
        plan = self.plan(epoch)
        if self._current is None:
            self.start()
        record: dict[str, Any] = {"epoch": epoch + 1, "plan": plan.note if plan else "fixed freeze", "added": [],
                                  "verified": 0}
        if plan is None or plan.params == self._current:
            self.epochs.append(record)
            return []
        record["verified"] = self._check()  # the plan that ends: its frozen tensors must not have moved
        previous = self._current or set()
        set_trainable(self.model, plan.params)
        self._current = set(plan.params)
        added = [Group(g.name, tuple(p for p in g.params if p not in previous), g.lr) for g in plan.groups]
        added = [g for g in added if g.params]
        record["added"] = [g.name for g in added]
        self.epochs.append(record)
        if self.verify:
            self._snap = snapshot(self.model)
        return added

    def finish(self) -> dict[str, Any]:
        """Verify the last plan's frozen tensors; what happened, as a JSON-ready summary."""
        verified = self._check()
        if self.epochs:
            self.epochs[-1]["verified"] += verified
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in self.model.parameters())
        return {"strategy": self.strategy, "freeze": list(self.freeze) if self.freeze else None,
                "epochs": self.epochs, "trainable": trainable, "total": total,
                "findings": [f.to_dict() for f in self.findings]}

    def _check(self) -> int:
        if not self.verify or self._snap is None:
            return 0
        checked = verify_frozen(self.model, self._snap).checked  # raises FrozenChangedError naming the tensor
        self._snap = None
        return checked

    def parameters(self, group: Group) -> list[nn.Parameter]:
        """The parameter objects of ``group``."""
        named = dict(self.model.named_parameters())
        return [named[n] for n in group.params]
