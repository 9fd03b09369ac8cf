"""Regression metrics: MSE, RMSE, MAE, R^2 and Spearman's rank correlation, each equal to scikit-learn's /
SciPy's (tested), and the baseline of predicting the training mean."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import FrostlineError


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as ``scipy.stats.rankdata``."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def spearman(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Spearman's rank correlation (``None`` when either side is constant or there are fewer than 2 samples)."""
    if len(y_true) < 2:
        return None
    a, b = _ranks(np.asarray(y_true, np.float64)), _ranks(np.asarray(y_pred, np.float64))
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else None


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (``None`` when the targets are constant)."""
    y_true = np.asarray(y_true, np.float64)
    ss_tot = float(((y_true - y_true.mean()) ** 2).sum())
    if not ss_tot > 0:
        return None
    return 1.0 - float(((y_true - np.asarray(y_pred, np.float64)) ** 2).sum()) / ss_tot


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, loss: float | None = None,
                       train_mean: float | None = None) -> dict[str, Any]:
    """All point metrics of one split.

    Args:
        y_true: True values.
        y_pred: Predicted values (the user's units).
        loss: Mean training loss on this split (standardised units), if known.
        train_mean: The training split's mean target: the baseline that always predicts it.

    Returns:
        ``{"n", "loss", "mse", "rmse", "mae", "r2", "spearman", "target": {mean, std, min, max}, "mean_baseline":
        {"value", "mse", "rmse", "mae", "r2"}}``.
    """
    y_true = np.asarray(y_true, np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, np.float64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise FrostlineError(f"y_true has {len(y_true)} values but y_pred has {len(y_pred)}")
    n = len(y_true)
    err = y_pred - y_true
    mse = float((err**2).mean()) if n else 0.0
    out: dict[str, Any] = {
        "n": n, "loss": None if loss is None else float(loss),
        "mse": mse, "rmse": float(np.sqrt(mse)), "mae": float(np.abs(err).mean()) if n else 0.0,
        "r2": r2(y_true, y_pred) if n else None, "spearman": spearman(y_true, y_pred),
        "target": {"mean": float(y_true.mean()), "std": float(y_true.std()), "min": float(y_true.min()),
                   "max": float(y_true.max())} if n else None,
    }
    if train_mean is not None and n:
        base = np.full(n, float(train_mean))
        bmse = float(((base - y_true) ** 2).mean())
        out["mean_baseline"] = {"value": float(train_mean), "mse": bmse, "rmse": float(np.sqrt(bmse)),
                                "mae": float(np.abs(base - y_true).mean()), "r2": r2(y_true, base)}
    return out
