"""Precision / recall trade-off: PR and ROC curves, ROC-AUC, and an operating threshold chosen on validation.

One class is *positive* (binary: the minority class unless told; multi-class: one-vs-rest for that class).
A threshold ``t`` predicts the positive class when its probability is at least ``t``, otherwise the most likely
other class. Objectives:

* ``f1``: the threshold with the best F1 of the positive class;
* ``recall@precision>=0.95``: the best recall among thresholds whose precision is at least 0.95;
* ``precision@recall>=0.90``: the best precision among thresholds whose recall is at least 0.90.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import FrostlineError, did_you_mean

_CONSTRAINED = re.compile(r"^(recall|precision)@(precision|recall)>=([0-9]*\.?[0-9]+)$")


@dataclass(frozen=True)
class Objective:
    """What to maximise, under which constraint."""

    maximize: str
    constraint: str | None = None
    minimum: float = 0.0

    def __str__(self) -> str:
        return self.maximize if self.constraint is None else f"{self.maximize}@{self.constraint}>={self.minimum:g}"


def parse_objective(spec: str) -> Objective:
    """Parse ``f1``, ``recall@precision>=X`` or ``precision@recall>=X``."""
    text = spec.strip().replace(" ", "")
    if text == "f1":
        return Objective("f1")
    m = _CONSTRAINED.match(text)
    if m is None or m.group(1) == m.group(2):
        raise FrostlineError(f"bad --optimize {spec!r}; expected f1, recall@precision>=0.95 or "
                             f"precision@recall>=0.90{did_you_mean(text, ['f1'])}")
    minimum = float(m.group(3))
    if not 0 < minimum <= 1:
        raise FrostlineError(f"bad --optimize {spec!r}: the bound must be in (0, 1], got {minimum}")
    return Objective(m.group(1), m.group(2), minimum)


#: Label names that mean "the positive class" when the classes are equally frequent (compared case-folded).
POSITIVE_NAMES = ("positive", "pos", "yes", "true", "1", "spam", "fraud", "anomaly", "abnormal", "malignant",
                  "toxic", "relevant", "fresh")


def choose_positive(labels: list[str], train_labels: np.ndarray, positive: str | None) -> tuple[int, str]:
    """Index of the positive class for curves and thresholds, and why.

    The class named by ``positive``; else the rarest class in training; on a tie, a label named like a positive
    class (:data:`POSITIVE_NAMES`); else the last label, with a reason that says to set ``--positive-label``.
    """
    if positive is not None:
        if positive not in labels:
            raise FrostlineError(f"--positive-label {positive!r} is not a class; classes: {labels}"
                                 f"{did_you_mean(positive, labels)}")
        return labels.index(positive), "--positive-label"
    counts = np.bincount(train_labels, minlength=len(labels))
    rarest = np.flatnonzero(counts == counts.min())
    if len(rarest) == 1:
        i = int(rarest[0])
        return i, f"the rarest class in training ({int(counts[i])} of {int(counts.sum())})"
    named = [int(i) for i in rarest if labels[i].strip().casefold() in POSITIVE_NAMES]
    if len(named) == 1:
        return named[0], f"classes tie at {int(counts.min())} training samples; {labels[named[0]]!r} is named like a " \
                         "positive class"
    i = int(rarest[-1])
    return i, (f"classes tie at {int(counts.min())} training samples and none is named like a positive class: took "
               f"the last, {labels[i]!r}; set --positive-label to choose")


def positive_index(labels: list[str], train_labels: np.ndarray, positive: str | None) -> int:
    """Index of the positive class (see :func:`choose_positive`)."""
    return choose_positive(labels, train_labels, positive)[0]


def predict_at(probs: np.ndarray, positive: int, threshold: float) -> np.ndarray:
    """Predictions at ``threshold`` for the positive class (else the most likely other class)."""
    others = probs.copy()
    others[:, positive] = -np.inf
    return np.where(probs[:, positive] >= threshold, positive, others.argmax(axis=1))


def _thin(n: int, max_points: int) -> np.ndarray:
    """At most ``max_points`` indices spread evenly over ``n`` curve points, the first and last kept."""
    return np.unique(np.linspace(0, n - 1, min(max_points, n)).astype(int))


def curves(probs: np.ndarray, labels: np.ndarray, positive: int, max_points: int = 200) -> dict[str, Any]:
    """PR and ROC curves of the positive class (one-vs-rest), AP, ROC-AUC, and macro one-vs-rest ROC-AUC."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y = (labels == positive).astype(int)
    out: dict[str, Any] = {"positive_rate": float(y.mean()) if len(y) else 0.0}
    if y.min(initial=1) == y.max(initial=0):
        out.update(average_precision=None, roc_auc=None, roc_auc_ovr_macro=None, pr=None, roc=None,
                   note="only one class present: curves undefined")
        return out
    score = probs[:, positive]
    precision, recall, thresholds = precision_recall_curve(y, score)
    fpr, tpr, _ = roc_curve(y, score)
    keep = _thin(len(thresholds), max_points)
    out["pr"] = {"precision": precision[keep].tolist(), "recall": recall[keep].tolist(),
                 "threshold": thresholds[keep].tolist()}
    keep_roc = _thin(len(fpr), max_points)
    out["roc"] = {"fpr": fpr[keep_roc].tolist(), "tpr": tpr[keep_roc].tolist()}
    out["average_precision"] = float(average_precision_score(y, score))
    out["roc_auc"] = float(roc_auc_score(y, score))
    present = np.unique(labels)
    if probs.shape[1] > 2:  # several classes: each one against the rest (AP and its curve)
        out["per_class"] = [_one_vs_rest(probs[:, j], (labels == j).astype(int), max_points)
                            for j in range(probs.shape[1])]
    if probs.shape[1] > 2 and len(present) == probs.shape[1]:
        out["roc_auc_ovr_macro"] = float(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    else:
        out["roc_auc_ovr_macro"] = out["roc_auc"]
    return out


def _one_vs_rest(score: np.ndarray, y: np.ndarray, max_points: int) -> dict[str, Any] | None:
    """One class's precision-recall curve against the rest and its average precision (None when absent)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    if y.min(initial=1) == y.max(initial=0):
        return None
    precision, recall, _ = precision_recall_curve(y, score)
    keep = _thin(len(precision), max_points)
    return {"precision": precision[keep].tolist(), "recall": recall[keep].tolist(),
            "average_precision": float(average_precision_score(y, score)), "positive_rate": float(y.mean())}


def choose_threshold(probs: np.ndarray, labels: np.ndarray, positive: int,
                     objective: Objective) -> dict[str, Any]:
    """Pick the threshold on (validation) ``probs`` that best meets ``objective``.

    Returns ``{"threshold", "precision", "recall", "f1", "met"}``; ``met`` is False when no threshold satisfies
    the constraint, in which case the one closest to it is returned.
    """
    from sklearn.metrics import precision_recall_curve

    y = labels == positive
    if y.all() or not y.any():
        raise FrostlineError("cannot choose a threshold: the validation split has only one class for the "
                             "positive label")
    precision, recall, thresholds = precision_recall_curve(y.astype(int), probs[:, positive])
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(precision),
                   where=(precision + recall) > 0)
    values = {"precision": precision, "recall": recall, "f1": f1}
    met = True
    if objective.constraint is None:
        i = int(np.argmax(f1))
    else:
        ok = values[objective.constraint] >= objective.minimum
        if ok.any():
            candidates = np.flatnonzero(ok)
            i = int(candidates[np.argmax(values[objective.maximize][candidates])])
        else:
            met = False
            i = int(np.argmax(values[objective.constraint]))
    return {"threshold": float(thresholds[i]), "precision": float(precision[i]), "recall": float(recall[i]),
            "f1": float(f1[i]), "met": met, "objective": str(objective)}
