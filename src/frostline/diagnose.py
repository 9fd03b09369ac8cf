"""Diagnoses: when a number should not be trusted, say so in plain words, with the numbers and what to do.

Each function takes plain metric dictionaries (as in ``metrics.json``) and returns :class:`Finding` s:
accuracy paradox, overfitting, underfitting / frozen too much, data leakage, and a good / bad verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .findings import Finding, by_severity
from .leakage import LeakageReport


@dataclass
class Thresholds:
    """Verdict thresholds: good needs all ``good_*`` (macro precision / recall); bad is any ``bad_*``."""

    good_accuracy: float = 0.80
    good_precision: float = 0.75
    good_recall: float = 0.75
    bad_accuracy: float = 0.60
    bad_class_recall: float = 0.20

    def to_dict(self) -> dict[str, float]:
        """JSON-ready view."""
        return asdict(self)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def accuracy_paradox(m: dict[str, Any], high: float = 0.80, low_recall: float = 0.50) -> list[Finding]:
    """High accuracy hiding a minority class the model misses; or accuracy no better than the majority class.

    Flags a class whose share is below ``1/k`` and whose recall is below ``low_recall`` when accuracy is at least
    ``high`` or within 2 points of the majority baseline. Balanced classes are never flagged.
    """
    n, k = m["n"], sum(1 for s in m["support"].values() if s)
    if not n or k < 2:
        return []  # one class present: accuracy cannot mislead about another
    acc, base = m["accuracy"], m["majority_baseline"]
    numbers = {"accuracy": acc, "majority_baseline": base, "balanced_accuracy": m["balanced_accuracy"],
               "mcc": m["mcc"]}
    found = []
    for name, support in m["support"].items():
        share, recall = support / n, m["recall"]["per_class"][name]
        if support == 0 or share >= 1 / k or recall >= low_recall or (acc < high and acc < base - 0.02):
            continue
        found.append(Finding(
            "accuracy-paradox", "error" if recall < 0.2 else "warning",
            f"accuracy {_pct(acc)} looks good, but {name!r} ({_pct(share)} of samples) has recall {_pct(recall)}: "
            f"the model misses {_pct(1 - recall)} of them. Always predicting {m['majority_class']!r} scores "
            f"{_pct(base)}; balanced accuracy is {_pct(m['balanced_accuracy'])}, MCC {m['mcc']:.2f}.",
            f"judge by recall / F1 of {name!r}, balanced accuracy or MCC; raise its recall with "
            f"--optimize recall@precision>=0.90 (or precision@recall>=0.90), more {name!r} examples, or more "
            "trainable layers",
            {**numbers, "class": name, "class_share": share, "class_recall": recall},
        ))
    if not found and acc <= base + 0.01:
        found.append(Finding(
            "no-better-than-majority", "warning",
            f"accuracy {_pct(acc)} is no better than always predicting {m['majority_class']!r} ({_pct(base)})",
            "the model has not learned the task: see the underfitting findings; compare with --strategies",
            numbers,
        ))
    return found


def overfitting(history: list[dict[str, Any]], trainable: int, total: int, n_train: int,
                rising_epochs: int = 2, gap: float = 0.10) -> list[Finding]:
    """Train/validation gap in accuracy or loss, or validation loss rising for ``rising_epochs`` while training
    loss falls; says whether too few or too many parameters train."""
    if not history:
        return []
    last = history[-1]
    tr, va = last["train"], last["val"]
    acc_gap, loss_gap = tr["accuracy"] - va["accuracy"], va["loss"] - tr["loss"]
    val_losses = [h["val"]["loss"] for h in history]
    train_losses = [h["train"]["loss"] for h in history]
    k = rising_epochs
    rising = len(history) > k and all(val_losses[-i] > val_losses[-i - 1] for i in range(1, k + 1)) and \
        train_losses[-1] < train_losses[-k - 1]
    reasons = []
    if acc_gap > gap:
        reasons.append(f"train accuracy {_pct(tr['accuracy'])} vs validation {_pct(va['accuracy'])}")
    if loss_gap > 0.1 and va["loss"] > 1.5 * max(tr["loss"], 1e-12):
        reasons.append(f"validation loss {va['loss']:.3f} vs train {tr['loss']:.3f}")
    if rising:
        trend = " -> ".join(f"{v:.3f}" for v in val_losses[-k - 1 :])
        reasons.append(f"validation loss rose for the last {k} epochs ({trend}) while training loss fell")
    if not reasons:
        return []
    share = trainable / total if total else 0.0
    if share < 0.001:
        fix = (f"only the head trains ({trainable:,} parameters): too few layers adapt and the head memorises "
               f"{n_train:,} samples; add data or weight decay, or let features adapt with partial:1 / lp-ft")
    elif share > 0.5 and n_train < 10_000:
        fix = (f"{_pct(share)} of {total:,} parameters train on {n_train:,} samples: too many; freeze more "
               "(partial:2, lp-ft, discriminative) or stop earlier (--patience 1)")
    else:
        fix = "stop earlier (--patience 1), lower --lr, add data or regularisation"
    return [Finding("overfitting", "warning", "; ".join(reasons), fix,
                    {"train_accuracy": tr["accuracy"], "val_accuracy": va["accuracy"], "train_loss": tr["loss"],
                     "val_loss": va["loss"], "val_loss_rising": rising, "trainable_share": share})]


def underfitting(history: list[dict[str, Any]], test: dict[str, Any] | None, trainable: int,
                 total: int) -> list[Finding]:
    """Nothing (or almost nothing) trainable, training loss that cannot move, flat validation, one-class output."""
    share = trainable / total if total else 0.0
    found = []
    if trainable == 0:
        return [Finding("nothing-trainable", "error", "no parameter trains: the loss cannot change",
                        "use a strategy that trains the head (linear-probe) or more", {"trainable": 0})]
    if len(history) >= 2:
        first, last = history[0]["train"]["loss"], history[-1]["train"]["loss"]
        vals = [h["val"]["accuracy"] for h in history]
        vloss = [h["val"]["loss"] for h in history]
        if abs(first - last) < 0.02 * max(abs(first), 1e-12):
            found.append(Finding(
                "loss-not-moving", "warning",
                f"training loss moved from {first:.4f} to {last:.4f} over {len(history)} epochs "
                f"({_pct(share)} of parameters trainable)",
                "raise --lr / --head-lr, or unfreeze more (partial:2, full)",
                {"first_train_loss": first, "last_train_loss": last, "trainable_share": share},
            ))
        if max(vals) - min(vals) < 0.005 and abs(vloss[0] - vloss[-1]) < 0.02 * max(abs(vloss[0]), 1e-12):
            found.append(Finding(
                "validation-flat", "warning",
                f"validation accuracy stayed at {_pct(vals[-1])} and loss at {vloss[-1]:.4f} for {len(history)} "
                "epochs", "the model is not learning: more trainable layers, a higher learning rate, more epochs",
                {"val_accuracy": vals, "val_loss": vloss},
            ))
    if test is not None and test["n"]:
        predicted = [sum(col) for col in zip(*test["confusion_matrix"], strict=True)]
        used = [name for name, c in zip(test["support"], predicted, strict=True) if c]
        if len(used) == 1 and len(test["support"]) > 1:
            frozen_note = "almost everything is frozen" if share < 0.01 else f"{_pct(share)} trains"
            found.append(Finding(
                "single-class-predictions", "error",
                f"every test sample is predicted {used[0]!r} ({frozen_note}): the classifier ignores its input",
                "unfreeze more (partial:2 or full), raise --head-lr, train longer, or rebalance the classes",
                {"predicted": dict(zip(test["support"], predicted, strict=True)), "trainable_share": share},
            ))
    return found


def leakage(report: LeakageReport | None) -> list[Finding]:
    """Samples on both sides of a split, and duplicates with conflicting labels."""
    if report is None:
        return []
    found = []
    if report.leaked:
        exact = ", ".join(f"{p}: {n}" for p, n in report.exact.items() if n)
        near = ", ".join(f"{p}: {n}" for p, n in report.near.items() if n)
        example = f" e.g. {report.examples[0]['sample']!r}" if report.examples else ""
        found.append(Finding(
            "data-leakage", "error",
            f"{report.leaked} validation/test samples also occur in an earlier split (exact: {exact or 'none'}; "
            f"after normalising case, whitespace and punctuation: {near}). The data holds {report.copies} extra "
            f"exact copies of {report.duplicated} samples ({report.near_copies} after normalising);{example}. "
            "Validation and test scores are inflated by memorised samples.",
            "--dedup drops duplicates (after normalisation) before splitting",
            report.to_dict(),
        ))
    if report.conflicting:
        found.append(Finding(
            "conflicting-labels", "warning",
            f"{report.conflicting} samples occur with more than one label", "check the labels of those samples",
            {"conflicting": report.conflicting},
        ))
    return found


def verdict(m: dict[str, Any], t: Thresholds | None = None, distrust: int = 0) -> Finding:
    """Good / bad / mixed by the thresholds; ``distrust`` counts error findings that undermine the numbers."""
    t = t or Thresholds()
    acc, p, r = m["accuracy"], m["precision"]["macro"], m["recall"]["macro"]
    worst = min(m["recall"]["per_class"].items(), key=lambda kv: kv[1]) if m["recall"]["per_class"] else ("-", 0)
    numbers = {"accuracy": acc, "precision_macro": p, "recall_macro": r, "worst_class": worst[0],
               "worst_class_recall": worst[1], "thresholds": t.to_dict()}
    caveat = f"; but {distrust} error finding(s) say not to trust these numbers" if distrust else ""
    if acc < t.bad_accuracy or worst[1] < t.bad_class_recall:
        why = (f"accuracy {_pct(acc)} < {_pct(t.bad_accuracy)}" if acc < t.bad_accuracy
               else f"recall of {worst[0]!r} {_pct(worst[1])} < {_pct(t.bad_class_recall)}")
        return Finding("verdict-bad", "error", f"bad: {why}{caveat}", "see the findings above", numbers)
    if acc > t.good_accuracy and p > t.good_precision and r > t.good_recall:
        return Finding("verdict-good", "warning" if distrust else "info",
                       f"good: accuracy {_pct(acc)}, macro precision {_pct(p)}, macro recall {_pct(r)}{caveat}",
                       "fix the errors above first" if distrust else "-", numbers)
    return Finding("verdict-mixed", "warning",
                   f"mixed: accuracy {_pct(acc)}, macro precision {_pct(p)}, macro recall {_pct(r)} (good needs "
                   f"> {_pct(t.good_accuracy)} / {_pct(t.good_precision)} / {_pct(t.good_recall)}){caveat}",
                   "see the findings above", numbers)


def diagnose_run(metrics: dict[str, Any], leak: LeakageReport | None = None,
                 thresholds: Thresholds | None = None) -> list[Finding]:
    """Every diagnosis of a finished run (``metrics.json`` content), errors first, the verdict last."""
    test, history = metrics["test"], metrics["history"]
    trainable, total = metrics["params"]["trainable"], metrics["params"]["total"]
    found = [*leakage(leak), *accuracy_paradox(test),
             *overfitting(history, trainable, total, metrics["data"]["sizes"]["train"]),
             *underfitting(history, test, trainable, total)]
    errors = sum(f.severity == "error" for f in found)
    return [*by_severity(found), verdict(test, thresholds, errors)]
