"""The solver of the linear probe (:mod:`frostline.training.probe`): softmax regression with an L2 penalty by L-BFGS
on centred, rotated and preconditioned features (the module docstring of ``probe`` says how and why), for one C."""

from __future__ import annotations

from typing import Any

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted for stability."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Basis:
    """Training features centred and rotated onto their principal axes: ``x - mean == f @ rot``, the rows of ``rot``
    orthonormal, so that ``W = U @ rot`` has ``||W|| == ||U||`` (see the module docstring)."""

    def __init__(self, x: np.ndarray) -> None:
        n, d = x.shape
        self.x, self.n = x, n
        self.mean = x.mean(axis=0)
        xc = x - self.mean
        if n > d:  # a full rotation: the eigenvectors of the d x d scatter matrix
            _, vecs = np.linalg.eigh(xc.T @ xc)
            self.rot = np.ascontiguousarray(vecs.T)
            self.f = xc @ vecs
        else:  # the data spans at most n directions, those of Q in (x - mean)^T = Q R; rotated within them
            q, r = np.linalg.qr(xc.T)
            _, vecs = np.linalg.eigh(r @ r.T)
            self.rot = np.ascontiguousarray((q @ vecs).T)
            self.f = r.T @ vecs
        self.ft = np.ascontiguousarray(self.f.T)
        self.sq = (self.f * self.f).sum(axis=0)
        self.mean_max = float(np.abs(self.mean).max()) if d else 0.0

    def to_basis(self, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(U, c)`` of the head ``(W, b)`` (``W``'s part outside the data's span dropped)."""
        return w @ self.rot.T, b + w @ self.mean

    def to_features(self, u: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` on the original features of ``(U, c)``."""
        w = u @ self.rot
        return w, c - w @ self.mean


def _raw_gradient_norm(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray, penalty: float) -> float:
    """Max-norm of the mean objective's gradient with respect to ``W`` and ``b``, on the original features."""
    g = softmax(x @ w.T + b)
    g[np.arange(len(y)), y] -= 1.0
    return float(max(np.abs(g.T @ x + 2 * penalty * w).max(initial=0.0), np.abs(g.sum(axis=0)).max())) / len(x)


class _Objective:
    """The mean objective at one C in the basis, preconditioned: the parameters are ``[(U * q).ravel(), c * qb]``.

    Laid out class by sample (``k x n``), which measured 25 % faster than ``n x k`` for these matrix shapes.
    """

    def __init__(self, basis: Basis, y: np.ndarray, k: int, C: float, tol: float) -> None:
        self.basis, self.k, self.tol = basis, k, tol
        self.penalty = (1.0 if k == 2 else 0.5) / C  # two rows for two classes: see the module docstring
        self.rows = (y, np.arange(basis.n))
        self.q, self.qb = np.ones(basis.f.shape[1]), 1.0
        self.gate = tol * basis.n * np.sqrt(max(basis.f.shape[1], 1))
        self.theta = self.gu = self.gc = np.zeros(0)
        self.h = self.h_now = 1.0

    def forward(self, u: np.ndarray, c: np.ndarray) -> tuple[float, np.ndarray]:
        """Summed objective and class probabilities ``(k x n)`` at ``(U, c)``."""
        z = u @ self.basis.ft + c[:, None]
        z -= z.max(axis=0)
        lse = np.log(np.exp(z).sum(axis=0))
        loss = float(lse.sum() - z[self.rows].sum()) + self.penalty * float((u * u).sum())
        return loss, np.exp(z - lse)

    def start(self, candidates: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Parameters at the candidate ``(U, c)`` with the lowest objective, preconditioned for the curvature there."""
        tried = [self.forward(u, c) for u, c in candidates]
        j = min(range(len(tried)), key=lambda i: tried[i][0])
        self.h = self.curvature(tried[j][1])
        self.q, self.qb = np.sqrt(self.h * self.basis.sq + 2 * self.penalty), np.sqrt(self.h * self.basis.n)
        u, c = candidates[j]
        return np.concatenate([(u * self.q).ravel(), c * self.qb])

    @staticmethod
    def curvature(probs: np.ndarray) -> float:
        """The loss's mean curvature per sample and class, ``p (1 - p)``, at the class probabilities."""
        return max(float((probs * (1.0 - probs)).mean()), 1e-8)

    def drifted(self) -> bool:
        """Whether the curvature at the last point is off the preconditioner's by more than 4x (as when a fit from
        zero goes where the training samples are all classified with confidence)."""
        return not self.h / 4 <= self.h_now <= 4 * self.h

    def split(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(U, c)`` of the parameters."""
        return theta[: -self.k].reshape(self.k, -1) / self.q, theta[-self.k :] / self.qb

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        u, c = self.split(theta)
        loss, g = self.forward(u, c)
        self.h_now = self.curvature(g)
        g[self.rows] -= 1.0
        self.theta, self.gu, self.gc = theta.copy(), g @ self.basis.f + 2 * self.penalty * u, g.sum(axis=1)
        n = self.basis.n
        return loss / n, np.concatenate([(self.gu / self.q).ravel(), self.gc / self.qb]) / n

    def done(self, theta: np.ndarray) -> bool:
        """Whether the largest entry of the gradient on the original features is at most ``tol`` at ``theta``.

        That gradient is ``gu @ rot + outer(gc, mean)`` (times ``1/n``): bounded row by row through ``||gu_c||``
        (``rot``'s rows are orthonormal), and computed only once the bound falls where it last would have passed.
        """
        if not np.array_equal(theta, self.theta):
            self(theta)
        basis, lim = self.basis, self.tol * self.basis.n
        gc = np.abs(self.gc)
        bound = float((np.sqrt((self.gu * self.gu).sum(axis=1)) + gc * basis.mean_max).max(initial=0.0))
        if max(bound, float(gc.max())) <= lim:
            return True
        if bound > self.gate:
            return False
        exact = max(float(np.abs(self.gu @ basis.rot + np.outer(self.gc, basis.mean)).max()), float(gc.max()))
        if exact <= lim:
            return True
        self.gate = bound * lim / exact
        return False


def solve(basis: Basis, y: np.ndarray, k: int, C: float, starts: list[tuple[np.ndarray, np.ndarray]],
           tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """L-BFGS on the centred, rotated, preconditioned problem from the best of ``starts`` (``(W, b)`` pairs, zeros
    when empty); returns ``W``, ``b`` on the original features and the solver facts."""
    from scipy.optimize import minimize

    objective = _Objective(basis, y, k, C, tol)
    theta = objective.start([basis.to_basis(w, b) for w, b in starts]
                            or [(np.zeros((k, basis.f.shape[1])), np.zeros(k))])
    reached, nit, restart = objective.done(theta), 0, False

    def callback(intermediate_result: Any) -> None:
        nonlocal reached, restart
        reached = objective.done(intermediate_result.x)
        restart = not reached and objective.drifted()
        if reached or restart:
            raise StopIteration

    while not reached and nit < max_iter:
        res = minimize(objective, theta, jac=True, method="L-BFGS-B", callback=callback,
                       options={"maxiter": max_iter - nit, "gtol": 0.0, "ftol": np.finfo(float).eps, "maxcor": 10})
        theta, nit = res.x, nit + int(res.nit)
        if not restart:  # reached, or no further decrease in float64 (SciPy's success), or out of iterations
            reached = reached or bool(res.success)
            break
        theta, restart = objective.start([objective.split(theta)]), False  # preconditioned for where it is now
    w, b = basis.to_features(*objective.split(theta))
    info = {"iterations": nit, "converged": reached,
            "grad_norm": _raw_gradient_norm(basis.x, y, w, b, objective.penalty)}
    return w, b, info


def fit_logistic(x: np.ndarray, y: np.ndarray, k: int, C: float, init: np.ndarray | None = None,
                 tol: float = 1e-8, max_iter: int = 5000) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Fit ``softmax(W x + b)`` by L-BFGS for one ``C``; returns ``W (k x d)``, ``b (k,)`` and solver facts.

    Args:
        x: Features ``(n, d)``.
        y: Class indices.
        k: Number of classes.
        C: Inverse L2 strength.
        init: Starting point ``[W.ravel(), b]`` (zeros when None).
        tol: Largest entry of the mean objective's gradient at which it stops.
        max_iter: Most L-BFGS iterations.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    d = x.shape[1]
    starts = [] if init is None else [(init[: k * d].reshape(k, d), init[k * d :])]
    return solve(Basis(x), np.asarray(y, dtype=np.int64), k, C, starts, tol, max_iter)
