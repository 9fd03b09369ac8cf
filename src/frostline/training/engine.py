"""The training loop, explicit and in one place, on Lightning Fabric (CPU, one GPU, bf16 where supported).

Per epoch: apply the strategy's plan (freeze, pin, grow the optimizer), checksum what is frozen when a plan
starts, make the frozen-prefix cache match the plan, train with gradient clipping and the schedule, evaluate on
validation, verify the frozen tensors when the plan ends, keep the best weights by validation loss, stop early
when it stops improving.
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

from ..core.errors import FrostlineError, did_you_mean
from ..data.batching import Batch, Encoded
from ..evaluation.metrics import classification_metrics, loss_se, paired_change
from ..freezing.check import check_model
from ..freezing.freeze import set_trainable
from ..freezing.verify import Snapshot, snapshot, verify_frozen
from ..models.blocks import discover_blocks
from ..models.heads import find_head
from ..models.outputs import logits_of
from .bestweights import BestState
from .cache import PrefixCache
from .probe_head import fit_probe_epoch, probe_target
from .schedule import LRSchedule, PlanOptimizer
from .strategies import Strategy, model_parts
from .timing import Clock

log = logging.getLogger("frostline")
#: How a head-only plan on cached features trains: ``auto`` / ``lbfgs`` fit the convex problem to convergence
#: (:mod:`frostline.training.probe`), ``sgd`` runs the epochs like any other plan.
PROBE_SOLVERS = ("auto", "lbfgs", "sgd")
Status = Callable[[str], AbstractContextManager[Any]]


@dataclass
class TrainConfig:
    """Knobs of the loop. Learning rates: ``lr`` for pretrained parts, ``head_lr`` for the new head."""

    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 1e-4
    head_lr: float = 1e-2
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup: float = 0.1
    clip: float | None = 1.0
    patience: int | None = 3
    seed: int = 0
    accelerator: str = "auto"
    precision: str | None = None
    verify: bool = True
    cache: bool = True
    cache_budget: float = 2048.0
    restore_best: bool = True
    probe: str = "auto"

    def validate(self) -> None:
        """Raise a clear error for values out of range."""
        if self.probe not in PROBE_SOLVERS:
            raise FrostlineError(f"probe must be one of {', '.join(PROBE_SOLVERS)}, got {self.probe!r}"
                                 f"{did_you_mean(str(self.probe), PROBE_SOLVERS)}")
        checks = [
            ("epochs", self.epochs >= 1, ">= 1"), ("batch_size", self.batch_size >= 1, ">= 1"),
            ("eval_batch_size", self.eval_batch_size >= 1, ">= 1"), ("lr", self.lr > 0, "> 0"),
            ("head_lr", self.head_lr > 0, "> 0"), ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("warmup", 0 <= self.warmup < 1, "a fraction in [0, 1)"),
            ("clip", self.clip is None or self.clip > 0, "> 0 or None"),
            ("patience", self.patience is None or self.patience >= 1, ">= 1 or None"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise FrostlineError(f"{name} must be {expected}, got {getattr(self, name)!r}")


@dataclass
class Predictions:
    """Class probabilities, true labels and dataset positions of one pass, with the mean loss and the loss of
    each sample (for standard errors and paired comparisons between epochs)."""

    probs: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    loss: float
    losses: np.ndarray | None = None

    @property
    def preds(self) -> np.ndarray:
        """Arg-max class per sample."""
        return self.probs.argmax(axis=1)


@dataclass
class EpochRecord:
    """What happened in one epoch (``epoch`` counts from 1).

    ``probe``: how a convex linear probe was fit (:class:`frostline.training.probe.ProbeFit`); ``val_change`` /
    ``val_vs_best``: mean per-sample change of the validation loss against the previous / best epoch so far, with
    its paired standard error (``{"diff", "se"}``), the evidence that a rise or fall is more than noise.
    """

    epoch: int
    plan: str
    trainable: int
    groups_added: list[str]
    lr: dict[str, float]
    seconds: float
    train: dict[str, Any]
    val: dict[str, Any]
    frozen_verified: int = 0
    cache: str = ""
    timing: dict[str, float] = field(default_factory=dict)
    probe: dict[str, Any] | None = None
    val_change: dict[str, float] | None = None
    val_vs_best: dict[str, float] | None = None
    val_losses: np.ndarray | None = field(default=None, repr=False)  # per sample; checkpointed, not in JSON
    #: checksums of the frozen tensors of the running plan (checkpointed, so a resumed run still verifies them)
    frozen_snapshot: dict[str, Any] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {k: v for k, v in self.__dict__.items() if k not in ("val_losses", "frozen_snapshot")}


@dataclass
class Resume:
    """State to continue an interrupted run."""

    next_epoch: int
    step: int
    history: list[dict[str, Any]]
    best_epoch: int
    best_loss: float
    optimizer_state: dict[str, Any] | None = None
    rng_state: torch.Tensor | None = None
    best_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    prev_losses: np.ndarray | None = field(default=None, repr=False)
    best_losses: np.ndarray | None = field(default=None, repr=False)
    ending: str | None = None  # "last" / "early-stop" / "converged" once training has finished
    frozen_snapshot: dict[str, Any] | None = field(default=None, repr=False)


class NonFiniteLoss(FrostlineError):
    """The loss became NaN or infinite: training stops at once (the weights of the step are not applied)."""


@dataclass
class FitResult:
    """Outcome of :func:`fit`."""

    history: list[dict[str, Any]]
    best_epoch: int
    stopped_early: bool
    seconds: float
    total_params: int
    trainable_params: int
    device: str
    precision: str
    best_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    converged: bool = False


def forward(model: nn.Module, inputs: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
    """Call ``model`` on a batch's inputs and return logits."""
    return logits_of(model(**inputs) if isinstance(inputs, dict) else model(inputs))


