"""The training loop, explicit and in one place, on Lightning Fabric (CPU, one GPU, bf16 where supported).

:func:`fit` reads as the loop it is; each step is a function below it:

1. :func:`_set_up`: device, precision, the first plan's optimizer, an interrupted run's state, the prefix cache.
2. per epoch, :func:`_enter_plan`: apply the strategy's plan (freeze, pin, grow the optimizer), checksum what is
   frozen when a plan starts, make the cache match the plan.
3. :func:`_train_epoch`, the hot loop (forward, loss, backward, clip, step), or :func:`_probe_epoch` (convex head).
4. :func:`_evaluate`: validation predictions and metrics.
5. :func:`_close_epoch`: verify the frozen tensors when the plan ends, keep the best weights by validation loss,
   decide whether to stop (early stop, converged probe), and build the epoch's record for the checkpoint.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.task import Task
from ..data.batching import Batch, Encoded
from ..evaluation.metrics import paired_change
from ..evaluation.predictions import Predictions
from ..freezing.check import check_model
from ..freezing.masks import trainable_count
from ..freezing.plan import set_trainable
from ..freezing.verify import Snapshot, snapshot, verify_frozen
from ..models.blocks import discover_blocks
from ..models.heads import find_head
from ..models.outputs import logits_of
from ..models.parts import Part, model_parts
from . import records
from .batchnorm import apply_bn, reestimate, resolve_bn
from .bestweights import BestState
from .cache import PrefixCache
from .distributed import Dist, current, gather_epoch, shard
from .dropout import FastDropout
from .fabric import make_fabric, rewrap
from .prediction import predict
from .probe.head import probe_epoch, probe_target
from .records import EpochRecord, FitResult, NonFiniteLoss, Resume, Status, TrainConfig, epoch_metrics, non_finite
from .restore import restore_run
from .schedule import LRSchedule, PlanOptimizer
from .strategies import EpochPlan, Strategy
from .timing import Clock

log = logging.getLogger("frostline")
EpochEnd = Callable[[EpochRecord, bool, PlanOptimizer, int, str | None], None]


def fit(model: nn.Module, train: Encoded, val: Encoded, strategy: Strategy, config: TrainConfig, *,
        on_epoch_end: EpochEnd | None = None, resume: Resume | None = None,
        progress: Callable[[str, int], Any] | None = None, status: Status | None = None,
        task: Task | None = None) -> FitResult:
    """Fine-tune ``model`` with ``strategy``.

    A head-only plan on cached features (a linear probe) is convex: with ``config.probe`` ``auto`` or ``lbfgs``
    it is fit to convergence in its first epoch (:mod:`frostline.training.probe`) and later epochs of the same
    plan are skipped (they could not improve it); ``sgd`` trains it for the epochs like any other plan.

    Args:
        model: The model (head already replaced).
        train: Training data.
        val: Validation data (early stopping and best checkpoint by its loss).
        strategy: What trains when.
        config: Loop settings.
        on_epoch_end: Called with (record, is_best, optimizer, step, ending) after each epoch (checkpointing);
            ``ending`` is ``"last"``, ``"early-stop"`` or ``"converged"`` when training ends with this epoch.
        resume: State of an interrupted run to continue.
        progress: Factory of a progress callback: ``progress(description, total)`` returns ``advance(mean_loss)``.
        status: ``status(message)`` returns a context manager shown around slow steps (cache build, probe fit).
        task: What the model predicts, its loss and (regression) target scaling; default: from the training data.

    Raises:
        NonFiniteLoss: A training step or the validation loss gave NaN / inf (named with epoch, step and the
            learning rates); the step is not applied.

    Returns:
        A :class:`FitResult`; epochs count from 1 (``history[].epoch``, ``best_epoch``). With ``config.restore_best``
        the best epoch's weights are loaded back into ``model`` and ``best_state`` holds the best epoch's values of
        every tensor training could change; without it the model keeps the last epoch's weights, no copy held.
    """
    config.validate()
    owns_setup = strategy.needs_data and not strategy.ready  # scored here, on the weights it is given
    task = task or Task.for_targets(train.ds.task, train.ds.labels)
    run = _set_up(model, train, val, strategy, config, resume, status or (lambda _msg: nullcontext()), task)
    try:
        for epoch in range(run.start, config.epochs):
            ep = _enter_plan(run, epoch)
            if ep is None:
                continue
            with ep.active:
                trained = probe_epoch(run, ep, progress) if ep.linear else _train_epoch(run, ep, progress)
                if run.bn == "reestimate" and not ep.linear:
                    with run.clock("bn"):  # type: ignore[misc]
                        n = reestimate(model, train, run.logits, config.eval_batch_size, run.fabric.device)
                    ep.cache_status += f"; BatchNorm statistics re-estimated on the training split ({n} layers)"
                val_pred = _evaluate(run, ep)
            record, is_best, ending = _close_epoch(run, ep, trained, val_pred)
            if on_epoch_end is not None:
                on_epoch_end(record, is_best, run.popt, run.step, ending)
            if ending in ("converged", "early-stop"):
                break
    finally:
        if run.prefix is not None:
            run.prefix.close()
        if owns_setup:
            strategy.teardown(model)
    if config.restore_best:
        run.best.restore(model)
    assert run.plan is not None
    return FitResult(run.history, run.best_epoch, run.ending == "early-stop", time.perf_counter() - run.t_start,
                     sum(p.numel() for p in model.parameters()),
                     records.kept_trainable(run.history, run.best_epoch) or trainable_count(model, run.plan.params),
                     str(run.fabric.device), run.precision, run.best.state, run.ending == "converged", run.bn)


@dataclass
class _Run:
    """What the loop carries from one epoch to the next."""
    model: nn.Module
    train: Encoded
    val: Encoded
    strategy: Strategy
    config: TrainConfig
    status: Status
    task: Task
    fabric: Any
    precision: str
    parts: list[Part]
    steps_per_epoch: int
    popt: PlanOptimizer
    plan: EpochPlan | None = None  # the running plan
    first_added: list[str] = field(default_factory=list)
    fmodel: Any = None
    fopt: Any = None
    prefix: PrefixCache | None = None
    best: BestState = field(default_factory=BestState)
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_loss: float = float("inf")
    bad_epochs: int = 0  # epochs since the best validation loss
    step: int = 0
    start: int = 0
    probe_done: tuple[str, ...] | None = None  # the head-only plan a convex fit already solved
    ending: str | None = None  # "last" / "early-stop" / "converged" once training has finished
    snap: Snapshot | None = None  # checksums of what the running plan froze
    snap_plan: tuple[str, ...] | None = None
    best_losses: np.ndarray | None = None  # per-sample validation losses: evidence for the findings
    prev_losses: np.ndarray | None = None
    clock: Clock | None = None
    t_start: float = 0.0
    params: dict[str, nn.Parameter] = field(default_factory=dict)  # by name, before any cache surgery
    dist: Dist | None = None  # a distributed run: this rank, the world, the gathering
    wrapped: tuple[str, ...] | None = None  # the plan DDP registered its parameters for
    bn: str = "none"  # how trainable BatchNorm layers behave (:mod:`frostline.training.batchnorm`)

    def plan_at(self, epoch: int) -> EpochPlan:
        return self.strategy.plan(epoch, self.parts, self.config.lr, self.config.head_lr)

    def forward(self, inputs: dict[str, torch.Tensor] | torch.Tensor) -> Any:
        module = self.fmodel
        if self.dist is not None and not self.model.training:  # no DDP collective in evaluation: ranks get
            module = self.fmodel.module                         # different numbers of validation batches
            with self.fabric.autocast():
                return module(**inputs) if isinstance(inputs, dict) else module(inputs)
        return module(**inputs) if isinstance(inputs, dict) else module(inputs)

    def logits(self, batch: Batch, split: str) -> torch.Tensor:
        """The model's logits for ``batch``, through the frozen-prefix cache when there is one."""
        if self.prefix is not None:
            return self.prefix.forward(self.forward, batch, split)
        return logits_of(self.forward(batch.inputs))


