"""A regression probe fit exactly: ridge regression on frozen features, its L2 strength chosen by cross-validation.

A head-only plan on cached features is a convex problem for a regression too. Instead of a fixed number of SGD
epochs, the head is solved in closed form on the standardised targets (the task's mean and sd) for each strength of a
grid, and the strength with the lowest cross-validated mean squared error on the training split is kept (as
scikit-learn's ``RidgeCV`` with folds): ``min_w,b ||z - X w - b||^2 + alpha ||w||^2`` (bias not penalised).
"""

from __future__ import annotations

import time

import numpy as np

from .logistic import ProbeFit, checked_features, kfold

#: ridge strengths tried: 1e-3 .. 1e4 in half decades
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 4, 15))


def fit_ridge(x: np.ndarray, z: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """The ridge solution ``(w, b)`` for one ``alpha`` (centred, so the bias is not penalised)."""
    xm, zm = x.mean(axis=0), z.mean()
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (z - zm))
    return w, float(zm - xm @ w)


def fit_ridge_probe(x_train: np.ndarray, z_train: np.ndarray, x_val: np.ndarray, z_val: np.ndarray,
                    alphas: tuple[float, ...] = DEFAULT_ALPHAS, folds: int = 5, seed: int = 0,
                    ) -> tuple[np.ndarray, float, ProbeFit]:
    """Fit the ridge probe for every strength and keep the one with the lowest cross-validated MSE.

    Args:
        x_train: Training features ``(n, d)``.
        z_train: Standardised training targets.
        x_val: Validation features.
        z_val: Standardised validation targets (reported, never used to choose).
        alphas: Strengths to try.
        folds: Cross-validation folds on the training split (fewer when it is small; 0: choose on validation).
        seed: Seed of the folds.

    Returns:
        ``w (d,)``, ``b`` and the :class:`ProbeFit` (``C`` is ``1 / alpha``; losses are MSE in standardised units).
    """
    t0 = time.perf_counter()
    x, xv = checked_features(x_train, x_val, "ridge probe")
    z, zv = np.asarray(z_train, np.float64), np.asarray(z_val, np.float64)
    splits = kfold(len(z), folds, seed)
    cv = np.zeros(len(alphas))
    for tr, te in splits:
        for j, a in enumerate(alphas):
            w, b = fit_ridge(x[tr], z[tr], a)
            cv[j] += float(((x[te] @ w + b - z[te]) ** 2).sum()) / len(z)
    grid = []
    fits = [fit_ridge(x, z, a) for a in alphas]
    for j, (a, (w, b)) in enumerate(zip(alphas, fits, strict=True)):
        grid.append({"C": 1.0 / a, "alpha": a, "cv_loss": float(cv[j]) if splits else None,
                     "val_loss": float(((xv @ w + b - zv) ** 2).mean()), "iterations": 0, "converged": True})
    key = "cv_loss" if splits else "val_loss"
    best = min(range(len(grid)), key=lambda j: grid[j][key])
    w, b = fits[best]
    xc = x - x.mean(axis=0)
    grad = xc.T @ (xc @ w - (z - z.mean())) + alphas[best] * w  # the normal equations' residual: ~0 when exact
    fit = ProbeFit(C=1.0 / alphas[best], iterations=0, grad_norm=float(np.abs(grad).max() / len(z)), converged=True,
                   val_loss=grid[best]["val_loss"], seconds=time.perf_counter() - t0, grid=grid,
                   chosen_by=f"{len(splits)}-fold cross-validation on train" if splits else "validation",
                   solver="ridge (closed form)")
    return w, b, fit
