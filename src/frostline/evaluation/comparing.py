"""What a comparison's evidence supports: a strategy recommended on validation, test scores with intervals, and
paired tests between strategies on the same test samples.

* **Recommendation, on validation only.** Per-sample validation losses of each strategy's kept epoch (paired: the
  same samples) against the lowest mean: a strategy is *within noise* of the best when its mean loss is higher by
  less than 1.96 standard errors of the paired difference. The cheapest of those (fewest trainable parameters, then
  seconds) is recommended. Test never chooses.
* **Test intervals.** Accuracy: Wilson's score interval (not degenerate at 0 or 1 correct). Macro F1, R^2 and micro
  F1: the percentile interval of a bootstrap over test samples (``BOOTSTRAPS`` resamples, seeded).
* **Paired tests against the recommended strategy**, on the same test samples: McNemar's exact test (a binomial
  test on the samples one got right and the other wrong) for accuracy; a paired bootstrap of the difference for the
  other scores (two-sided: twice the share of resampled differences on the other side of zero).
* **Can test separate them?** When the best strategy on test is not the recommended one, the samples a paired test
  would need to find that difference at 5 % with 80 % power (the paired difference's standard error scaled as
  ``1/sqrt(n)``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from .evidence import bootstrap_weights, wilson

#: two-sided 95 % normal quantile, and the one for 80 % power
Z, Z_POWER = 1.959963984540054, 0.8416212335729143
#: bootstrap resamples of the test samples
BOOTSTRAPS = 2000
#: findings about the data, not a strategy: a comparison says them once
DATA_CODES = frozenset({"data-leakage", "conflicting-labels", "classes-absent", "constant-labels", "constant-target",
                        "small-test-split"})


def split_findings(diagnoses: list[list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """A comparison's findings as said: those about the data once (the first strategy's: the same split for all),
    then each strategy's own."""
    shared = [d for d in (diagnoses[0] if diagnoses else []) if d.get("code") in DATA_CODES]
    return shared, [[d for d in found if d.get("code") not in DATA_CODES] for found in diagnoses]


def mcnemar(a_right: np.ndarray, b_right: np.ndarray) -> float:
    """Exact McNemar p-value of two classifiers' correctness on the same samples."""
    from scipy.stats import binomtest

    b = int((a_right & ~b_right).sum())
    c = int((~a_right & b_right).sum())
    return 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue)