def make_fabric(accelerator: str = "auto", precision: str | None = None, seed: int = 0) -> tuple[Any, str]:
    """A single-device Fabric and its precision: GPU with bf16-mixed when available, else CPU in 32-bit."""
    from lightning_fabric import Fabric

    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)
    if accelerator not in ("auto", "cpu", "cuda", "gpu", "mps"):
        raise FrostlineError(f"accelerator must be auto, cpu, cuda, gpu or mps, got {accelerator!r}")
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    check_precision(accelerator, precision)
    if precision is None:
        bf16 = accelerator in ("cuda", "gpu") and torch.cuda.is_bf16_supported()
        precision = "bf16-mixed" if bf16 else "32-true"
    fabric = Fabric(accelerator=accelerator, devices=1, precision=precision)  # type: ignore[arg-type]
    fabric.seed_everything(seed, verbose=False)
    return fabric, precision


def check_precision(accelerator: str, precision: str | None) -> None:
    """float16 runs only on a GPU: on CPU Fabric would quietly run something else, so it is an error."""
    if accelerator == "cpu" and precision in ("16-mixed", "16-true"):
        raise FrostlineError(f"--precision {precision} needs a CUDA GPU and this run is on the CPU; use bf16-mixed "
                             "(fast on CPUs with AVX-512 BF16 / AMX) or 32-true")


def _non_finite(what: str, value: float, epoch: int, step: int, popt: PlanOptimizer) -> str:
    lrs = ", ".join(f"{k} {v:.3g}" for k, v in popt.lrs().items())
    return (f"the {what} is {value} in epoch {epoch + 1} at step {step + 1}: training stopped. The likely cause is a "
            f"learning rate too high for this model (now: {lrs}); lower --lr / --head-lr (e.g. 10x) or keep "
            "--clip on. Weights of this step were not applied")


