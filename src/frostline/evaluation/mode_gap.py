"""The training split scored far worse in eval mode than while training: the model computes something else once it
is evaluated (BatchNorm running statistics that lag the weights, or dropout), so more training will not help."""

from __future__ import annotations

import math
from typing import Any

from ..core.findings import Finding
from .evidence import pct


def train_eval_gap(history: list[dict[str, Any]], best_epoch: int | None, train_eval: dict[str, Any] | None,
                   bn: dict[str, Any] | None, gap: float = 0.10) -> list[Finding]:
    """Fires when the kept epoch's training accuracy measured while training (train mode: batch statistics, dropout
    on, weights moving, so usually an underestimate) beats the same weights' accuracy on the same training split in
    eval mode by more than ``gap`` and 3 standard errors.

    ``bn`` is the run's BatchNorm record (``mode``: eval / train / reestimate / none, ``layers``, ``momentum``): the
    cause named and the fix depend on it.
    """
    if not history or not train_eval or "accuracy" not in train_eval or not train_eval.get("n"):
        return []
    kept = next((h for h in history if h["epoch"] == best_epoch), history[-1])
    if kept.get("probe") or "accuracy" not in kept["train"]:
        return []
    a_train, a_eval, n = kept["train"]["accuracy"], train_eval["accuracy"], int(train_eval["n"])
    se = math.sqrt(max(a_train * (1 - a_train) + a_eval * (1 - a_eval), 1e-12) / n)
    diff = a_train - a_eval
    if diff <= max(gap, 3 * se):
        return []
    numbers = {"epoch": kept["epoch"], "train_mode_accuracy": a_train, "eval_mode_accuracy": a_eval, "n": n,
               "difference": diff, "se": se, "train_mode_loss": kept["train"].get("loss"),
               "eval_mode_loss": train_eval.get("loss"), "bn": bn}
    said = (f"the training split scores {pct(a_eval)} in eval mode but {pct(a_train)} while training (epoch "
            f"{kept['epoch']}, the weights kept; {100 * diff:.1f} points apart, standard error {100 * se:.1f}, on {n} "
            "samples): the "
            "model computes something else once evaluated")
    mode = (bn or {}).get("mode", "none")
    if mode == "train":
        momentum = (bn or {}).get("momentum")
        lag = f" (momentum {momentum:g}: each batch moves them by {pct(momentum)})" if momentum else ""
        layers = (bn or {}).get("layers", "its")
        cause = (f"; the cause is BatchNorm: {layers} BatchNorm layers normalise with batch "
                 f"statistics while training, but in eval mode with running statistics that lag the changing "
                 f"weights{lag}")
        fix = ("keep BatchNorm in eval mode with its pretrained statistics (--bn eval, the default for models with "
               "BatchNorm), or recompute the statistics on the training data before each evaluation "
               "(--bn reestimate); training longer will not close this gap")
    else:
        cause = ("; BatchNorm is not the cause (" + ("the model has none" if mode == "none" else
                 f"--bn {mode}") + "): dropout or another module that acts differently in training mode is")
        fix = ("check the model's train-mode-only behaviour (dropout rates, stochastic depth, custom layers); "
               "training longer will not close this gap")
    return [Finding("train-eval-gap", "error", said + cause, fix, numbers)]
