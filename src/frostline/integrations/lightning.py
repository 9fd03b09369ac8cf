"""frostline's freezing inside the Lightning ``Trainer``: :class:`FrostlineFinetuning`, a ``BaseFinetuning``
callback.

    trainer = Trainer(callbacks=[FrostlineFinetuning("gradual", attr="model", lr=1e-4, head_lr=1e-2)])

It freezes before the optimizer is configured (``configure_optimizers`` should pass only parameters that require
a gradient, as with any ``BaseFinetuning``), adds a parameter group when the strategy unfreezes more, keeps frozen
BatchNorm and dropout in eval mode through ``model.train()``, checksums what each plan froze and verifies it when
the plan ends (a changed tensor stops the run with ``FrozenChangedError``), and logs the freezing audit. After
``fit``, :attr:`FrostlineFinetuning.report` says what happened per epoch.

Needs ``lightning`` or ``pytorch-lightning`` (either is used, ``lightning`` first).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

from torch import nn

from ..core.errors import FrostlineError
from .driver import PlanDriver

if importlib.util.find_spec("lightning") is not None:
    from lightning.pytorch.callbacks import BaseFinetuning
elif importlib.util.find_spec("pytorch_lightning") is not None:
    from pytorch_lightning.callbacks import BaseFinetuning
else:  # pragma: no cover - depends on what is installed
    raise FrostlineError("frostline.integrations.lightning needs Lightning: pip install lightning "
                         "(or pytorch-lightning)")

__all__ = ["FrostlineFinetuning"]


class FrostlineFinetuning(BaseFinetuning):
    """Apply a frostline strategy (or freeze selectors) to a ``LightningModule``.

    Args:
        strategy: A frostline strategy that plans by epoch: ``full``, ``partial:N``, ``gradual``, ``discriminative``,
            ``lp-ft[:K]``, ``surgical:SELECTOR`` (default ``full``).
        freeze: Selectors to freeze instead (``["all"]``, ``["embeddings", "encoder.layer.0"]``); fixed for the run.
        except_: Selectors kept trainable with ``freeze``.
        attr: The attribute of the LightningModule that holds the model (``"model"``); ``None``: the module itself.
        lr: Learning rate of the body parameters the strategy unfreezes.
        head_lr: Learning rate of the head when it is added (a strategy whose first plan omits it).
        verify: Checksum and verify frozen tensors.
    """

    def __init__(self, strategy: str | None = None, *, freeze: Sequence[str] | None = None,
                 except_: Sequence[str] | None = None, attr: str | None = None, lr: float = 1e-4,
                 head_lr: float = 1e-2, verify: bool = True) -> None:
        super().__init__()
        self.strategy, self.freeze_selectors, self.except_ = strategy, freeze, except_
        self.attr, self.lr, self.head_lr, self.verify = attr, lr, head_lr, verify
        self.driver: PlanDriver | None = None
        self.report: dict[str, Any] | None = None

    def _model(self, pl_module: nn.Module) -> nn.Module:
        if self.attr is None:
            return pl_module
        model = getattr(pl_module, self.attr, None)
        if not isinstance(model, nn.Module):
            names = [n for n, _ in pl_module.named_children()]
            raise FrostlineError(f"the LightningModule has no module attribute {self.attr!r}; its modules: "
                                 f"{', '.join(names) or 'none'}")
        return model

    def freeze_before_training(self, pl_module: Any) -> None:
        """Freeze for the first epoch and run the freezing audit (Lightning calls this in ``setup``)."""
        model = self._model(pl_module)
        if not model.training:  # from_pretrained leaves a model in eval mode, and Lightning keeps submodule modes
            model.train()
            pl_module.print("frostline: the model was in eval mode (as from_pretrained leaves it): set to train mode; "
                            "its frozen parts stay pinned in eval mode")
        self.driver = PlanDriver(model, self.strategy, self.freeze_selectors, self.except_, self.lr, self.head_lr,
                                 self.verify)
        for finding in self.driver.start():
            pl_module.print(f"frostline: {finding}")

    def finetune_function(self, pl_module: Any, epoch: int, optimizer: Any) -> None:
        """Apply the epoch's plan; newly trainable parameters join the optimizer at the plan's learning rate."""
        assert self.driver is not None
        added, already = [], []
        for group in self.driver.enter(epoch):
            params = [p for p in self.driver.parameters(group) if not _in_optimizer(optimizer, p)]
            if params:
                optimizer.add_param_group({"params": params, "lr": group.lr, "initial_lr": group.lr})
                added.append(group.name)
                pl_module.print(f"frostline: epoch {epoch + 1}: {group.name} trains at lr {group.lr:g} "
                                f"({sum(p.numel() for p in params):,} parameters)")
            else:
                already.append(group.name)
        if self.driver.epochs:
            self.driver.epochs[-1].update(added=added, already_in_optimizer=already)
        if already:
            pl_module.print(f"frostline: epoch {epoch + 1}: {', '.join(already)} unfroze, but its parameters were "
                            "already in the optimizer (configure_optimizers passed frozen parameters): they train at "
                            "that group's learning rate, not the plan's; pass only parameters that require a "
                            "gradient")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """The freezing audit again, now with the optimizer (frozen parameters in it, missing trainable ones)."""
        super().on_train_start(trainer, pl_module)
        if self.driver is None or not trainer.optimizers:
            return
        from ..freezing.check import check_model

        known = {f.message for f in self.driver.findings}
        for finding in check_model(self.driver.model, trainer.optimizers[0]):
            if finding.message not in known:
                self.driver.findings.append(finding)
                pl_module.print(f"frostline: {finding}")

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Verify the last plan's frozen tensors and keep the report."""
        if self.driver is not None:
            self.report = self.driver.finish()
            verified = sum(e["verified"] for e in self.report["epochs"])
            pl_module.print(f"frostline: {verified} frozen tensors verified unchanged; "
                            f"{len(self.report['findings'])} audit findings")


def _in_optimizer(optimizer: Any, p: nn.Parameter) -> bool:
    return any(p is q for g in optimizer.param_groups for q in g["params"])