def _read_predictions(run: Path, kind: str, labels: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(index, true, predicted)`` of a run's predictions.csv (classes as numbers, label sets as 0/1 rows)."""
    with (run / "predictions.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    index = np.array([int(r["index"]) for r in rows])
    if kind == "regression":
        return index, np.array([float(r["true"]) for r in rows]), np.array([float(r["predicted"]) for r in rows])
    if kind == "multilabel":
        def onehot(cell: str) -> list[int]:
            on = set(cell.split("|")) if cell else set()
            return [int(n in on) for n in labels]

        return (index, np.array([onehot(r["true"]) for r in rows]).reshape(len(rows), len(labels)),
                np.array([onehot(r["predicted"]) for r in rows]).reshape(len(rows), len(labels)))
    code = {n: i for i, n in enumerate(labels)}  # the arg-max prediction, as the comparison table's scores
    return index, np.array([code[r["true"]] for r in rows]), np.array([code[r["predicted"]] for r in rows])


def _parts(kind: str, y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    """Per-sample terms whose (weighted) sums give the score: a sample's cell of the confusion matrix, its squared
    error and target moments, or its true / false positives and false negatives."""
    if kind == "regression":
        y, p = y.astype(np.float64), p.astype(np.float64)
        return np.stack([(y - p) ** 2, y, y * y], axis=1)
    if kind == "multilabel":
        tp = (y & p).sum(axis=1)
        return np.stack([tp, (p & ~y.astype(bool)).sum(axis=1), (y & ~p.astype(bool)).sum(axis=1)], axis=1)
    cells = np.zeros((len(y), k * k))
    cells[np.arange(len(y)), y * k + p] = 1.0
    return cells


def _from_sums(kind: str, sums: np.ndarray, n: int, k: int) -> np.ndarray:
    """Scores from summed :func:`_parts` (one row per resample): macro F1, R^2 or micro F1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "regression":
            sst = sums[:, 2] - sums[:, 1] ** 2 / n
            return np.where(sst > 0, 1 - sums[:, 0] / sst, np.nan)
        if kind == "multilabel":
            tp, fp, fn = sums[:, 0], sums[:, 1], sums[:, 2]
            return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        cm = sums.reshape(-1, k, k)
        tp = np.diagonal(cm, axis1=1, axis2=2)
        denom = cm.sum(axis=2) + cm.sum(axis=1)  # 2 tp + fn + fp
        return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0).mean(axis=1)


def _score(kind: str, y: np.ndarray, p: np.ndarray, k: int) -> float:
    """The headline score on all samples: macro F1 (every class, 0 where undefined), R^2 or micro F1."""
    return float(_from_sums(kind, _parts(kind, y, p, k).sum(axis=0)[None], len(y), k)[0])


def _bootstrap(kind: str, y: np.ndarray, p: np.ndarray, k: int, weights: list[np.ndarray]) -> np.ndarray:
    """The score on each resample (``weights``: chunks of per-sample multiplicities, resamples x samples)."""
    parts = _parts(kind, y, p, k).astype(np.float64)
    return np.concatenate([_from_sums(kind, w @ parts, len(y), k) for w in weights]) if weights else np.zeros(0)


SCORE_NAME = {"classification": "macro F1", "regression": "R^2", "multilabel": "micro F1"}


def evidence(runs: list[dict[str, Any]], kind: str, labels: list[str], seed: int = 0) -> dict[str, Any]:
    """The evidence of a comparison.

    Args:
        runs: One per strategy: ``{"strategy", "out" (run folder), "trainable", "seconds", "val_losses"
            ({index: loss} or None)}``.
        kind: The task: classification, regression or multilabel.
        labels: Class or label names.
        seed: Seed of the bootstrap.
    """
    out: dict[str, Any] = {"chosen_on": "validation loss (paired per sample)", "score": SCORE_NAME[kind]}
    out.update(_recommend(runs))
    rec = out.get("recommended")
    preds = {r["strategy"]: _read_predictions(Path(r["out"]), kind, labels) for r in runs}
    first = next(iter(preds.values()))
    if any(not np.array_equal(p[0], first[0]) for p in preds.values()):
        out["test"] = []
        out["note"] = "the strategies' test samples differ: no paired test"
        out["lines"] = [*_lines(out), out["note"]]
        return out
    y, n, k = first[1], len(first[1]), len(labels)
    rng = np.random.default_rng(seed)
    weights = [bootstrap_weights(rng, n, min(200, BOOTSTRAPS - i)) for i in range(0, BOOTSTRAPS, 200)] if n else []
    boot = {s: _bootstrap(kind, y, p[2], k, weights) for s, p in preds.items()}
    rows = []
    for s, (_, _, p) in preds.items():
        row: dict[str, Any] = {"strategy": s, "n": n, "score": _score(kind, y, p, k)}
        low, high = np.nanpercentile(boot[s], [2.5, 97.5]) if n else (float("nan"), float("nan"))
        row.update(low=float(low), high=float(high), method="bootstrap percentile")
        if kind == "classification":
            right = int((p == y).sum())
            lo, hi = wilson(right / n if n else 0.0, n)
            row["accuracy"] = {"value": right / n if n else float("nan"), "low": lo, "high": hi, "method": "Wilson"}
        if rec is not None and s != rec:
            d = boot[s] - boot[rec]
            diff = row["score"] - _score(kind, y, preds[rec][2], k)
            p_boot = float(min(1.0, 2 * min((d <= 0).mean(), (d >= 0).mean()))) if n else 1.0
            row["vs_recommended"] = {"diff": diff, "p": p_boot, "test": "paired bootstrap",
                                     "se": float(np.nanstd(d, ddof=1)) if n > 1 else float("nan")}
            if kind == "classification":
                row["vs_recommended"]["accuracy_p"] = mcnemar(p == y, preds[rec][2] == y)
        rows.append(row)
    out["test"] = rows
    best = max(rows, key=lambda r: r["score"] if math.isfinite(r["score"]) else -math.inf)
    out["best_on_test"] = best["strategy"]
    vs = best.get("vs_recommended")
    if vs is not None:
        out["separable"] = vs["p"] < 0.05
        if not out["separable"] and vs["diff"] > 0 and math.isfinite(vs["se"]) and vs["se"] > 0:
            out["samples_needed"] = math.ceil(n * ((Z + Z_POWER) * vs["se"] / vs["diff"]) ** 2)
    out["lines"] = _lines(out)
    return out


def _recommend(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The cheapest strategy whose validation loss is within noise of the lowest (see the module notes)."""
    usable = [r for r in runs if r.get("val_losses")]
    if len(usable) < len(runs) or not usable:
        return {"recommended": None, "why": "a run has no per-sample validation losses (made before they were kept)"}
    common = sorted(set.intersection(*(set(r["val_losses"]) for r in usable)))
    if len(common) < 2:
        return {"recommended": None, "why": "fewer than 2 validation samples"}
    losses = np.array([[r["val_losses"][i] for i in common] for r in usable])
    means = losses.mean(axis=1)
    best = int(np.argmin(means))
    rows = []
    for j, r in enumerate(usable):
        d = losses[j] - losses[best]
        se = float(d.std(ddof=1) / math.sqrt(len(d)))
        rows.append({"strategy": r["strategy"], "loss": float(means[j]), "diff": float(d.mean()), "se": se,
                     "within_noise": bool(j == best or d.mean() <= Z * se),
                     "trainable": r["trainable"], "seconds": r["seconds"]})
    within = [row for row in rows if row["within_noise"]]
    chosen = min(within, key=lambda row: (row["trainable"], row["seconds"]))
    lowest = rows[best]["strategy"]
    why = (f"lowest validation loss ({rows[best]['loss']:.4f})" if chosen["strategy"] == lowest else
           f"the cheapest within noise of {lowest}'s validation loss ({chosen['loss']:.4f} vs "
           f"{rows[best]['loss']:.4f}, difference {chosen['diff']:.4f} < 1.96 x {chosen['se']:.4f})")
    return {"recommended": chosen["strategy"], "why": why, "validation": rows, "n_val": len(common)}


def _lines(ev: dict[str, Any]) -> list[str]:
    """The evidence in a few terminal lines."""
    rec = ev.get("recommended")
    if rec is None:  # the test intervals still stand on their own
        lines = [f"no recommendation: {ev.get('why')}"]
    else:
        within = [r["strategy"] for r in ev.get("validation", []) if r["within_noise"]]
        outside = [r["strategy"] for r in ev.get("validation", []) if not r["within_noise"]]
        lines = [f"recommended: {rec} ({ev['why']}; chosen on validation, {ev['n_val']} samples, never on test)",
                 f"  within noise of the lowest validation loss: {', '.join(within)}"
                 + (f"; not: {', '.join(outside)}" if outside else "") + f"; {rec} is the cheapest of them"]
    for r in ev.get("test", []):
        vs = r.get("vs_recommended")
        acc = r.get("accuracy")
        acc_text = f", accuracy {acc['value']:.4f} [{acc['low']:.4f}, {acc['high']:.4f}]" if acc else ""
        text = f"  {r['strategy']}: test {ev['score']} {r['score']:.4f} [{r['low']:.4f}, {r['high']:.4f}]{acc_text}"
        if vs is not None:
            mc = f", McNemar p={vs['accuracy_p']:.3g}" if "accuracy_p" in vs else ""
            text += f"; vs {rec}: {vs['diff']:+.4f} (paired bootstrap p={vs['p']:.3g}{mc})"
        lines.append(text)
    best = ev.get("best_on_test")
    if best is not None and rec is not None and best != rec:
        n = ev["test"][0]["n"]
        if ev.get("separable"):
            lines.append(f"the best on test ({best}) beats {rec} beyond noise on {n} test samples, which validation "
                         "did not show: the validation split may be too small, or unlike the test split")
        else:
            need = ev.get("samples_needed")
            more = (f"; if the gap is real, about {need:,} test samples would be needed to show it (5 %, 80 % "
                    "power)" if need else "")
            lines.append(f"the best on test ({best}) is within noise of {rec} on {n} test samples: the test split "
                         f"cannot separate them{more}")
    return lines