@torch.no_grad()
def predict(model: nn.Module, data: Encoded, batch_size: int = 128, fabric: Any = None,
            forward_fn: Callable[[Batch], torch.Tensor] | None = None) -> Predictions:
    """Probabilities for every sample of ``data`` in eval mode (order of the dataset).

    ``forward_fn(batch)`` replaces the plain forward pass (the engine passes the cached path).
    """
    was_training = model.training
    model.eval()
    device = fabric.device if fabric is not None else next(model.parameters()).device
    probs, labels, positions, losses = [], [], [], []
    for batch in data.batches(batch_size):
        batch = batch.to(device)
        logits = (forward_fn(batch) if forward_fn is not None else forward(model, batch.inputs)).float()
        losses.append(nn.functional.cross_entropy(logits, batch.labels, reduction="none").cpu().numpy())
        probs.append(torch.softmax(logits, dim=-1).cpu().numpy())
        labels.append(batch.labels.cpu().numpy())
        positions.append(batch.positions)
    model.train(was_training)
    if not probs:
        k = len(data.ds.label_names)
        return Predictions(np.zeros((0, k)), np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0, np.zeros(0))
    order = np.argsort(np.concatenate(positions))  # back to dataset order
    per_sample = np.concatenate(losses)[order].astype(np.float64)
    return Predictions(np.concatenate(probs)[order], np.concatenate(labels)[order],
                       np.concatenate(positions)[order], float(per_sample.mean()), per_sample)


