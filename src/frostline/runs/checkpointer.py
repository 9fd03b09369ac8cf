"""The bridge between the training loop and the run folder: one atomic checkpoint per epoch, resume from the newest
complete one, and the best epoch's weights for the final scoring."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.atomic import writes
from ..evaluation.metrics import headline
from ..training.records import EpochRecord, Resume
from ..training.schedule import PlanOptimizer
from . import checkpoint
from .identity import apply_tensors, changed_tensors


class Checkpointer:
    """Writes ``checkpoints/epoch-N`` after each epoch and reads the newest one back.

    Args:
        run: The run folder.
        model: The model being trained.
        initial: Its starting state (base model with the new head): checkpoints hold only what differs from it.
        head: The head's module name (always stored: its starting values are random).
        extra_state: Fixed entries of each checkpoint's state.json (label names, head, model record).
        log: Where to write one line per epoch.
    """

    def __init__(self, run: Path, model: nn.Module, initial: dict[str, torch.Tensor], head: str,
                 extra_state: dict[str, Any], log: Callable[[str], None]) -> None:
        self.run, self.model, self.initial, self.head = run, model, initial, head
        self.extra_state, self.log = extra_state, log
        self.latest: checkpoint.Checkpoint | None = None
        self.history: list[dict[str, Any]] = []
        self.losses: dict[str, np.ndarray | None] = {"prev": None, "best": None}

    def resume(self) -> tuple[Resume | None, list[str]]:
        """Load the newest complete checkpoint into the model; where to continue and notes on damaged ones."""
        ckpt, notes = checkpoint.latest(self.run)
        self.latest = ckpt
        if ckpt is None:
            return None, notes
        state, extra = ckpt.state, ckpt.extra()
        self.model.load_state_dict(self.initial)
        apply_tensors(self.model, ckpt.tensors("last"), str(ckpt.path / "last.safetensors"))
        losses = {k: v.numpy() for k, v in extra.get("val_losses", {}).items()}
        self.losses = {"prev": losses.get("prev"), "best": losses.get("best")}
        self.history = list(state["history"])
        return Resume(state["epoch"], state["step"], list(state["history"]), state["best_epoch"],
                      state["best_val_loss"], extra["optimizer"], extra["rng"], prev_losses=losses.get("prev"),
                      best_losses=losses.get("best"), ending=state.get("ending"),
                      frozen_snapshot=state.get("frozen_snapshot")), notes

    def on_epoch_end(self, record: EpochRecord, is_best: bool, popt: PlanOptimizer, step: int,
                     ending: str | None) -> None:
        """The engine's callback: write this epoch's checkpoint as one unit."""
        if is_best:
            self.losses["best"] = record.val_losses
        self.losses["prev"] = record.val_losses
        self.history.append(record.to_dict())
        best = min(self.history, key=lambda h: h["val"]["loss"])
        last = changed_tensors(self.model, self.initial, self.head)
        assert popt.optimizer is not None
        extra = {"optimizer": popt.optimizer.state_dict(), "rng": torch.get_rng_state(),
                 "val_losses": {k: torch.from_numpy(v) for k, v in self.losses.items() if v is not None}}
        state = {"step": step, "history": self.history, "best_epoch": best["epoch"],
                 "best_val_loss": best["val"]["loss"], "ending": ending, "frozen_snapshot": record.frozen_snapshot,
                 **self.extra_state}
        if not writes():  # a distributed run's other ranks: rank 0 writes, they read it back (load_best)
            return
        self.latest = checkpoint.write(self.run, record.epoch, last, last if is_best else None, extra, state,
                                       self.latest)
        score = ", ".join(f"val {k} {v:.4f}" for k, v in headline(record.val).items() if k != "loss" and v is not None)
        self.log(f"epoch {record.epoch}: {record.plan}, train loss {record.train['loss']:.4f}, val loss "
                 f"{record.val['loss']:.4f}, {score}, {record.seconds:.1f}s{' (best)' if is_best else ''}; "
                 f"{record.cache}")

    def load_best(self) -> dict[str, torch.Tensor]:
        """Put the best epoch's weights in the model; returns its changed tensors (for model.safetensors)."""
        assert self.latest is not None, "no checkpoint: training ran no epoch"
        best = self.latest.tensors("best")
        self.model.load_state_dict(self.initial)
        apply_tensors(self.model, best, str(self.latest.path / "best.safetensors"))
        return best
