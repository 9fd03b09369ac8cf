"""After a run: curves, the operating threshold (chosen on validation, reported on test), and the diagnoses."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.leakage import LeakageReport
from .diagnose import Thresholds, diagnose_run
from .metrics import classification_metrics
from .predictions import Predictions
from .threshold import choose_positive, choose_threshold, curves, parse_objective, predict_at


def threshold_section(val: Predictions, test: Predictions, labels: list[str], train_labels: np.ndarray,
                      optimize: str | None, positive_label: str | None) -> dict[str, Any]:
    """PR / ROC curves of the positive class on test, and the threshold chosen on validation if asked."""
    pos, why = choose_positive(labels, train_labels, positive_label)
    section: dict[str, Any] = {"positive": labels[pos], "positive_reason": why,
                               "curves": curves(test.probs, test.labels, pos),
                               "val_curves": {k: v for k, v in curves(val.probs, val.labels, pos).items()
                                              if k not in ("pr", "roc")}}
    default_t = 0.5 if len(labels) == 2 else None
    section["default"] = {"threshold": default_t, "rule": "argmax" if default_t is None else "p >= 0.5"}
    if optimize:
        objective = parse_objective(optimize)
        chosen = choose_threshold(val.probs, val.labels, pos, objective)
        preds = predict_at(test.probs, pos, chosen["threshold"])
        section["chosen"] = {**chosen, "chosen_on": "val",
                             "test": classification_metrics(test.labels, preds, labels, test.loss)}
    return section


def clean_test(test: Predictions, labels: list[str], leak: LeakageReport | None) -> dict[str, Any] | None:
    """Test metrics re-scored without the test samples that also occur in training or validation (None: no leak)."""
    leaked = (leak.positions.get("test") if leak is not None else None) or []
    if not leaked or len(test.labels) == 0:
        return None
    keep = np.ones(len(test.labels), dtype=bool)
    keep[np.asarray(leaked, dtype=np.int64)] = False
    if not keep.any():
        return None
    losses = test.losses[keep] if test.losses is not None else None
    m = classification_metrics(test.labels[keep], test.preds[keep], labels,
                               float(losses.mean()) if losses is not None else None)
    return {**m, "excluded": int((~keep).sum())}


def audit_run(metrics: dict[str, Any], val: Predictions, test: Predictions, train_labels: np.ndarray,
              optimize: str | None, positive_label: str | None, leak: LeakageReport | None,
              thresholds: Thresholds) -> dict[str, Any]:
    """Fill ``metrics`` with ``threshold``, ``leakage`` and ``diagnoses``; returns it."""
    metrics["threshold"] = threshold_section(val, test, metrics["labels"], train_labels, optimize, positive_label)
    metrics["leakage"] = leak.to_dict() if leak is not None else None
    metrics["test_clean"] = clean_test(test, metrics["labels"], leak)
    metrics["thresholds"] = thresholds.to_dict()
    metrics["diagnoses"] = [f.to_dict() for f in diagnose_run(metrics, leak, thresholds)]
    return metrics
