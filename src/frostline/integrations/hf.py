"""frostline's freezing inside the Hugging Face ``Trainer``: :class:`FrostlineCallback`.

    trainer = Trainer(model, args, train_dataset=..., callbacks=[FrostlineCallback("gradual", head_lr=1e-3)])

It freezes when the Trainer is built (``on_init_end``, before the Trainer creates its optimizer, which takes only
parameters that require a gradient), applies the strategy's plan at every epoch start (newly trainable
parameters join the optimizer, and the learning-rate schedule, at the plan's rate), keeps frozen BatchNorm and
dropout in eval mode, checksums what each plan froze and verifies it when the plan ends (a changed tensor stops
the run with ``FrostlineError``), and logs the freezing audit. After ``train()``, :attr:`FrostlineCallback.report`
says what happened per epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from .driver import PlanDriver

__all__ = ["FrostlineCallback"]

log = logging.getLogger("frostline")


class FrostlineCallback(TrainerCallback):
    """Apply a frostline strategy (or freeze selectors) to the model of a ``transformers.Trainer``.

    Args:
        strategy: A frostline strategy that plans by epoch (``full``, ``partial:N``, ``gradual``, ``discriminative``,
            ``lp-ft[:K]``, ``surgical:SELECTOR``; default ``full``).
        freeze: Selectors to freeze instead; fixed for the run.
        except_: Selectors kept trainable with ``freeze``.
        lr: Learning rate of body parameters the strategy unfreezes (default: the Trainer's ``learning_rate``).
        head_lr: Learning rate of the head when it is added later (default: the same).
        verify: Checksum and verify frozen tensors.
    """

    def __init__(self, strategy: str | None = None, *, freeze: Sequence[str] | None = None,
                 except_: Sequence[str] | None = None, lr: float | None = None, head_lr: float | None = None,
                 verify: bool = True) -> None:
        self.strategy, self.freeze, self.except_ = strategy, freeze, except_
        self.lr, self.head_lr, self.verify = lr, head_lr, verify
        self.driver: PlanDriver | None = None
        self.report: dict[str, Any] | None = None

    def on_init_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """Freeze for the first epoch, before the Trainer builds its optimizer."""
        lr = self.lr if self.lr is not None else args.learning_rate
        self.driver = PlanDriver(model, self.strategy, self.freeze, self.except_, lr,
                                 self.head_lr if self.head_lr is not None else lr, self.verify)
        for finding in self.driver.start():
            log.warning("%s", finding)

    def on_epoch_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, lr_scheduler: Any = None,
                       **kwargs: Any) -> None:
        """Apply the epoch's plan; what it unfreezes joins the optimizer and the schedule."""
        assert self.driver is not None
        epoch = round(state.epoch or 0)
        added: list[str] = []
        for group in self.driver.enter(epoch):
            have = {id(p) for g in optimizer.param_groups for p in g["params"]}
            params = [p for p in self.driver.parameters(group) if id(p) not in have]
            if not params:
                continue
            # as the Trainer's own groups: weight decay on matrices only, none on biases and norms
            for decay, chosen in ((args.weight_decay, [p for p in params if p.dim() >= 2]),
                                  (0.0, [p for p in params if p.dim() < 2])):
                if not chosen:
                    continue
                optimizer.add_param_group({"params": chosen, "lr": group.lr, "initial_lr": group.lr,
                                           "weight_decay": decay})
                if lr_scheduler is not None and hasattr(lr_scheduler, "lr_lambdas"):  # LambdaLR: same schedule
                    lr_scheduler.lr_lambdas.append(lr_scheduler.lr_lambdas[-1])
                    lr_scheduler.base_lrs.append(group.lr)
                    optimizer.param_groups[-1]["lr"] = group.lr * lr_scheduler.lr_lambdas[-1](lr_scheduler.last_epoch)
            added.append(group.name)
            log.info("epoch %d: %s trains at lr %g (%d parameters)", epoch + 1, group.name, group.lr,
                     sum(p.numel() for p in params))
        if self.driver.epochs:
            self.driver.epochs[-1]["added"] = added

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Verify the last plan's frozen tensors and keep the report."""
        if self.driver is not None:
            self.report = self.driver.finish()
            verified = sum(e["verified"] for e in self.report["epochs"])
            log.info("%d frozen tensors verified unchanged; %d audit findings", verified,
                     len(self.report["findings"]))
