"""What a run predicts: one class (classification), a number (regression) or a set of labels (multi-label).

A :class:`Task` decides the head's output size, the training loss, the Hugging Face ``problem_type``, and how the
model's raw outputs become what the user reads (class probabilities, a value in the target's own units, or one
probability per label). Regression targets are standardised with the training split's mean and standard deviation
for the loss (so one learning rate fits targets in cents or in millions); every prediction and metric is in the
user's units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import FrostlineError, did_you_mean

TASKS = ("classification", "regression", "multilabel")
#: the losses each task accepts; the first is its default
LOSSES = {"classification": ("cross-entropy",), "regression": ("mse", "huber"), "multilabel": ("bce",)}
PROBLEM_TYPES = {"classification": "single_label_classification", "regression": "regression",
                 "multilabel": "multi_label_classification"}


def check_task(task: str | None, what: str = "--task") -> str | None:
    """``task`` if it is a known task (or None for auto-detection), else one clear error."""
    if task is None or task == "auto":
        return None
    if task not in TASKS:
        raise FrostlineError(f"{what} {task!r} is not a task; expected one of {', '.join(TASKS)} (or auto)"
                             f"{did_you_mean(str(task), TASKS)}")
    return task


@dataclass(frozen=True)
class Task:
    """The kind of prediction, its loss, and (regression) the training targets' mean and standard deviation."""

    kind: str = "classification"
    loss: str = "cross-entropy"
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in TASKS:
            raise FrostlineError(f"task {self.kind!r} is not one of {', '.join(TASKS)}")
        if self.loss not in LOSSES[self.kind]:
            raise FrostlineError(f"loss {self.loss!r} does not fit a {self.kind} task; expected one of "
                                 f"{', '.join(LOSSES[self.kind])}")
        if not (np.isfinite(self.mean) and np.isfinite(self.std) and self.std > 0):
            raise FrostlineError(f"regression targets need a finite mean and a positive spread, got mean "
                                 f"{self.mean}, standard deviation {self.std}")

    @classmethod
    def for_targets(cls, kind: str, targets: np.ndarray, loss: str | None = None) -> Task:
        """The task for training ``targets`` (regression: their mean and standard deviation)."""
        loss = loss or LOSSES[kind][0]
        if kind != "regression":
            return cls(kind, loss)
        y = np.asarray(targets, dtype=np.float64)
        std = float(y.std()) if len(y) > 1 else 0.0
        if not std > 0:
            raise FrostlineError(f"every training target is {float(y[0]) if len(y) else 'missing'}: a regression "
                                 "needs targets that vary")
        return cls(kind, loss, float(y.mean()), std)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Task:
        """Read back :meth:`to_dict` (``None``: a classification run from before tasks were recorded)."""
        return cls(**d) if d else cls()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)

    @property
    def problem_type(self) -> str:
        """The Hugging Face ``config.problem_type``."""
        return PROBLEM_TYPES[self.kind]

    def outputs(self, names: list[str]) -> int:
        """The head's output size for these class / label names (regression: 1)."""
        return 1 if self.kind == "regression" else len(names)

    def target_dtype(self) -> torch.dtype:
        """The dtype of batch targets."""
        return torch.long if self.kind == "classification" else torch.float32

    def loss_fn(self, logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The training loss (regression: on standardised targets; per sample with ``reduction="none"``)."""
        logits = logits.float()
        if self.kind == "classification":
            return nn.functional.cross_entropy(logits, targets, reduction=reduction)
        if self.kind == "regression":
            z = (targets.float() - self.mean) / self.std
            pred = logits.reshape(len(logits), -1)[:, 0]
            fn = nn.functional.mse_loss if self.loss == "mse" else nn.functional.huber_loss
            return fn(pred, z, reduction=reduction)
        per = nn.functional.binary_cross_entropy_with_logits(logits, targets.float(), reduction="none").mean(dim=1)
        return per if reduction == "none" else per.mean()

    def transform(self, logits: torch.Tensor) -> torch.Tensor:
        """What the user reads: class probabilities, values in the target's units, or per-label probabilities."""
        logits = logits.float()
        if self.kind == "classification":
            return torch.softmax(logits, dim=-1)
        if self.kind == "regression":
            return logits.reshape(len(logits), -1)[:, :1] * self.std + self.mean
        return torch.sigmoid(logits)

    def describe(self) -> str:
        """One line: the task, its loss and (regression) the standardisation."""
        if self.kind == "regression":
            return f"regression ({self.loss} on targets standardised with mean {self.mean:.4g}, sd {self.std:.4g})"
        return f"{self.kind} ({self.loss})"