def fit(
    model: nn.Module,
    train: Encoded,
    val: Encoded,
    strategy: Strategy,
    config: TrainConfig,
    *,
    on_epoch_end: Callable[[EpochRecord, bool, PlanOptimizer, int, str | None], None] | None = None,
    resume: Resume | None = None,
    progress: Callable[[str, int], Any] | None = None,
    status: Status | None = None,
) -> FitResult:
    """Fine-tune ``model`` with ``strategy``.

    A head-only plan on cached features (a linear probe) is convex: with ``config.probe`` ``auto`` or ``lbfgs``
    it is fit to convergence in its first epoch (:mod:`frostline.training.probe`) and later epochs of the same plan are
    skipped (they could not improve it); ``sgd`` trains it for the epochs like any other plan.

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

    Raises:
        NonFiniteLoss: A training step or the validation loss gave NaN / inf (named with epoch, step and the
            learning rates); the step is not applied.

    Returns:
        A :class:`FitResult`; epochs count from 1 (``history[].epoch``, ``best_epoch``). With
        ``config.restore_best`` the best epoch's weights are loaded back into ``model`` and ``best_state`` holds
        the best epoch's values of every tensor training could change; without it the model keeps the last
        epoch's weights and no copy is held.
    """
    config.validate()
    status = status or (lambda _msg: nullcontext())
    labels = train.ds.label_names
    fabric, precision = make_fabric(config.accelerator, config.precision, config.seed)
    parts = model_parts(model)
    steps_per_epoch = train.num_batches(config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    schedule = LRSchedule(total_steps, round(config.warmup * total_steps), config.schedule)
    extra = {"momentum": 0.9} if config.optimizer == "sgd" else {}
    popt = PlanOptimizer(model, config.optimizer, config.weight_decay, schedule, **extra)
    history: list[dict[str, Any]] = []
    best_epoch, best_loss, step, start = 0, float("inf"), 0, 0
    probe_done: set[str] | None = None  # the head-only plan a convex fit already solved
    if resume is not None:
        history, best_epoch, best_loss = list(resume.history), resume.best_epoch, resume.best_loss
        step, start = resume.step, resume.next_epoch
        for e in range(start):  # replay plans so the optimizer's groups come back in the same order
            popt.apply(strategy.plan(e, parts, config.lr, config.head_lr), e * steps_per_epoch)
        if popt.optimizer is not None and resume.optimizer_state is not None:
            popt.optimizer.load_state_dict(resume.optimizer_state)
        if resume.rng_state is not None:
            torch.set_rng_state(resume.rng_state)
        if history and history[-1].get("probe"):
            probe_done = strategy.plan(int(history[-1]["epoch"]) - 1, parts, config.lr, config.head_lr).params
        if resume.ending is not None:  # training had finished; only the final scoring was left
            start = config.epochs
    plan = strategy.plan(start, parts, config.lr, config.head_lr)
    set_trainable(model, plan.params)
    for finding in check_model(model):
        log.warning("%s", finding)
    first_added = popt.apply(plan, step)
    assert popt.optimizer is not None
    fmodel = fabric.setup_module(model)
    fopt = fabric.setup_optimizers(popt.optimizer)
    model.zero_grad(set_to_none=True)  # a gradient left by an earlier loop must not leak into the first step

    def fwd(inputs: dict[str, torch.Tensor] | torch.Tensor) -> Any:
        return fmodel(**inputs) if isinstance(inputs, dict) else fmodel(inputs)

    head = find_head(model).name
    prefix = PrefixCache(model, parts, discover_blocks(model, head), head, config.cache_budget,
                         fabric.autocast) if config.cache else None
    best = BestState(resume.best_state if resume is not None else None)
    ending = resume.ending if resume is not None else None
    stopped_early, converged, t_run, bad_epochs = ending == "early-stop", ending == "converged", time.perf_counter(), 0
    if history:
        losses = [h["val"]["loss"] for h in history]
        bad_epochs = len(losses) - 1 - int(np.argmin(losses))
    snap, snap_plan = None, None
    if resume is not None and resume.frozen_snapshot:  # the plan running at the crash: its checksums still hold
        snap = Snapshot(dict(resume.frozen_snapshot["digests"]), int(resume.frozen_snapshot["elements"]))
        snap_plan = tuple(resume.frozen_snapshot["plan"])
    clock = Clock(fabric.device)
    # per-sample validation losses of the best and the previous epoch: evidence for the findings
    best_losses = resume.best_losses if resume is not None else None
    prev_losses = resume.prev_losses if resume is not None else None
    try:
        for epoch in range(start, config.epochs):
            t0 = time.perf_counter()
            clock.reset()
            plan = strategy.plan(epoch, parts, config.lr, config.head_lr)
            if probe_done is not None and plan.params == probe_done:
                step += steps_per_epoch  # converged already; the schedule of later plans stays as planned
                log.info("epoch %d: skipped, the linear probe has converged", epoch + 1)
                continue
            set_trainable(model, plan.params)
            best.extend(model)
            added = popt.apply(plan, step) + (first_added if epoch == start else [])
            verified = 0
            if config.verify and plan.params != snap_plan:  # checksum once per plan, verify when it ends
                with clock("verify"):
                    verified = verify_frozen(model, snap).checked if snap is not None else 0
                    snap, snap_plan = snapshot(model), plan.params
            cache_status = "plain loop: cache disabled"
            if prefix is not None:
                with clock("cache"), status(f"epoch {epoch + 1}: frozen-prefix cache"):
                    cache_status = prefix.update(plan.params, {"train": train, "val": val}, fwd,
                                                 {"train": config.batch_size, "val": config.eval_batch_size},
                                                 fabric.device)
                log.info("epoch %d: %s", epoch + 1, cache_status)
            active = prefix.active() if prefix is not None else nullcontext()
            linear = probe_target(model, plan.params, prefix) if config.probe != "sgd" else ""
            if config.probe == "lbfgs" and not linear:
                cache_status += "; linear probe trained by SGD: the head is not one Linear on cached features"

            def run(batch: Batch, split: str) -> torch.Tensor:
                return prefix.forward(fwd, batch, split) if prefix is not None else logits_of(fwd(batch.inputs))

            probe_record: dict[str, Any] | None = None
            with active:
                if linear:
                    assert prefix is not None
                    with clock("probe"), status(f"epoch {epoch + 1}: fitting the linear probe (L-BFGS)"):
                        probe_record, train_preds, train_loss, pfit = fit_probe_epoch(model, linear, prefix,
                                                                                       train, val)
                    cache_status += f"; {pfit.describe()}"
                    truth_all = train.ds.labels
                else:
                    fmodel.train()
                    advance = progress(f"epoch {epoch + 1}/{config.epochs} train", steps_per_epoch) \
                        if progress else None
                    loss_sum, seen, preds, truth = 0.0, 0, [], []
                    batches = train.batches(config.batch_size, shuffle=True, seed=config.seed, epoch=epoch)
                    while True:
                        with clock("data"):
                            batch = next(batches, None)
                            if batch is None:
                                break
                            batch = batch.to(fabric.device)
                        popt.set_lr(step)
                        with clock("forward"):
                            logits = run(batch, "train").float()
                            loss = nn.functional.cross_entropy(logits, batch.labels)
                            loss_value = loss.item()
                        if not math.isfinite(loss_value):
                            raise NonFiniteLoss(_non_finite("training loss", loss_value, epoch, step, popt))
                        with clock("backward"):  # gradients are None here: cleared at the start and after each step
                            fabric.backward(loss)
                        with clock("optimizer"):
                            if config.clip is not None:
                                fabric.clip_gradients(fmodel, fopt, max_norm=config.clip, error_if_nonfinite=False)
                            fopt.step()
                            fopt.zero_grad(set_to_none=True)  # gradients are not held through the next forward
                        step += 1
                        loss_sum += loss_value * len(batch.labels)
                        seen += len(batch.labels)
                        preds.append(logits.argmax(-1).cpu().numpy())
                        truth.append(batch.labels.cpu().numpy())
                        if advance:
                            advance(loss_sum / seen)  # the epoch's running mean, not one batch's noise
                    train_preds, truth_all = np.concatenate(preds), np.concatenate(truth)
                    train_loss = loss_sum / len(train)
                with clock("eval"):
                    val_pred = predict(fmodel, val, config.eval_batch_size, fabric,
                                       lambda b: run(b, "val"))
            if not math.isfinite(val_pred.loss):
                raise NonFiniteLoss(_non_finite("validation loss", val_pred.loss, epoch, step, popt))
            if linear:
                step += steps_per_epoch
                probe_done = plan.params
            train_metrics = classification_metrics(truth_all, train_preds, labels, train_loss)
            val_metrics = classification_metrics(val_pred.labels, val_pred.preds, labels, val_pred.loss)
            val_metrics["loss_se"] = loss_se(val_pred.losses) \
                if val_pred.losses is not None and len(val_pred.losses) > 1 else None
            last_epoch = epoch + 1 == config.epochs
            rest_same = linear and all(strategy.plan(e, parts, config.lr, config.head_lr).params == plan.params
                                       for e in range(epoch + 1, config.epochs))
            is_best = val_pred.loss < best_loss
            stop = (config.patience is not None and not is_best and bad_epochs + 1 >= config.patience
                    and not last_epoch)
            if config.verify and snap is not None and (last_epoch or stop or rest_same):
                with clock("verify"):
                    verified += verify_frozen(model, snap).checked
                    snap, snap_plan = None, None
            record = EpochRecord(epoch + 1, plan.note + (" (L-BFGS)" if linear else ""),
                                 sum(model.get_parameter(n).numel() for n in plan.params), added, popt.lrs(),
                                 time.perf_counter() - t0, train_metrics, val_metrics, verified, cache_status,
                                 clock.totals(), probe=probe_record,
                                 val_change=paired_change(val_pred.losses, prev_losses),
                                 val_vs_best=paired_change(val_pred.losses, best_losses), val_losses=val_pred.losses,
                                 frozen_snapshot={"digests": snap.digests, "elements": snap.elements,
                                                  "plan": list(snap_plan or ())} if snap is not None else None)
            history.append(record.to_dict())
            prev_losses = val_pred.losses
            if is_best:
                best_loss, best_epoch, bad_epochs = val_pred.loss, epoch + 1, 0
                best_losses = val_pred.losses
                if config.restore_best:  # otherwise no copy is held (a caller checkpoints in on_epoch_end)
                    best.capture(model)
            else:
                bad_epochs += 1
            ending = "converged" if rest_same else "early-stop" if stop else "last" if last_epoch else None
            if on_epoch_end is not None:
                on_epoch_end(record, is_best, popt, step, ending)
            if rest_same:
                converged = True
                log.info("linear probe converged in epoch %d; epochs %d-%d would not change it", epoch + 1,
                         epoch + 2, config.epochs)
                break
            if stop:
                stopped_early = True
                log.info("early stop after epoch %d: validation loss did not improve for %d epochs", epoch + 1,
                         bad_epochs)
                break
    finally:
        if prefix is not None:
            prefix.close()
    if config.restore_best:
        best.restore(model)
    return FitResult(history, best_epoch, stopped_early, time.perf_counter() - t_run,
                     sum(p.numel() for p in model.parameters()),
                     sum(model.get_parameter(n).numel() for n in plan.params),
                     str(fabric.device), precision, best.state, converged)
