"""The precision a run trains in, and the check that reduced precision holds on this run's data.

``--precision`` unset (auto) picks bf16-mixed where the device runs it fast (:func:`~frostline.training.fabric.
precision_reason`). On a CPU that choice is checked before training: the base model (pretrained body, new head)
scores the validation split in float32 and under bf16 autocast, and bf16 is kept only if the validation loss moves
by less than half its standard error over the split (the noise any score on this split carries anyway); otherwise
the run falls back to 32-true, and says so. Accuracy is recorded beside it but does not decide: the new head is
random, its probabilities sit near a tie, and bf16's rounding can flip such arg-maxes without meaning anything.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..training.fabric import precision_reason, resolve_device
from ..training.prediction import predict

#: the largest move of a validation score under bf16, in standard errors of that score over the split
HOLDS_WITHIN_SE = 0.5


def choose_precision(prepared: Any, accelerator: str, precision: str | None, batch_size: int,
                     check: bool = True) -> dict[str, Any]:
    """``{"ran", "why", "check"}``: the precision the run will use, why, and the evidence when auto chose bf16.

    ``check=False`` (a distributed run: every rank trains in the precision it was launched with) records the auto
    choice without the validation check, and says so.
    """
    device, _ = resolve_device(accelerator, precision)
    ran, why = precision_reason(device, precision)
    record: dict[str, Any] = {"ran": ran, "why": why, "check": None}
    if precision is not None or ran == "32-true" or device != "cpu" or not len(prepared.val):
        return record
    if not check:
        record["why"] = f"{why}; not checked against fp32 in a distributed run (--precision 32-true to train in fp32)"
        return record
    prepared.reset()
    model, task = prepared.loaded.model, prepared.task
    fp32 = prepared.base_val if prepared.base_val is not None else predict(model, prepared.val, batch_size,
                                                                           task=task)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = predict(model, prepared.val, batch_size, task=task)
    n = len(fp32.losses)
    se_loss = float(np.std(fp32.losses, ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    check: dict[str, Any] = {"n": n, "loss_fp32": fp32.loss, "loss_bf16": low.loss, "loss_se": se_loss}
    moved = abs(low.loss - fp32.loss) > HOLDS_WITHIN_SE * se_loss
    if task.kind == "classification":
        acc32 = float((fp32.preds == fp32.labels).mean())
        acc16 = float((low.preds == low.labels).mean())
        se_acc = math.sqrt(max(acc32 * (1 - acc32), 1e-12) / n)
        check.update(accuracy_fp32=acc32, accuracy_bf16=acc16, accuracy_se=se_acc)
    record["check"] = check
    if moved:
        record.update(ran="32-true", why=f"{why}, but bf16 moved the base model's validation loss by more than "
                                         f"{HOLDS_WITHIN_SE} standard error: fell back to 32-true")
    return record


def describe(record: dict[str, Any]) -> str:
    """One line for the terminal and train.log."""
    check = record.get("check")
    if not check:
        return f"precision {record['ran']} ({record['why']})"
    return (f"precision {record['ran']} ({record['why']}; base model's validation loss {check['loss_bf16']:.4f} in "
            f"bf16 vs {check['loss_fp32']:.4f} in fp32, standard error {check['loss_se']:.4f})")
