"""Multi-label metrics: per-label precision / recall / F1, their micro, macro, weighted and samples averages,
subset accuracy and Hamming loss, each equal to scikit-learn's with ``zero_division=0`` (tested); and per-label
decision thresholds chosen on validation."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.errors import FrostlineError
from .evidence import bootstrap_weights


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def _f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    return _div(2 * p * r, p + r)


def multilabel_metrics(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str],
                       loss: float | None = None) -> dict[str, Any]:
    """All point metrics of one split from 0 / 1 matrices (samples x labels).

    Returns:
        ``{"n", "loss", "subset_accuracy", "hamming_loss", "hamming_accuracy", "all_negative_hamming",
        "precision", "recall", "f1", "support", "predicted", "label_cardinality"}``; precision, recall and f1 are
        ``{"per_class": {name: v}, "micro", "macro", "weighted", "samples"}``. ``all_negative_hamming`` is the
        Hamming accuracy of predicting no label at all: the multi-label majority baseline.
    """
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    if t.shape != p.shape or t.ndim != 2 or t.shape[1] != len(label_names):
        raise FrostlineError(f"y_true {t.shape} and y_pred {p.shape} must both be samples x {len(label_names)} "
                             "labels")
    n, k = t.shape
    tp = (t & p).sum(axis=0).astype(np.float64)
    support = t.sum(axis=0).astype(np.float64)
    predicted = p.sum(axis=0).astype(np.float64)
    precision, recall = _div(tp, predicted), _div(tp, support)
    f1 = _f1(precision, recall)
    micro_p = float(tp.sum() / predicted.sum()) if predicted.sum() else 0.0
    micro_r = float(tp.sum() / support.sum()) if support.sum() else 0.0
    s_tp = (t & p).sum(axis=1).astype(np.float64)
    s_p, s_r = _div(s_tp, p.sum(axis=1).astype(np.float64)), _div(s_tp, t.sum(axis=1).astype(np.float64))
    weights = support / support.sum() if support.sum() else np.zeros(k)

    def summary(values: np.ndarray, micro: float, samples: np.ndarray) -> dict[str, Any]:
        return {"per_class": {name: float(v) for name, v in zip(label_names, values, strict=True)},
                "micro": micro, "macro": float(values.mean()) if k else 0.0,
                "weighted": float((values * weights).sum()), "samples": float(samples.mean()) if n else 0.0}

    micro_f1 = float(_f1(np.array([micro_p]), np.array([micro_r]))[0])
    hamming = float((t != p).mean()) if t.size else 0.0
    return {
        "n": n, "loss": None if loss is None else float(loss),
        "subset_accuracy": float((t == p).all(axis=1).mean()) if n else 0.0,
        "hamming_loss": hamming, "hamming_accuracy": 1.0 - hamming,
        "all_negative_hamming": 1.0 - float(t.mean()) if t.size else 0.0,
        "precision": summary(precision, micro_p, s_p),
        "recall": summary(recall, micro_r, s_r),
        "f1": summary(f1, micro_f1, _f1(s_p, s_r)),
        "support": {name: int(s) for name, s in zip(label_names, support, strict=True)},
        "predicted": {name: int(s) for name, s in zip(label_names, predicted, strict=True)},
        "label_cardinality": float(t.sum(axis=1).mean()) if n else 0.0,
    }


#: a label's threshold is tuned only with at least this many positives in validation: with fewer, the F1-best
#: threshold fits a handful of samples (a label with 3 positives tuned to predict every sample)
MIN_POSITIVES = 10


def choose_label_thresholds(probs: np.ndarray, y_true: np.ndarray, min_positives: int = MIN_POSITIVES) -> np.ndarray:
    """Per label, the decision threshold that maximises F1 on these (validation) samples; 0.5 for a label with fewer
    than ``min_positives`` positives there (too few to tune on). Ties go to the threshold nearest 0.5."""
    probs, t = np.asarray(probs, np.float64), np.asarray(y_true).astype(bool)
    out = np.full(probs.shape[1], 0.5)
    for j in range(probs.shape[1]):
        pos = int(t[:, j].sum())
        if pos < max(1, min_positives):
            continue
        order = np.argsort(-probs[:, j], kind="stable")
        scores, hits = probs[order, j], t[order, j]
        tp = np.cumsum(hits)
        k = np.arange(1, len(scores) + 1)
        last = np.r_[scores[1:] != scores[:-1], True]  # a threshold takes every tie
        f1 = np.where(last, 2 * tp / (k + pos), -1.0)
        best = np.flatnonzero(f1 == f1.max())
        i = best[np.argmin(np.abs(scores[best] - 0.5))]
        out[j] = float(scores[i])
    return out


#: folds of the validation split: a tuned threshold is judged on the samples that did not choose it
THRESHOLD_FOLDS = 5
#: bootstrap resamples of the paired F1 difference, and the one-sided level a tuned threshold must pass
THRESHOLD_BOOTSTRAPS, THRESHOLD_LEVEL = 1000, 0.05


def judged_label_thresholds(probs: np.ndarray, y_true: np.ndarray, seed: int = 0,
                            min_positives: int = MIN_POSITIVES) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Per-label thresholds chosen on validation, each kept only where it beats 0.5 beyond noise; else 0.5.

    A threshold that maximises F1 on the samples it is chosen on always looks better there, so it is judged out of
    fold: the validation split is cut into :data:`THRESHOLD_FOLDS` folds, each fold's samples are decided at the
    threshold chosen on the other folds, and that label's F1 over all of them is compared with its F1 at 0.5 on
    the same samples by a paired bootstrap. The tuned threshold (chosen on the whole split) is kept when the
    out-of-fold F1 is higher in at least 95 % of the resamples. Returns the thresholds and, per label, why.
    """
    probs, t = np.asarray(probs, np.float64), np.asarray(y_true).astype(bool)
    n, k = t.shape
    tuned = choose_label_thresholds(probs, t, min_positives)
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(n), THRESHOLD_FOLDS) if n >= 2 * THRESHOLD_FOLDS else []
    weights = bootstrap_weights(rng, n, THRESHOLD_BOOTSTRAPS) if folds else np.zeros((0, n))
    out, record = np.full(k, 0.5), []
    for j in range(k):
        row: dict[str, Any] = {"tuned": float(tuned[j]), "kept": False}
        if int(t[:, j].sum()) < max(1, min_positives) or not folds:
            few = (f"fewer than {min_positives} positives" if folds else
                   f"fewer than {2 * THRESHOLD_FOLDS} samples")
            record.append({**row, "why": f"{few} on validation: 0.5"})
            continue
        held = np.zeros(n, bool)
        for f in folds:
            rest = np.setdiff1d(np.arange(n), f)
            cut = choose_label_thresholds(probs[rest][:, [j]], t[rest][:, [j]], min_positives)[0]
            held[f] = probs[f, j] >= cut
        f1, point = {}, {}
        for name, pred in (("tuned", held), ("half", probs[:, j] >= 0.5)):
            cells = np.stack([pred & t[:, j], pred & ~t[:, j], ~pred & t[:, j]]).astype(np.float64)  # tp, fp, fn
            tp, fp, fn = (weights @ cells.T).T
            f1[name] = _div(2 * tp, 2 * tp + fp + fn)
            ptp, pfp, pfn = cells.sum(axis=1)
            point[name] = 2 * ptp / (2 * ptp + pfp + pfn) if ptp + pfp + pfn else 0.0
        worse = float((f1["tuned"] <= f1["half"]).mean())
        row.update(out_of_fold_f1=float(point["tuned"]), f1_at_half=float(point["half"]), p_not_better=worse)
        if worse < THRESHOLD_LEVEL:
            out[j] = tuned[j]
            row.update(kept=True, why=f"beats 0.5 out of fold (not better in {worse:.1%} of resamples)")
        else:
            row["why"] = f"not better than 0.5 beyond noise out of fold (not better in {worse:.0%} of resamples): 0.5"
        record.append(row)
    return out, record