@dataclass
class _Epoch:
    """One epoch's plan and what applying it did."""
    index: int  # counts from 0
    plan: EpochPlan
    added: list[str]
    verified: int
    cache_status: str
    linear: str  # the head's Linear when a convex probe fit trains this plan, else ""
    active: AbstractContextManager[Any]
    t0: float
    probe: dict[str, Any] | None = None  # how the convex probe was fit (:class:`.probe.logistic.ProbeFit`)


def _set_up(model: nn.Module, train: Encoded, val: Encoded, strategy: Strategy, config: TrainConfig,
            resume: Resume | None, status: Status, task: Task) -> _Run:
    """Device, optimizer, the state of an interrupted run, the first plan, the frozen-prefix cache."""
    fabric, precision = make_fabric(config.accelerator, config.precision, config.seed)
    if strategy.needs_data and not strategy.ready:
        with status(f"{strategy}: scoring the model on the training data"):
            strategy.setup(model, train, config.seed)
    strategy.attach(model, config.seed)  # PEFT adapters (once): in the parts, the optimizer and the checksums
    parts = model_parts(model)
    steps_per_epoch = train.num_batches(config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    schedule = LRSchedule(total_steps, round(config.warmup * total_steps), config.schedule)
    extra = {"momentum": 0.9} if config.optimizer == "sgd" else {}
    popt = PlanOptimizer(model, config.optimizer, config.weight_decay, schedule, **extra)
    run = _Run(model, train, val, strategy, config, status, task, fabric, precision, parts, steps_per_epoch, popt)
    run.params = dict(model.named_parameters())
    run.bn = resolve_bn(model, config.bn)  # on the model as loaded: a resumed run decides as the first one did
    if config.bn == "auto" and run.bn == "train":
        log.warning("--bn auto: the BatchNorm running statistics were never updated (mean 0, variance 1: a model not "
                    "trained yet), so BatchNorm layers that train use batch statistics (--bn train)")
    if resume is not None:
        restore_run(run, resume)
    run.plan = run.plan_at(run.start)
    apply_bn(model, run.bn)
    set_trainable(model, run.plan.params)
    for finding in check_model(model):
        log.warning("%s", finding)
    run.first_added = popt.apply(run.plan, run.step)
    assert popt.optimizer is not None
    run.dist = current()
    run.fmodel, run.wrapped = fabric.setup_module(model), run.plan.params
    run.fopt = fabric.setup_optimizers(popt.optimizer)
    model.zero_grad(set_to_none=True)  # a gradient left by an earlier loop must not leak into the first step
    head = find_head(model).name
    if config.cache:
        run.prefix = PrefixCache(model, parts, discover_blocks(model, head), head, config.cache_budget,
                                 fabric.autocast, precision)
    run.best = BestState(resume.best_state if resume is not None else None)
    run.t_start, run.clock = time.perf_counter() - sum(h["seconds"] for h in run.history), Clock(fabric.device)
    return run


def _enter_plan(run: _Run, epoch: int) -> _Epoch | None:
    """Apply the epoch's plan; ``None`` when the epoch is skipped (its linear probe has converged already)."""
    t0 = time.perf_counter()
    clock, config, model = run.clock, run.config, run.model
    assert clock is not None
    clock.reset()
    plan = run.plan = run.plan_at(epoch)
    if run.probe_done is not None and plan.params == run.probe_done:
        run.step += run.steps_per_epoch  # converged already; the schedule of later plans stays as planned
        log.info("epoch %d: skipped, the linear probe has converged", epoch + 1)
        return None
    set_trainable(model, plan.params)
    if run.dist is not None and plan.params != run.wrapped:  # DDP registers what trains when it wraps
        run.fmodel, run.wrapped = rewrap(run.fabric, run.fmodel, model), plan.params
    run.best.extend(model)
    added = run.popt.apply(plan, run.step) + (run.first_added if epoch == run.start else [])
    verified = 0
    if config.verify and plan.params != run.snap_plan:  # checksum once per plan, verify when it ends
        with clock("verify"):
            verified = verify_frozen(model, run.snap).checked if run.snap is not None else 0
            run.snap, run.snap_plan = snapshot(model), plan.params
    cache_status = "plain loop: cache disabled"
    if run.prefix is not None:
        with clock("cache"), run.status(f"epoch {epoch + 1}: frozen-prefix cache"):
            cache_status = run.prefix.update(plan.params, {"train": run.train, "val": run.val}, run.forward,
                                             {"train": config.batch_size, "val": config.eval_batch_size},
                                             run.fabric.device)
        log.info("epoch %d: %s", epoch + 1, cache_status)
    active = run.prefix.active() if run.prefix is not None else nullcontext()
    convex = config.probe != "sgd"  # softmax / per-label logistic by L-BFGS, ridge in closed form
    linear = probe_target(model, plan.params, run.prefix) if convex else ""
    if config.probe == "lbfgs" and not linear:
        why = "the head is not one Linear on cached features"
        cache_status += f"; linear probe trained by SGD: {why}"
    return _Epoch(epoch, plan, added, verified, cache_status, linear, active, t0)


def _train_epoch(run: _Run, ep: _Epoch, progress: Callable[[str, int], Any] | None,
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """The hot loop: one pass over the training batches. Returns predictions, labels and the mean loss."""
    config, fabric, popt, clock = run.config, run.fabric, run.popt, run.clock
    assert clock is not None
    run.fmodel.train()
    advance = progress(f"epoch {ep.index + 1}/{config.epochs} train", run.steps_per_epoch) if progress else None
    loss_sum, seen, preds, truth, index = 0.0, 0, [], [], 0
    watch = run.strategy.watches_gradients
    batches = run.train.batches(config.batch_size, shuffle=True, seed=config.seed, epoch=ep.index)
    drops = FastDropout(run.model, config.seed, run.dist.rank if run.dist else 0, config.dropout_masks)
    with drops.active(ep.index):
        while True:
            with clock("data"):
                batch = next(batches, None)
                if batch is None:
                    break
                batch = batch.to(fabric.device)
                weight = 1.0
                if run.dist is not None:  # this rank's slice of the global batch
                    batch, weight = shard(batch, run.dist)
            popt.set_lr(run.step)
            drops.at(run.step)
            with clock("forward"):
                logits = run.logits(batch, "train").float()
                loss = run.task.loss_fn(logits, batch.labels)
                loss_value = loss.item()
                if weight != 1.0:  # DDP averages over ranks: this makes it the global batch's mean
                    loss = loss * weight
            if not math.isfinite(loss_value):
                raise NonFiniteLoss(non_finite("training loss", loss_value, ep.index, run.step, popt))
            with clock("backward"):  # gradients are None here: cleared at the start and after each step
                fabric.backward(loss)
            if watch:  # an automatic strategy sees the raw gradients (auto-freeze: per-part norms)
                with clock("observe"):
                    run.strategy.observe(run.params, index, run.steps_per_epoch)
            index += 1
            with clock("optimizer"):
                if config.clip is not None:
                    fabric.clip_gradients(run.fmodel, run.fopt, max_norm=config.clip, error_if_nonfinite=False)
                run.fopt.step()
                run.fopt.zero_grad(set_to_none=True)  # gradients are not held through the next forward
            run.step += 1
            if weight > 0:  # a rank's stand-in sample (weight 0) is not counted
                loss_sum += loss_value * len(batch.labels)
                seen += len(batch.labels)
                preds.append(run.task.transform(logits.detach()).cpu().numpy())
                truth.append(batch.positions)
            if advance:
                advance(loss_sum / max(seen, 1))  # the epoch's running mean, not one batch's noise
    out = Predictions(np.concatenate(preds), np.zeros(0), np.zeros(0), 0.0, kind=run.task.kind).preds
    positions = np.concatenate(truth)
    if run.dist is not None:
        out, positions, loss_sum, seen = gather_epoch(run.dist, out, positions, loss_sum, seen)
    return out, np.asarray(run.train.ds.labels)[positions], loss_sum / len(run.train)


def _evaluate(run: _Run, ep: _Epoch) -> Predictions:
    """Validation predictions (through the cache), refused if the loss is not finite."""
    assert run.clock is not None
    with run.clock("eval"):
        val_pred = predict(run.fmodel, run.val, run.config.eval_batch_size, run.fabric,
                           lambda b: run.logits(b, "val"), run.task, dist=run.dist)
    if not math.isfinite(val_pred.loss):
        raise NonFiniteLoss(non_finite("validation loss", val_pred.loss, ep.index, run.step, run.popt))
    if ep.linear:
        run.step += run.steps_per_epoch
        run.probe_done = ep.plan.params
    return val_pred


def _close_epoch(run: _Run, ep: _Epoch, trained: tuple[np.ndarray, np.ndarray, float], val_pred: Predictions,
                 ) -> tuple[EpochRecord, bool, str | None]:
    """Verify frozen tensors at a plan's end, keep the best, decide the ending, and record the epoch."""
    config, epoch, clock = run.config, ep.index, run.clock
    assert clock is not None
    train_metrics, val_metrics = epoch_metrics(run.task, run.train.ds.label_names, trained, val_pred)
    last_epoch = epoch + 1 == config.epochs
    rest_same = bool(ep.linear) and all(run.plan_at(e).params == ep.plan.params
                                        for e in range(epoch + 1, config.epochs))
    is_best = val_pred.loss < run.best_loss
    stop = (config.patience is not None and not is_best and run.bad_epochs + 1 >= config.patience
            and not last_epoch)
    verified = ep.verified
    if config.verify and run.snap is not None and (last_epoch or stop or rest_same):
        with clock("verify"):
            verified += verify_frozen(run.model, run.snap).checked
            run.snap, run.snap_plan = None, None
    ranks = run.dist.gather(verified) if run.dist is not None else None  # every rank checks its own copy
    auto = run.strategy.end_epoch(epoch, config.epochs)
    solver = "ridge" if run.task.kind == "regression" else "L-BFGS"
    record = EpochRecord(epoch + 1, ep.plan.note + (f" ({solver})" if ep.linear else ""),
                         trainable_count(run.model, ep.plan.params), ep.added, run.popt.lrs(),
                         time.perf_counter() - ep.t0, train_metrics, val_metrics, verified, ep.cache_status,
                         clock.totals(), probe=ep.probe,
                         val_change=paired_change(val_pred.losses, run.prev_losses),
                         val_vs_best=paired_change(val_pred.losses, run.best_losses), val_losses=val_pred.losses,
                         frozen_snapshot={"digests": run.snap.digests, "elements": run.snap.elements,
                                          "plan": list(run.snap_plan or ())} if run.snap is not None else None,
                         auto=auto, parts=[g.name for g in ep.plan.groups], verified_ranks=ranks)
    run.history.append(record.to_dict())
    run.prev_losses = val_pred.losses
    if is_best:
        run.best_loss, run.best_epoch, run.bad_epochs = val_pred.loss, epoch + 1, 0
        run.best_losses = val_pred.losses
        if config.restore_best:  # otherwise no copy is held (a caller checkpoints in on_epoch_end)
            run.best.capture(run.model)
    else:
        run.bad_epochs += 1
    ending = "converged" if rest_same else "early-stop" if stop else "last" if last_epoch else None
    if ending is not None:
        run.ending = ending
    if rest_same:
        log.info("linear probe converged in epoch %d; the later epochs (to %d) would not change it", epoch + 1,
                 config.epochs)
    elif stop:
        log.info("early stop after epoch %d: validation loss did not improve for %d epochs", epoch + 1,
                 run.bad_epochs)
    return record, is_best, ending
