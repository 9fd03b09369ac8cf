"""The final scoring of a run: its best epoch on validation and test, the metrics.json content and the audit."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..data import Splits
from ..evaluation.audit import audit_run
from ..evaluation.metrics import split_metrics
from ..evaluation.multilabel import judged_label_thresholds
from ..evaluation.predictions import Predictions
from ..evaluation.task_audit import audit_task_run
from ..models.parts import model_parts
from ..models.tree import has_running_stats
from ..training.prediction import predict
from ..training.records import FitResult, Resume
from ..training.strategies import Strategy

if TYPE_CHECKING:
    from .config import RunConfig
    from .preparation import Prepared, Status


def data_summary(splits: Splits, dropped: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where the data came from, split sizes and class counts, rows dropped (count, and per file each reason with
    the rows: ``dropped``, from :attr:`Prepared.dropped`)."""
    dropped = dropped or {}
    return {
        "source": splits.train.source,
        "sizes": splits.sizes(),
        "class_counts": {n: s.class_counts() for n, s in
                         (("train", splits.train), ("val", splits.val), ("test", splits.test))},
        "skipped_rows": sum(len(w) for d in dropped.values() for w in d["reasons"].values()) if dropped
        else splits.train.skipped,
        "dropped": dropped,
    }


def score_run(cfg: RunConfig, prepared: Prepared, strategy: Strategy, result: FitResult, resume: Resume | None,
              started: float, head: dict[str, Any], model_info: dict[str, Any], base: dict[str, Any],
              status: Status) -> tuple[dict[str, Any], Predictions, tuple[int, float] | None, Predictions]:
    """Score the model (holding the best epoch's weights) and build metrics.json.

    Returns:
        The metrics, the test predictions, the operating threshold ``(positive class, t)`` if one was chosen, and the
        validation predictions.
    """
    model, labels, task = prepared.loaded.model, prepared.splits.label_names, prepared.task
    with status(f"scoring the best epoch ({result.best_epoch}) on validation and test"):
        reuse = prepared.head_inputs  # after a linear probe the body is the base model's: its head inputs hold
        test_pred = predict(model, prepared.test, cfg.eval_batch_size, task=task, reuse=reuse)
        val_pred = predict(model, prepared.val, cfg.eval_batch_size, task=task, reuse=reuse)
    label_thresholds, threshold_record = None, None
    if task.kind == "multilabel":  # per-label thresholds chosen on validation, applied to test
        label_thresholds, threshold_record = judged_label_thresholds(val_pred.probs, val_pred.labels, cfg.seed)
    test = split_metrics(test_pred, labels, task)
    train_eval = None
    kept = next((h for h in result.history if h["epoch"] == result.best_epoch), None)
    if kept is not None and kept.get("probe"):
        train_eval = kept["train"]  # the convex fit's own scores on train: eval mode, the kept weights already
    elif kept is not None and _gap(kept["train"], kept["val"]):
        # a gap measured with dropout on and weights moving: re-score the kept weights on train before claiming it
        with status(f"scoring the best epoch on {len(prepared.train)} training samples (overfitting evidence)"):
            train_eval = split_metrics(predict(model, prepared.train, cfg.eval_batch_size, task=task), labels, task)
    parts = model_parts(model)
    last_epoch = result.history[-1]["epoch"] if result.history else 1
    final_plan = strategy.plan(last_epoch - 1, parts, cfg.body_lr(), cfg.head_lr).params
    metrics = {
        "run": {"model": cfg.model, "strategy": str(strategy), "epochs": cfg.budget("epochs"), "seed": cfg.seed,
                "device": result.device, "precision": result.precision,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                "resumed_from_epoch": resume.next_epoch if resume else None, "bn": bn_record(model, result.bn),
                "budget": {"epochs": cfg.budget("epochs"), "epochs_run": len(result.history), "lr": cfg.body_lr(),
                           "head_lr": cfg.head_lr, "batch_size": cfg.batch_size, "schedule": cfg.schedule,
                           "probe": next((h["probe"] for h in result.history if h.get("probe")), None),
                           "converged": result.converged},
                **({"auto": choice} if (choice := strategy.choice()) is not None else {})},
        "model": model_info,
        "labels": labels,
        "data": data_summary(prepared.splits, prepared.dropped),
        "head": head,
        "params": {"total": result.total_params, "trainable": result.trainable_params},
        "parts": [{"name": p.name, "params": sum(model.get_parameter(n).numel() for n in p.params),
                   "trainable": bool(set(p.params) & final_plan)} for p in parts],
        "task": {**task.to_dict(), "problem_type": task.problem_type, "chosen": prepared.splits.train.task_note},
        "history": result.history,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "seconds": {"total": round(result.seconds, 3),
                    "per_epoch": [round(h["seconds"], 3) for h in result.history]},
        "test": test,
        "val": split_metrics(val_pred, labels, task),  # the kept weights, scored as test is (validation.csv's losses)
        "train_eval": train_eval,
        "base": base,
    }
    metrics["data"]["dedup_dropped"] = prepared.dedup_dropped
    metrics["data"]["fingerprint"] = prepared.data_hashes.get("data")
    metrics["data"]["sha256"] = prepared.data_hashes
    metrics["data"]["path"] = str(Path(cfg.data).resolve()) if cfg.data else None
    if task.kind != "classification":
        audit_task_run(metrics, val_pred, test_pred, prepared.leakage, cfg.thresholds(), label_thresholds,
                       prepared.splits.train.labels)
        if threshold_record is not None and metrics.get("threshold"):
            metrics["threshold"]["per_label"] = dict(zip(labels, threshold_record, strict=True))
            metrics["threshold"]["kept"] = [n for n, r in zip(labels, threshold_record, strict=True) if r["kept"]]
            metrics["threshold"]["rule"] = ("a threshold tuned on validation is kept only where, judged out of fold, "
                                            "it beats 0.5 beyond noise (else 0.5)")
        return metrics, test_pred, None, val_pred  # test_pred now decides at the per-label thresholds (predictions.csv)
    audit_run(metrics, val_pred, test_pred, prepared.splits.train.labels, cfg.optimize, cfg.positive_label,
              prepared.leakage, cfg.thresholds())
    chosen = metrics["threshold"].get("chosen")
    at = (labels.index(metrics["threshold"]["positive"]), chosen["threshold"]) if chosen else None
    return metrics, test_pred, at, val_pred


def bn_record(model: torch.nn.Module, mode: str) -> dict[str, Any]:
    """How the run treated BatchNorm: the mode, how many layers, their smallest momentum (None: cumulative)."""
    norms = [m for m in model.modules() if has_running_stats(m)]
    momenta = [m.momentum for m in norms if getattr(m, "momentum", None) is not None]
    return {"mode": mode, "layers": len(norms), "momentum": min(momenta) if momenta else None}


def _gap(train: dict[str, Any], val: dict[str, Any]) -> bool:
    """Whether the train / validation gap is worth re-scoring the kept weights on train for: 5 accuracy points
    (classification), 5 points of micro F1 (multilabel), or a validation MSE 1.5x the training one (regression)."""
    if "accuracy" in train:
        return train["accuracy"] - val["accuracy"] > 0.05
    if "r2" in train:
        return val["mse"] > 1.5 * train["mse"]
    return train["f1"]["micro"] - val["f1"]["micro"] > 0.05
