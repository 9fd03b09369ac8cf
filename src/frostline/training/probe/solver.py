"""The solver of the linear probe (:mod:`.logistic`): softmax regression with an L2 penalty by L-BFGS on centred,
rotated and preconditioned features (the module docstring of :mod:`.logistic` says how and why), for one C."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import weakref
from typing import Any

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted for stability."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


#: samples converted to float64 at a time while a basis is built (the features are never copied whole)
CHUNK = 8192


class Basis:
    """Training features centred and rotated onto their principal axes: ``x - mean == f @ rot``, the rows of ``rot``
    orthonormal, so that ``W = U @ rot`` has ``||W|| == ||U||`` (see the module docstring).

    Held as ``ft = f.T`` (components x samples, float64: 8 bytes per sample and component, the only copy of the
    features it keeps), built from ``x`` (any float dtype, or anything indexed by arrays of rows) a chunk of samples
    at a time, in the order ``order``. :meth:`without` is the same basis on all samples but a contiguous range, as
    views (a cross-validation fold's training rows cost no copy); :attr:`parts` are the column blocks fit.
    """

    def __init__(self, x: Any, order: np.ndarray | None = None, spill_over: int | None = None) -> None:
        n, d = x.shape
        order = np.arange(n) if order is None else order
        self.n = n
        self.spilled = False

        def rows(i: int) -> np.ndarray:
            return np.asarray(x[order[i : i + CHUNK]], dtype=np.float64).reshape(-1, d)

        total = np.zeros(d)
        for i in range(0, n, CHUNK):
            total += rows(i).sum(axis=0)
        self.mean = total / max(n, 1)
        if n > d:  # a full rotation: the eigenvectors of the d x d scatter matrix
            scatter = np.zeros((d, d))
            for i in range(0, n, CHUNK):
                xc = rows(i) - self.mean
                scatter += xc.T @ xc
            _, vecs = np.linalg.eigh(scatter)
            self.rot = np.ascontiguousarray(vecs.T)
            self.ft = self._storage(d, n, spill_over)
            for i in range(0, n, CHUNK):
                xc = rows(i) - self.mean
                self.ft[:, i : i + len(xc)] = self.rot @ xc.T
        else:  # the data spans at most n directions, those of Q in (x - mean)^T = Q R; rotated within them
            xs = [rows(i) for i in range(0, n, CHUNK)] or [np.zeros((0, d))]
            q, r = np.linalg.qr((np.concatenate(xs) - self.mean).T)
            _, vecs = np.linalg.eigh(r @ r.T)
            self.rot = np.ascontiguousarray((q @ vecs).T)
            self.ft = np.ascontiguousarray((r.T @ vecs).T)
        self.parts = [self.ft]
        self.sq = np.einsum("ij,ij->i", self.ft, self.ft)
        self.mean_max = float(np.abs(self.mean).max()) if d else 0.0

    def _storage(self, d: int, n: int, spill_over: int | None) -> np.ndarray:
        """``ft``: in memory, or past ``spill_over`` bytes a memory-mapped temporary file (removed with the basis):
        its pages are the kernel's page cache, dropped under pressure, not the process's own memory."""
        if spill_over is None or 8 * d * n <= spill_over:
            return np.empty((d, n))
        folder = tempfile.mkdtemp(prefix="frostline-probe-")
        weakref.finalize(self, shutil.rmtree, folder, True)
        self.spilled = True
        return np.memmap(os.path.join(folder, "basis.f64"), dtype=np.float64, mode="w+", shape=(d, n))

    @property
    def width(self) -> int:
        """Components (columns of ``f``)."""
        return self.ft.shape[0]

    def without(self, lo: int, hi: int) -> Basis:
        """This basis on every sample but ``lo:hi`` (in build order): views, no copy. Centred on the mean of all
        samples, which moves only the bias: the minimum is the same (see the module docstring)."""
        view = copy.copy(self)
        view.parts = [p for p in (self.ft[:, :lo], self.ft[:, hi:]) if p.shape[1]]
        view.n = self.n - (hi - lo)
        view.sq = sum((np.einsum("ij,ij->i", p, p) for p in view.parts), np.zeros(self.width))
        return view

    def logits(self, u: np.ndarray, c: np.ndarray) -> np.ndarray:
        """``U f^T + c`` over :attr:`parts` (classes x samples)."""
        z = [u @ p for p in self.parts]
        return (z[0] if len(z) == 1 else np.concatenate(z, axis=1)) + c[:, None]

    def times_f(self, g: np.ndarray) -> np.ndarray:
        """``g @ f`` over :attr:`parts` (``g``: classes x samples)."""
        out, start = np.zeros((g.shape[0], self.width)), 0
        for p in self.parts:
            out += g[:, start : start + p.shape[1]] @ p.T
            start += p.shape[1]
        return out

    def loss(self, w: np.ndarray, b: np.ndarray, y: np.ndarray, lo: int, hi: int) -> float:
        """Mean cross-entropy of ``softmax(W x + b)`` on the samples ``lo:hi`` (labels ``y``) of the build order."""
        u, c = self.to_basis(w, b)
        z = u @ self.ft[:, lo:hi] + c[:, None]
        z -= z.max(axis=0)
        return float((np.log(np.exp(z).sum(axis=0)) - z[y, np.arange(hi - lo)]).mean())

    def to_basis(self, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(U, c)`` of the head ``(W, b)`` (``W``'s part outside the data's span dropped)."""
        return w @ self.rot.T, b + w @ self.mean

    def to_features(self, u: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)`` on the original features of ``(U, c)``."""
        w = u @ self.rot
        return w, c - w @ self.mean


def _raw_gradient_norm(basis: Basis, y: np.ndarray, w: np.ndarray, b: np.ndarray, penalty: float) -> float:
    """Max-norm of the mean objective's gradient with respect to ``W`` and ``b``, on the original features
    (``x = f rot + mean``: computed through the basis)."""
    g = basis.logits(*basis.to_basis(w, b))
    g = np.exp(g - g.max(axis=0))
    g /= g.sum(axis=0)
    g[y, np.arange(basis.n)] -= 1.0
    gs = g.sum(axis=1)
    gw = basis.times_f(g) @ basis.rot + np.outer(gs, basis.mean) + 2 * penalty * w
    return float(max(np.abs(gw).max(initial=0.0), np.abs(gs).max(initial=0.0))) / basis.n


class _Objective:
    """The mean objective at one C in the basis, preconditioned: the parameters are ``[(U * q).ravel(), c * qb]``.

    Laid out class by sample (``k x n``), which measured 25 % faster than ``n x k`` for these matrix shapes.
    """

    def __init__(self, basis: Basis, y: np.ndarray, k: int, C: float, tol: float) -> None:
        self.basis, self.k, self.tol = basis, k, tol
        self.penalty = (1.0 if k == 2 else 0.5) / C  # two rows for two classes: see the module docstring
        self.rows = (y, np.arange(basis.n))
        self.q, self.qb = np.ones(basis.width), 1.0
        self.gate = tol * basis.n * np.sqrt(max(basis.width, 1))
        self.theta = self.gu = self.gc = np.zeros(0)
        self.h = self.h_now = 1.0

    def forward(self, u: np.ndarray, c: np.ndarray) -> tuple[float, np.ndarray]:
        """Summed objective and class probabilities ``(k x n)`` at ``(U, c)``."""
        z = self.basis.logits(u, c)
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
        self.theta, self.gu, self.gc = theta.copy(), self.basis.times_f(g) + 2 * self.penalty * u, g.sum(axis=1)
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
                            or [(np.zeros((k, basis.width)), np.zeros(k))])
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
            "grad_norm": _raw_gradient_norm(basis, y, w, b, objective.penalty)}
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
