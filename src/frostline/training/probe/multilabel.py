"""A multi-label probe fit to convergence: one logistic regression per label on frozen features (the same L2
strength for all, as scikit-learn's ``OneVsRestClassifier(LogisticRegression(C=C))``), the strength chosen by
cross-validated binary cross-entropy on the training split."""

from __future__ import annotations

import time

import numpy as np
from threadpoolctl import threadpool_limits

from .logistic import DEFAULT_CS, PAST_MINIMUM, ProbeFit, checked_features, kfold, past_minimum


def bce(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray) -> float:
    """Mean binary cross-entropy over samples and labels of ``sigmoid(x W^T + b)``."""
    z = x @ w.T + b
    return float((np.logaddexp(0, z) - y * z).mean())


def fit_binary(x: np.ndarray, y: np.ndarray, C: float, init: np.ndarray | None = None, tol: float = 1e-8,
               max_iter: int = 5000) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit every label's ``sigmoid(w_j x + b_j)`` by L-BFGS at one ``C`` (scikit-learn's objective per label:
    ``sum_i BCE + ||w_j||^2 / (2 C)``); returns ``W (L x d)``, ``b (L,)`` and solver facts."""
    from scipy.optimize import minimize
    from scipy.special import expit

    n, d = x.shape
    k = y.shape[1]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: k * d].reshape(k, d), theta[k * d :]
        z = x @ w.T + b
        loss = float((np.logaddexp(0, z) - y * z).sum()) + 0.5 / C * float((w * w).sum())
        g = expit(z) - y  # no overflow warning for very negative z
        return loss / n, np.concatenate([(g.T @ x + w / C).ravel(), g.sum(axis=0)]) / n

    theta0 = np.zeros(k * d + k) if init is None else init
    res = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "gtol": tol, "ftol": 64 * np.finfo(float).eps, "maxcor": 30})
    _, grad = objective(res.x)
    return res.x[: k * d].reshape(k, d), res.x[k * d :], {"iterations": int(res.nit), "converged": bool(res.success),
                                                          "grad_norm": float(np.abs(grad).max())}


def fit_multilabel_probe(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                         cs: tuple[float, ...] = DEFAULT_CS, folds: int = 5, seed: int = 0,
                         ) -> tuple[np.ndarray, np.ndarray, ProbeFit]:
    """Fit the per-label logistic probe for each C (warm-started, strongest penalty first) and keep the C with the
    lowest cross-validated binary cross-entropy on the training split; the validation split is reported, not used.

    The grid stops two strengths past the best one when both are worse (the grid records only the strengths
    tried): the weakly penalised fits are the slow ones and, past the minimum, cannot be chosen.
    """
    t0 = time.perf_counter()
    x, xv = checked_features(x_train, x_val, "multi-label probe")
    y, yv = np.asarray(y_train, np.float64), np.asarray(y_val, np.float64)
    grid_cs = sorted(float(c) for c in cs)
    splits = kfold(len(y), folds, seed)

    with threadpool_limits(1):  # as the softmax probe: BLAS pools spin against each other on small problems
        thetas: list[np.ndarray | None] = [None] * len(splits)
        cv: list[float] = []
        full: list[tuple[np.ndarray, np.ndarray, dict]] = []
        theta = None
        for c in grid_cs:  # weakest penalty last: those fits are the slow ones, and are often not needed
            if splits:
                loss = 0.0
                for f, (tr, te) in enumerate(splits):
                    w, b, _ = fit_binary(x[tr], y[tr], c, thetas[f])
                    thetas[f] = np.concatenate([w.ravel(), b])
                    loss += bce(x[te], y[te], w, b) * len(te) / len(y)
                cv.append(loss)
            w, b, info = fit_binary(x, y, c, theta)
            theta = np.concatenate([w.ravel(), b])
            full.append((w, b, info))
            if past_minimum(cv if splits else [bce(xv, yv, *f[:2]) for f in full], PAST_MINIMUM):
                break
    grid = [{"C": c, "cv_loss": float(cv[j]) if splits else None, "val_loss": bce(xv, yv, w, b),
             "iterations": info["iterations"], "converged": info["converged"]}
            for j, (c, (w, b, info)) in enumerate(zip(grid_cs, full, strict=False))]
    key = "cv_loss" if splits else "val_loss"
    best = min(range(len(grid)), key=lambda j: grid[j][key])
    w, b, info = full[best]
    fit = ProbeFit(C=grid_cs[best], iterations=info["iterations"], grad_norm=info["grad_norm"],
                   converged=info["converged"], val_loss=grid[best]["val_loss"], seconds=time.perf_counter() - t0,
                   grid=grid, chosen_by=f"{len(splits)}-fold cross-validation on train" if splits else "validation",
                   solver="L-BFGS per label")
    return w, b, fit
