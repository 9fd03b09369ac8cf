"""The loop's vocabulary: its settings (:class:`TrainConfig`), what one epoch did (:class:`EpochRecord`), the state
to continue an interrupted run (:class:`Resume`) and the outcome (:class:`FitResult`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.errors import FrostlineError, did_you_mean

if TYPE_CHECKING:
    import numpy as np
    import torch

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
    dropout_masks: str = "fast"  # "fast": CPU dropout masks from a counter-based stream (training/dropout.py)
    bn: str = "auto"  # trainable BatchNorm: auto | eval | train | reestimate (training/batchnorm.py)

    def validate(self) -> None:
        """Raise a clear error for values out of range."""
        from .batchnorm import check_bn

        check_bn(self.bn)
        if self.dropout_masks not in ("fast", "torch"):
            raise FrostlineError(f"dropout_masks must be fast or torch, got {self.dropout_masks!r}"
                                 f"{did_you_mean(str(self.dropout_masks), ('fast', 'torch'))}")
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
class EpochRecord:
    """What happened in one epoch (``epoch`` counts from 1).

    ``probe``: how a convex linear probe was fit (:class:`frostline.training.probe.logistic.ProbeFit`); ``val_change`` /
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
    #: what an automatic strategy decided after this epoch (auto-freeze: which parts froze and the evidence)
    auto: dict[str, Any] | None = None
    #: the parts that trained in this epoch (names of the plan's groups)
    parts: list[str] = field(default_factory=list)
    #: a distributed run: frozen tensors checked on each rank, in rank order (every rank checks its own copy)
    verified_ranks: list[int] | None = None

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
    seconds: float  # training and validation; a resumed run's includes its earlier sessions' epochs
    total_params: int
    trainable_params: int
    device: str
    precision: str
    best_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    converged: bool = False
    bn: str = "none"  # how trainable BatchNorm layers ran: eval / train / reestimate / none (no BatchNorm)


def non_finite(what: str, value: float, epoch: int, step: int, popt: Any) -> str:
    """The message of :class:`NonFiniteLoss`: where it happened, the learning rates, what to do."""
    lrs = ", ".join(f"{k} {v:.3g}" for k, v in popt.lrs().items())
    return (f"the {what} is {value} in epoch {epoch + 1} at step {step + 1}: training stopped. The likely cause is a "
            f"learning rate too high for this model (now: {lrs}); lower --lr / --head-lr (e.g. 10x) or keep "
            "--clip on. Weights of this step were not applied")


def epoch_metrics(task: Any, labels: list[str], trained: tuple[Any, Any, float], val_pred: Any
                  ) -> tuple[dict[str, Any], dict[str, Any]]:
    """An epoch's training metrics (``trained``: predictions, truth, loss) and validation metrics (with the standard
    error of its loss), for the task."""
    from ..evaluation.metrics import loss_se, point_metrics

    train_preds, truth, train_loss = trained
    kind, mean = task.kind, task.mean if task.kind == "regression" else None
    train_metrics = point_metrics(kind, truth, train_preds, labels, train_loss, mean)
    val_metrics = point_metrics(kind, val_pred.labels, val_pred.preds, labels, val_pred.loss, mean)
    val_metrics["loss_se"] = loss_se(val_pred.losses) \
        if val_pred.losses is not None and len(val_pred.losses) > 1 else None
    return train_metrics, val_metrics

def kept_trainable(history: list[dict[str, Any]], best_epoch: int | None) -> int:
    """Parameters that trained in the kept epoch (an automatic strategy's count changes from epoch to epoch: the
    kept weights are those of the best epoch, not the last)."""
    kept = next((h for h in history if h["epoch"] == best_epoch), history[-1] if history else {"trainable": 0})
    return int(kept["trainable"])
