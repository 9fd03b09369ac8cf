"""After a regression or multi-label run: per-label thresholds, leakage, and the findings of these tasks.

Each finding carries its evidence and holds beyond the split's noise:

* ``no-better-than-mean`` (regression): the model's squared errors are not below those of always predicting the
  training mean, by a paired comparison on the test samples (mean difference and 1.96 standard errors); an error
  when R^2 <= 0;
* ``label-paradox`` (multilabel): Hamming accuracy looks high while labels with enough positives to show it are
  missed (the upper end of the recall's 95 % Wilson interval below 50 %), beside the Hamming accuracy of predicting
  no label at all;
* ``overfitting``: the validation loss of the last epoch is above the best epoch's by more than two standard errors
  of the paired per-sample change, while the training loss kept falling;
* ``data-leakage``: the same sample on both sides of a split (shared with classification);
* ``verdict``: good / fair / bad by R^2 (regression) or micro F1 (multilabel), with the thresholds of the run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.findings import Finding, by_severity
from ..data.leakage import LeakageReport
from .data_findings import leakage, small_test_split
from .evidence import pct, wilson
from .metrics import point_metrics
from .predictions import Predictions


def _rescored(pred: Predictions, labels: list[str], keep: np.ndarray, train_mean: float | None) -> dict[str, Any]:
    losses = pred.losses[keep] if pred.losses is not None else None
    return point_metrics(pred.kind, pred.labels[keep], pred.preds[keep], labels,
                         float(losses.mean()) if losses is not None and len(losses) else None, train_mean)


def audit_task_run(metrics: dict[str, Any], val: Predictions, test: Predictions, leak: LeakageReport | None,
                   thresholds: Any, label_thresholds: np.ndarray | None = None,
                   train_targets: np.ndarray | None = None) -> dict[str, Any]:
    """Fill ``metrics`` (a regression or multi-label run's) with ``threshold``, ``leakage``, ``test_clean`` and
    ``diagnoses``. A multi-label run's ``test`` is re-scored at ``label_thresholds`` (chosen on validation);
    its scores at 0.5 stay in ``threshold.at_0.5``."""
    labels, kind = metrics["labels"], test.kind
    mean = metrics["task"]["mean"] if kind == "regression" else None
    metrics["threshold"] = None
    if kind == "multilabel" and label_thresholds is not None:
        at_half = metrics["test"]
        test.thresholds = label_thresholds
        metrics["test"] = _rescored(test, labels, np.ones(len(test.labels), bool), None)
        metrics["test"]["loss_se"] = at_half.get("loss_se")
        metrics["threshold"] = {"label_thresholds": dict(zip(labels, map(float, label_thresholds), strict=True)),
                                "chosen_on": "val (each kept only where it beats 0.5 out of fold)",
                                "objective": "f1 per label", "at_0.5": at_half}
    metrics["leakage"] = leak.to_dict() if leak is not None else None
    leaked = (leak.positions.get("test") if leak is not None else None) or []
    metrics["test_clean"] = None
    if leaked and len(test.labels) > len(leaked):
        keep = np.ones(len(test.labels), bool)
        keep[np.asarray(leaked, dtype=np.int64)] = False
        metrics["test_clean"] = {**_rescored(test, labels, keep, mean), "excluded": int((~keep).sum())}
    metrics["thresholds"] = thresholds.to_dict()
    found = [*small_test_split(metrics["test"]), *_graded_leakage(leak, metrics["test"], metrics["test_clean"]),
             *overfitting(metrics["history"]),
             *constant_target(kind, train_targets, labels)]
    if kind == "regression":
        found += no_better_than_mean(test, mean)
    else:
        found += label_paradox(metrics["test"])
    judged = metrics["test_clean"] or metrics["test"]
    errors = sum(f.severity == "error" for f in found)
    scope = (f"on the {judged['n']} test samples not seen in training" if metrics["test_clean"]
             else f"on the {judged['n']} test samples")
    found = [*by_severity(found), task_verdict(kind, judged, thresholds, errors, scope)]
    metrics["diagnoses"] = [f.to_dict() for f in found]
    return metrics


def _graded_leakage(leak: LeakageReport | None, test: dict[str, Any], clean: dict[str, Any] | None) -> list[Finding]:
    """The leakage finding graded by its effect, as for classification: an error when at least 10 % of the test split
    leaked or the headline score moves by 3 points or more without the leaked samples, else a warning with both
    scores (R^2 for a regression, micro F1 for multilabel)."""
    found = leakage(leak, values="r2" in test)
    if not found or clean is None or not test.get("n") or not clean.get("excluded"):
        return found  # nothing of the test split leaked: the validation-only finding stands as graded
    share = clean["excluded"] / test["n"]
    key, name = ("r2", "R^2") if "r2" in test else ("micro_f1", "micro F1")
    value = (lambda m: m.get("r2")) if key == "r2" else (lambda m: m["f1"]["micro"])
    a, b = value(test), value(clean)
    moved = a is not None and b is not None and abs(a - b) >= 0.03
    out = []
    for f in found:
        if f.code != "data-leakage":
            out.append(f)
            continue
        effect = (f"{name} {a:.4f} on all {test['n']} test samples, {b:.4f} on the {clean['n']} unseen"
                  if a is not None and b is not None else "")
        message = f.message.replace(". Test scores are inflated by memorised samples", "")
        severe = share >= 0.10 or moved
        out.append(Finding(f.code, "error" if severe else "warning",
                           f"{message}. {effect}" + ("" if severe else ": the leak barely moves the score (trust the "
                                                     "unseen score; the verdict judges it)"),
                           f.fix, {**f.numbers, "test_share": share, "score_all": a, "score_unseen": b}))
    return out


def no_better_than_mean(test: Predictions, train_mean: float | None) -> list[Finding]:
    """The model against always predicting the training mean, paired per test sample."""
    y = np.asarray(test.labels, np.float64)
    if train_mean is None or len(y) < 3:
        return []
    model = (test.preds - y) ** 2
    base = (train_mean - y) ** 2
    d = model - base
    diff, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(model.sum()) / ss_tot if ss_tot > 0 else None
    numbers = {"mse": float(model.mean()), "mean_baseline_mse": float(base.mean()), "difference": diff, "se": se,
               "r2": r2, "train_mean": train_mean, "n": len(y)}
    text = (f"test MSE {model.mean():.4g} against {base.mean():.4g} for always predicting the training mean "
            f"{train_mean:.4g} (paired difference {diff:+.4g} +/- {1.96 * se:.4g} at 95% on {len(y)} samples"
            + (f"; R^2 {r2:.3f}" if r2 is not None else "") + ")")
    fix = ("train longer or unfreeze more (partial:2, full), check that the target can be read from the text, "
           "or try --loss huber when a few targets are extreme")
    beats_train_mean = diff + 1.96 * se < 0
    if r2 is not None and r2 <= 0 and beats_train_mean:  # R^2 judges against this data's own mean, not training's
        return [Finding("target-shift", "warning",
                        f"{text}: the model beats the training mean, yet R^2 is at or below 0 because this data's "
                        f"mean target ({float(y.mean()):.4g}) differs from the training mean: the targets shifted",
                        "check that this data's targets are on the training data's scale; fine-tune on some of it",
                        numbers)]
    if r2 is not None and r2 <= 0:
        return [Finding("no-better-than-mean", "error", f"{text}: the model is no better than the mean", fix, numbers)]
    if diff + 1.96 * se >= 0:
        return [Finding("no-better-than-mean", "warning", f"{text}: the gain over the mean is within the noise of "
                        "this test split", fix, numbers)]
    return []


def label_paradox(m: dict[str, Any], high: float = 0.90, low_recall: float = 0.50) -> list[Finding]:
    """High Hamming accuracy hiding labels the model misses (beyond noise)."""
    if m["hamming_accuracy"] < high or not m["n"]:
        return []
    missed = []
    for name, support in m["support"].items():
        if support < 5:
            continue  # too few positives to show a miss beyond noise
        recall = m["recall"]["per_class"][name]
        lo, hi = wilson(recall, support)
        if hi < low_recall:
            missed.append((name, support, recall, lo, hi))
    if not missed:
        return []
    shown = "; ".join(f"{n!r} recall {pct(r)} ({pct(lo)}-{pct(hi)} on {s})" for n, s, r, lo, hi in missed[:6]) + (
        f"; and {len(missed) - 6} more (metrics.json)" if len(missed) > 6 else "")
    severe = any(r < 0.2 for _n, _s, r, _lo, _hi in missed)
    return [Finding(
        "label-paradox", "error" if severe else "warning",
        f"Hamming accuracy {pct(m['hamming_accuracy'])} looks good, but predicting no label at all scores "
        f"{pct(m['all_negative_hamming'])}: {len(missed)} label(s) are missed: {shown}. Micro F1 is "
        f"{m['f1']['micro']:.3f}, macro F1 {m['f1']['macro']:.3f}.",
        "judge by per-label recall / F1 and macro F1; more examples of the missed labels, more trainable layers, or "
        "more epochs",
        {"hamming_accuracy": m["hamming_accuracy"], "all_negative_hamming": m["all_negative_hamming"],
         "missed": [{"label": n, "support": s, "recall": r, "recall_interval": [lo, hi]}
                    for n, s, r, lo, hi in missed]})]


def overfitting(history: list[dict[str, Any]]) -> list[Finding]:
    """The validation loss rose beyond noise after its best epoch while the training loss kept falling."""
    if len(history) < 2:
        return []
    best = min(range(len(history)), key=lambda i: history[i]["val"]["loss"])
    last = history[-1]
    change = last.get("val_vs_best")
    if best == len(history) - 1 or not change or not change.get("se"):
        return []
    falling = last["train"]["loss"] < history[best]["train"]["loss"]
    if not (falling and change["diff"] > 2 * change["se"]):
        return []
    return [Finding(
        "overfitting", "warning",
        f"validation loss rose from {history[best]['val']['loss']:.4g} (epoch {history[best]['epoch']}) to "
        f"{last['val']['loss']:.4g} (epoch {last['epoch']}; paired change {change['diff']:+.4g} +/- "
        f"{2 * change['se']:.4g}) while the training loss fell to {last['train']['loss']:.4g}",
        "the run keeps the best epoch; fewer epochs, a lower --lr or fewer trainable layers would spend less",
        {"best_epoch": history[best]["epoch"], "best_val_loss": history[best]["val"]["loss"],
         "last_val_loss": last["val"]["loss"], "change": change})]


def task_verdict(kind: str, m: dict[str, Any], thresholds: Any, errors: int, scope: str = "") -> Finding:
    """good / fair / bad for a regression (R^2) or multi-label (micro F1) run (``scope``: which samples it scores)."""
    if kind == "regression":
        value, name, good = m.get("r2"), "R^2", thresholds.good_r2
        bad = value is None or value <= 0
        shown = f"R^2 {value:.3f}, RMSE {m['rmse']:.4g}, MAE {m['mae']:.4g}" if value is not None else "R^2 undefined"
    else:
        value, name, good = m["f1"]["micro"], "micro F1", thresholds.good_f1
        bad = value < 0.3
        shown = (f"micro F1 {value:.3f}, macro F1 {m['f1']['macro']:.3f}, subset accuracy "
                 f"{pct(m['subset_accuracy'])}")
    level = "bad" if bad or errors else "good" if value is not None and value >= good else "fair"
    why = f"{name} at least {good}" if level == "good" else (
        f"{errors} error finding(s) above" if errors else f"{name} below {good}" if level == "fair" else
        f"{name} {'at or below 0' if kind == 'regression' else 'below 0.3'}")
    on = f" {scope}" if scope else ""
    return Finding(f"verdict-{level}", "info" if level == "good" else "warning",
                   f"{level}{on}: {shown} ({why})", "-" if level == "good" else
                   "see the findings and the residual plot in report.html" if kind == "regression" else
                   "see the findings and the per-label scores",
                   {"level": level, name: value, "scope": scope or "test"})


def constant_target(kind: str, targets: np.ndarray | None, labels: list[str]) -> list[Finding]:
    """The training target never varies (every row the same value, or the same set of labels): nothing was
    learned from the inputs, whatever the scores say; an error, so the verdict cannot be good."""
    if targets is None or len(targets) < 2:
        return []
    if kind == "regression":
        if float(np.ptp(targets)) > 0:
            return []
        value = float(targets[0])
        return [Finding("constant-target", "error",
                        f"the target {labels[0]!r} is {value:g} in every one of the {len(targets)} training rows: "
                        "there is nothing to learn, and any score measures only that constant",
                        "check the label column (--label-column) and the rows that were dropped",
                        {"value": value, "rows": len(targets)})]
    same = bool((targets == targets[:1]).all())
    if not same:
        always = [n for n, col in zip(labels, np.asarray(targets).T, strict=True) if col.all()]
        if not always:
            return []
        return [Finding("constant-labels", "warning",
                        f"{', '.join(map(repr, always))} {'is' if len(always) == 1 else 'are'} on in every one of the "
                        f"{len(targets)} training rows: predicting {'it' if len(always) == 1 else 'them'} always is "
                        "right, which lifts micro F1 without the model learning anything",
                        "judge by the other labels' F1 (per-label table), or drop the constant label",
                        {"labels": always, "rows": len(targets)})]
    on = [n for n, v in zip(labels, targets[0], strict=True) if v]
    never = [n for n, v in zip(labels, targets[0], strict=True) if not v]
    shown_on, shown_never = ", ".join(map(repr, on)) or "none", ", ".join(map(repr, never)) or "none"
    return [Finding("constant-target", "error",
                    f"every one of the {len(targets)} training rows has the same labels ({shown_on}; never "
                    f"{shown_never}): the labels never vary, so a perfect score measures nothing the model learned "
                    "from the inputs",
                    "check the label column (--label-column); a multi-label task needs labels that differ",
                    {"labels": on, "never": never, "rows": len(targets)})]
