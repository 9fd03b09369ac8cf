"""Classification metrics from predictions: accuracy, precision / recall / F1 (per class, macro, weighted),
confusion matrix. Computed from the confusion matrix with NumPy; equal to scikit-learn's
``precision_recall_fscore_support(..., zero_division=0)`` and ``confusion_matrix`` (tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import FrostlineError

if TYPE_CHECKING:
    from ..core.task import Task
    from .predictions import Predictions


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix: rows are true classes, columns predicted classes."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise FrostlineError(f"y_true has {y_true.shape[0]} labels but y_pred has {y_pred.shape[0]}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise FrostlineError(f"{name} holds class {int(y.max())} outside 0..{n_classes - 1}")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str], loss: float | None = None
) -> dict[str, Any]:
    """All point metrics for one split.

    Args:
        y_true: True class indices.
        y_pred: Predicted class indices.
        label_names: Class names, index order.
        loss: Mean loss over the split, if known.

    Returns:
        ``{"n", "loss", "accuracy", "balanced_accuracy", "mcc", "majority_baseline", "majority_class",
        "precision", "recall", "f1", "support", "confusion_matrix"}``; precision, recall and f1 are
        ``{"per_class": {name: v}, "macro": v, "weighted": v}``. The majority baseline is the accuracy of always
        predicting the most frequent class of this split.
    """
    k = len(label_names)
    cm = confusion(y_true, y_pred, k)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = _div(tp, predicted)
    recall = _div(tp, support)
    f1 = _div(2 * precision * recall, precision + recall)
    n = int(cm.sum())
    weights = support / n if n else np.zeros(k)

    def summary(values: np.ndarray) -> dict[str, Any]:
        return {
            "per_class": {name: float(v) for name, v in zip(label_names, values, strict=True)},
            "macro": float(values.mean()) if k else 0.0,
            "weighted": float((values * weights).sum()),
        }

    present = support > 0
    return {
        "n": n,
        "loss": None if loss is None else float(loss),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "mcc": mcc(cm),
        "majority_baseline": float(support.max() / n) if n else 0.0,
        "majority_class": label_names[int(support.argmax())] if k else None,
        "precision": summary(precision),
        "recall": summary(recall),
        "f1": summary(f1),
        "support": {name: int(s) for name, s in zip(label_names, support, strict=True)},
        "confusion_matrix": cm.tolist(),
    }


def mcc(cm: np.ndarray) -> float:
    """Matthews correlation coefficient of a confusion matrix (multi-class form; 0 when undefined)."""
    cm = np.asarray(cm, dtype=np.float64)
    s = cm.sum()
    c = np.trace(cm)
    t, p = cm.sum(axis=1), cm.sum(axis=0)
    denom = np.sqrt((s * s - (p * p).sum()) * (s * s - (t * t).sum()))
    return float((c * s - (t * p).sum()) / denom) if denom > 0 else 0.0


def point_metrics(kind: str, y_true: np.ndarray, y_pred: np.ndarray, names: list[str], loss: float | None = None,
                  train_mean: float | None = None) -> dict[str, Any]:
    """The point metrics of ``kind`` (classification, regression or multilabel) for one split."""
    from .multilabel import multilabel_metrics
    from .regression import regression_metrics

    if kind == "regression":
        return regression_metrics(y_true, y_pred, loss, train_mean)
    if kind == "multilabel":
        return multilabel_metrics(y_true, y_pred, names, loss)
    return classification_metrics(y_true, y_pred, names, loss)


def task_of(m: dict[str, Any]) -> str:
    """The task a metrics dictionary was computed for."""
    return "regression" if "r2" in m else "multilabel" if "subset_accuracy" in m else "classification"


#: what a table shows per task: (key in :func:`headline`, column title)
HEADLINE = {
    "classification": (("accuracy", "accuracy"), ("precision", "prec."), ("recall", "recall"), ("f1", "F1")),
    "regression": (("rmse", "RMSE"), ("mae", "MAE"), ("r2", "R^2"), ("spearman", "Spearman")),
    "multilabel": (("subset_accuracy", "subset acc."), ("micro_f1", "micro F1"), ("f1", "macro F1"),
                   ("hamming_loss", "Hamming")),
}


def headline(m: dict[str, Any], average: str = "macro") -> dict[str, float | None]:
    """The few numbers a table shows: loss, accuracy and averaged precision / recall / F1 (regression: RMSE, MAE,
    R^2, Spearman; multilabel: subset accuracy, micro and macro F1, Hamming loss)."""
    kind = task_of(m)
    if kind == "regression":
        return {"loss": m.get("loss"), **{k: m[k] for k in ("rmse", "mae", "r2", "spearman")}}
    if kind == "multilabel":
        return {"loss": m.get("loss"), "subset_accuracy": m["subset_accuracy"], "micro_f1": m["f1"]["micro"],
                "f1": m["f1"][average], "hamming_loss": m["hamming_loss"]}
    return {
        "loss": m.get("loss"),
        "accuracy": m["accuracy"],
        "precision": m["precision"][average],
        "recall": m["recall"][average],
        "f1": m["f1"][average],
    }


def loss_se(losses: np.ndarray) -> float:
    """Standard error of a mean per-sample loss."""
    return float(np.std(losses, ddof=1) / np.sqrt(len(losses)))


def paired_change(now: np.ndarray | None, before: np.ndarray | None) -> dict[str, float] | None:
    """Mean per-sample change of the validation loss between two epochs, and its standard error (paired)."""
    if now is None or before is None or len(now) != len(before) or len(now) < 2:
        return None
    d = now - before
    return {"diff": float(d.mean()), "se": loss_se(d)}


def split_metrics(pred: Predictions, labels: list[str], task: Task | None = None) -> dict[str, Any]:
    """Point metrics of one prediction pass (with the standard error of the mean loss); a regression's baseline is
    its ``task``'s training mean."""
    mean = task.mean if task is not None and task.kind == "regression" else None
    m = point_metrics(pred.kind, pred.labels, pred.preds, labels, pred.loss, mean)
    if pred.losses is not None and len(pred.losses) > 1:
        m["loss_se"] = loss_se(pred.losses)
    return m
