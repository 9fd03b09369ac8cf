"""Continuing an interrupted fit: the engine's state put back from a :class:`~frostline.training.records.Resume`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..freezing.verify import Snapshot
from .records import Resume


def restore_run(run: Any, resume: Resume) -> None:
    """Continue an interrupted run: history, step, optimizer and RNG state, the plan running at the crash."""
    config = run.config
    run.history, run.best_epoch, run.best_loss = list(resume.history), resume.best_epoch, resume.best_loss
    run.step, run.start = resume.step, resume.next_epoch
    run.strategy.restore(run.history)  # decisions of an automatic strategy, before its plans are replayed
    for e in range(run.start):  # replay plans so the optimizer's groups come back in the same order
        run.popt.apply(run.plan_at(e), e * run.steps_per_epoch)
    if run.popt.optimizer is not None and resume.optimizer_state is not None:
        run.popt.optimizer.load_state_dict(resume.optimizer_state)
    if resume.rng_state is not None:
        torch.set_rng_state(resume.rng_state)
    if run.history and run.history[-1].get("probe"):
        run.probe_done = run.plan_at(int(run.history[-1]["epoch"]) - 1).params
    run.ending = resume.ending
    if resume.ending is not None:  # training had finished; only the final scoring was left
        run.start = config.epochs
    if run.history:
        losses = [h["val"]["loss"] for h in run.history]
        run.bad_epochs = len(losses) - 1 - int(np.argmin(losses))
    if resume.frozen_snapshot:  # the plan running at the crash: its checksums still hold
        run.snap = Snapshot(dict(resume.frozen_snapshot["digests"]), int(resume.frozen_snapshot["elements"]))
        run.snap_plan = tuple(resume.frozen_snapshot["plan"])
    run.best_losses, run.prev_losses = resume.best_losses, resume.prev_losses
