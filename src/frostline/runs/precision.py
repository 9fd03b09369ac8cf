"""The precision a run trains in, and the check that reduced precision holds on this run's data.

``--precision`` unset (auto) picks bf16-mixed where the device runs it fast (:func:`~frostline.training.fabric.
precision_reason`). On a CPU that choice is checked before training: the base model (pretrained body, new head)
runs the validation split in float32 and under bf16 autocast. The new head is random: its logits sit near zero and
its loss near ln k whatever the body computes, so for classification the decision is made on a head fit to the
validation split's fp32 head inputs (logistic, L2 with C=1 on standardised features), scored on the fp32 and on the
bf16 inputs: bf16 is kept only if that loss moves by less than half its standard error over the split (the noise
any score on this split carries anyway); otherwise the run falls back to 32-true, and says so. Where the head's
inputs cannot be kept (:mod:`frostline.training.head_inputs`) and for the other tasks, the base model's own loss
decides. Accuracy is recorded beside it but does not decide (near-tie arg-maxes flip under any rounding).
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
    model, task, reuse = prepared.loaded.model, prepared.task, prepared.head_inputs
    fp32 = prepared.base_val if prepared.base_val is not None else predict(model, prepared.val, batch_size,
                                                                           task=task, reuse=reuse)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = predict(model, prepared.val, batch_size, task=task, reuse=reuse)
        x16 = reuse.lookup(prepared.val, count=False) if reuse is not None else None
    x32 = reuse.lookup(prepared.val, count=False) if reuse is not None else None
    n = len(fp32.losses)
    se_loss = float(np.std(fp32.losses, ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    check: dict[str, Any] = {"n": n, "loss_fp32": fp32.loss, "loss_bf16": low.loss, "loss_se": se_loss}
    moved = abs(low.loss - fp32.loss) > HOLDS_WITHIN_SE * se_loss
    if task.kind == "classification":
        acc32 = float((fp32.preds == fp32.labels).mean())
        acc16 = float((low.preds == low.labels).mean())
        se_acc = math.sqrt(max(acc32 * (1 - acc32), 1e-12) / n)
        check.update(accuracy_fp32=acc32, accuracy_bf16=acc16, accuracy_se=se_acc)
    if task.kind == "classification" and x16 is not None and x32 is not None and n > 1:
        # a fresh head's logits sit near zero (its loss near ln k whatever the body computes): decide on a head fit
        # to the validation features instead, where bf16's rounding of the body would show
        fitted = fitted_head_check(x32, x16, np.asarray(prepared.val.ds.labels), len(prepared.splits.label_names))
        check["fitted_head"] = fitted
        moved = abs(fitted["loss_bf16"] - fitted["loss_fp32"]) > HOLDS_WITHIN_SE * fitted["loss_se"]
    record["check"] = check
    if moved:
        what = "a head fit to the validation features" if "fitted_head" in check else "the base model"
        record.update(ran="32-true", why=f"{why}, but bf16 moved the validation loss of {what} by more than "
                                         f"{HOLDS_WITHIN_SE} standard error: fell back to 32-true")
    return record


def fitted_head_check(x32: torch.Tensor, x16: torch.Tensor, y: np.ndarray, k: int) -> dict[str, float]:
    """Validation loss and accuracy of one logistic head (L2, C=1, on standardised features) fit to the fp32 head
    inputs, on the fp32 and on the bf16 inputs: how far bf16's body moves a trained head's predictions."""
    from ..training.probe.solver import fit_logistic

    a = x32.double().numpy().reshape(len(y), -1)
    b = x16.double().numpy().reshape(len(y), -1)
    mean, std = a.mean(axis=0), a.std(axis=0) + 1e-12
    labels = y.astype(np.int64)
    w, bias, _ = fit_logistic((a - mean) / std, labels, k, C=1.0, max_iter=500)

    def losses(x: np.ndarray) -> tuple[np.ndarray, float]:
        z = (x - mean) / std @ w.T + bias
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -logp[np.arange(len(labels)), labels], float((z.argmax(axis=1) == labels).mean())

    (l32, acc32), (l16, acc16) = losses(a), losses(b)
    return {"loss_fp32": float(l32.mean()), "loss_bf16": float(l16.mean()),
            "loss_se": float(l32.std(ddof=1) / math.sqrt(len(l32))), "accuracy_fp32": acc32, "accuracy_bf16": acc16}


def describe(record: dict[str, Any]) -> str:
    """One line for the terminal and train.log."""
    check = record.get("check")
    if not check:
        return f"precision {record['ran']} ({record['why']})"
    fitted = check.get("fitted_head")
    if fitted:
        return (f"precision {record['ran']} ({record['why']}; a head fit to the validation features, only to "
                f"compare the two: its in-sample loss {fitted['loss_bf16']:.4f} in bf16 vs {fitted['loss_fp32']:.4f} "
                f"in fp32, standard error {fitted['loss_se']:.4f})")
    return (f"precision {record['ran']} ({record['why']}; base model's validation loss {check['loss_bf16']:.4f} in "
            f"bf16 vs {check['loss_fp32']:.4f} in fp32, standard error {check['loss_se']:.4f})")
