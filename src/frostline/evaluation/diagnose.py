"""Diagnoses: when a number should not be trusted, say so in plain words, with the numbers and what to do.

Each function takes plain metric dictionaries (as in ``metrics.json``) and returns :class:`Finding` s: accuracy
paradox, overfitting, under-training, underfitting / frozen too much, data leakage, and a good / bad verdict.

A finding is a claim and carries its evidence: a gap must exceed the noise of the split (a 95 % Wilson interval
for accuracies and recalls, two standard errors of the paired per-sample change for validation losses), and its
advice is computed from the model's own parts (what ``partial:1`` would train on *this* model), so it never tells
a run to do what it already does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..core.findings import Finding, by_severity
from .data_findings import absent_classes, leakage, small_test_split
from .evidence import count_text, options_text, pct, plural, present_macro, prior_loss, strategy_sizes, wilson
from .mode_gap import train_eval_gap

if TYPE_CHECKING:
    from ..data.leakage import LeakageReport

__all__ = ["Thresholds", "absent_classes", "accuracy_paradox", "diagnose_run", "leakage", "overfitting",
           "prior_loss", "strategy_sizes", "under_trained", "underfitting", "unexplained_advice", "verdict",
           "wilson"]


@dataclass
class Thresholds:
    """Verdict thresholds: good needs all ``good_*`` (macro precision / recall); bad is any ``bad_*``."""

    good_accuracy: float = 0.80
    good_precision: float = 0.75
    good_recall: float = 0.75
    bad_accuracy: float = 0.60
    bad_class_recall: float = 0.20
    good_r2: float = 0.50
    good_f1: float = 0.70

    def to_dict(self) -> dict[str, float]:
        """JSON-ready view."""
        return asdict(self)


def _minority_recall(m: dict[str, Any], name: str) -> tuple[float, float, float]:
    support = m["support"][name]
    recall = m["recall"]["per_class"][name]
    lo, hi = wilson(recall, support)
    return recall, lo, hi


def accuracy_paradox(m: dict[str, Any], high: float = 0.80, low_recall: float = 0.50) -> list[Finding]:
    """High accuracy hiding a minority class the model misses; or accuracy no better than the majority class.

    Flags a minority class (at least one sample fewer than an even share ``n/k``, so that the rounding of a
    stratified split does not make one of balanced classes a minority) whose recall is below ``low_recall`` beyond
    noise (the upper end of its 95 % interval below ``low_recall``; an error when the recall is also under 20 %) when
    accuracy is at least ``high`` or within 2 points of the majority baseline. Balanced classes are never flagged; a
    class with too few samples to show it (0 of 3 found: the interval reaches 56 %) is not either.
    """
    n, k = m["n"], sum(1 for s in m["support"].values() if s)
    if not n or k < 2:
        return []  # one class present: accuracy cannot mislead about another
    acc, base = m["accuracy"], m["majority_baseline"]
    numbers = {"accuracy": acc, "majority_baseline": base, "balanced_accuracy": m["balanced_accuracy"],
               "mcc": m["mcc"]}
    found = []
    for name, support in m["support"].items():
        if support == 0 or support > n / k - 1 or (acc < high and abs(acc - base) > 0.02):
            continue
        recall, lo, hi = _minority_recall(m, name)
        if not hi < low_recall:
            continue
        share = support / n
        found.append(Finding(
            "accuracy-paradox", "error" if recall < 0.2 else "warning",
            f"accuracy {pct(acc)} looks good, but {name!r} ({pct(share)} of samples) has recall {pct(recall)} "
            f"(95% interval {pct(lo)}-{pct(hi)} on {support}): the model misses {pct(1 - recall)} of them. "
            f"Always predicting {m['majority_class']!r} scores {pct(base)}; balanced accuracy is "
            f"{pct(m['balanced_accuracy'])}, MCC {m['mcc']:.2f}.",
            f"judge by recall / F1 of {name!r}, balanced accuracy or MCC; raise its recall with "
            f"--optimize recall@precision>=0.90 (or precision@recall>=0.90), more {name!r} examples, or more "
            "trainable layers",
            {**numbers, "class": name, "class_share": share, "class_recall": recall, "recall_interval": [lo, hi]},
        ))
    if not found:
        found += _missed_together(m, k, low_recall, numbers)
    if not found and acc <= base + 0.01 and n * (1 - base) >= 5:  # 2 other samples could not show it either way
        found.append(Finding(
            "no-better-than-majority", "warning",
            f"accuracy {pct(acc)} is no better than always predicting {m['majority_class']!r} ({pct(base)})",
            "the model has not learned what separates the classes (here): more trainable layers or data; compare "
            "strategies with frostline compare",
            numbers,
        ))
    return found


def _missed_together(m: dict[str, Any], k: int, low_recall: float, numbers: dict[str, Any]) -> list[Finding]:
    """Minority classes too small one by one, missed together: their pooled recall, beyond noise."""
    n = m["n"]
    small = [c for c, s in m["support"].items() if s and s <= n / k - 1 and m["recall"]["per_class"][c] < low_recall]
    support = sum(m["support"][c] for c in small)
    if len(small) < 2 or support < 5:
        return []
    hits = sum(round(m["recall"]["per_class"][c] * m["support"][c]) for c in small)
    recall = hits / support
    lo, hi = wilson(recall, support)
    if not hi < low_recall:
        return []
    return [Finding(
        "minority-classes-missed", "error" if recall < 0.2 else "warning",
        f"{len(small)} minority classes ({', '.join(map(repr, small))}; {support} test samples together) are "
        f"found in {hits} of {support} (recall {pct(recall)}, 95% interval {pct(lo)}-{pct(hi)}) while accuracy "
        f"is {pct(m['accuracy'])}; balanced accuracy {pct(m['balanced_accuracy'])}",
        "judge by balanced accuracy and per-class recall; more examples of those classes, more trainable layers, or "
        "class weights / resampling",
        {**numbers, "classes": small, "support": support, "recall": recall, "recall_interval": [lo, hi]})]


def _significant_rise(h: dict[str, Any], key: str) -> bool:
    change = h.get(key)
    return bool(change) and change["se"] is not None and change["diff"] > 2 * change["se"] > 0


def _significant_fall(h: dict[str, Any]) -> bool:
    change = h.get("val_change")
    return bool(change) and change["se"] is not None and change["diff"] < -2 * change["se"] < 0


def overfitting(history: list[dict[str, Any]], params: dict[str, int], parts: list[dict[str, Any]],
                n_train: int, best_epoch: int | None = None, train_eval: dict[str, Any] | None = None,
                rising_epochs: int = 2, gap: float = 0.10) -> list[Finding]:
    """A train/validation gap at the kept (best) epoch beyond the validation split's noise, or validation loss
    rising significantly after the best epoch while training loss falls.

    ``train_eval``: the kept weights scored on the training split in eval mode (the epoch's own train metrics are a
    running mean with dropout on and weights moving). The advice is about the kept epoch's plan (a gradual run
    whose best epoch was its linear probe is advised as a probe) and names strategies that train fewer (or more)
    parameters on this model; it never says "stop earlier" while validation was still improving.
    """
    if not history:
        return []
    kept = next((h for h in history if h["epoch"] == best_epoch), history[-1])
    trainable, total = int(kept.get("trainable", params["trainable"])), params["total"]
    tr, va = (train_eval or kept["train"]), kept["val"]
    acc_gap, loss_gap = tr["accuracy"] - va["accuracy"], va["loss"] - tr["loss"]
    lo, hi = wilson(va["accuracy"], va["n"])
    reasons, numbers = [], {"epoch": kept["epoch"], "train_accuracy": tr["accuracy"], "val_accuracy": va["accuracy"],
                            "val_accuracy_interval": [lo, hi], "train_loss": tr["loss"], "val_loss": va["loss"]}
    if acc_gap > gap and tr["accuracy"] > hi:
        reasons.append(f"train accuracy {pct(tr['accuracy'])} vs validation {pct(va['accuracy'])} (95% interval "
                       f"{pct(lo)}-{pct(hi)} on {va['n']}) at epoch {kept['epoch']}")
    # A validation loss above a near-zero training loss is not evidence by itself (95 % validation accuracy gives
    # 0.15 against 0.006 on a separable training set): the claims are the accuracy gap and a significant rise.
    numbers["loss_gap"] = loss_gap
    k = rising_epochs
    val_losses = [h["val"]["loss"] for h in history]
    train_losses = [h["train"]["loss"] for h in history]
    rising = (len(history) > k and all(val_losses[-i] > val_losses[-i - 1] for i in range(1, k + 1))
              and train_losses[-1] < train_losses[-k - 1] and _significant_rise(history[-1], "val_vs_best"))
    if rising:
        trend = " -> ".join(f"{v:.3f}" for v in val_losses[-k - 1 :])
        vs = history[-1]["val_vs_best"]
        reasons.append(f"validation loss rose for the last {k} epochs ({trend}; +{vs['diff']:.3f} +/- "
                       f"{vs['se']:.3f} per sample over the best epoch) while training loss fell; the best epoch's "
                       f"weights (epoch {best_epoch}) are the ones kept")
        numbers["val_loss_vs_best"] = vs
    if not reasons:
        return []
    share = trainable / total if total else 0.0
    fewer = options_text(parts, trainable, True, total)
    more = options_text(parts, trainable, False, total)
    still_improving = kept is history[-1]
    probe = kept.get("probe")
    if probe:
        fix = (f"the probe's L2 strength was chosen by {probe.get('chosen_by', 'validation')} (C={probe['C']:.3g}): "
               f"this gap is what these frozen features give on {n_train:,} samples; add data"
               + (f", or let the features adapt: {more}" if more else ""))
    elif share < 0.001 or not fewer:
        fix = (f"only {count_text(trainable)} parameters train ({pct(share)}) and memorise {n_train:,} samples; add "
               "data or weight decay" + (f", or let features adapt: {more}" if more else ""))
    else:
        fix = (f"{pct(share)} of {count_text(total)} parameters train on {n_train:,} samples (in epoch {kept['epoch']},"
               f" the one kept); to train fewer: {fewer}"
               + ("; or add data / weight decay (validation was still improving at the last epoch, so stopping "
                  "earlier would not help)" if still_improving else
                  "; or stop earlier (--patience 1, fewer --epochs), lower --lr, add data"))
    numbers.update({"trainable_share": share, "val_loss_rising": rising, "train_measured": "eval mode, kept weights"
                    if train_eval else "running mean during the epoch"})
    return [Finding("overfitting", "warning", "; ".join(reasons), fix, numbers)]


def under_trained(history: list[dict[str, Any]], best_epoch: int | None, stopped_early: bool = False,
                  epochs: int | None = None) -> list[Finding]:
    """Validation loss still falling, beyond noise, in each of the last epochs, the last being the best."""
    if len(history) < 2 or stopped_early or history[-1].get("probe") or best_epoch != history[-1]["epoch"]:
        return []
    n = 2 if len(history) >= 3 else 1
    if not all(_significant_fall(h) for h in history[-n:]):
        return []
    losses = " -> ".join(f"{h['val']['loss']:.3f}" for h in history[-n - 1 :])
    accs = " -> ".join(pct(h["val"]["accuracy"]) for h in history[-n - 1 :])
    last = history[-1]["val_change"]
    more = (f"{epochs + max(2, epochs // 2)} epochs: --epochs {epochs + max(2, epochs // 2)}, or "
            f"@epochs={epochs + max(2, epochs // 2)} on this strategy in compare") if epochs else "more epochs"
    return [Finding(
        "under-trained", "warning",
        f"validation loss fell in {'each of the last 2 epochs' if n == 2 else 'the last epoch'} "
        f"({losses}; the last by "
        f"{-last['diff']:.3f} +/- {last['se']:.3f} per sample) and accuracy went {accs}; the last epoch is the best",
        f"train longer ({more}); the learning rate had decayed to its end, so more epochs, not a higher rate",
        {"val_loss": [h["val"]["loss"] for h in history[-n - 1 :]], "last_change": last, "epochs": n},
    )]


def underfitting(history: list[dict[str, Any]], test: dict[str, Any] | None, params: dict[str, int],
                 parts: list[dict[str, Any]], class_counts: dict[str, int] | None = None,
                 ranking: dict[str, Any] | None = None) -> list[Finding]:
    """Nothing (or almost nothing) trainable, training loss that cannot move, flat validation, one-class output.

    One-class output is "the classifier ignores its input" only when its scores do not rank the classes either
    (``ranking``: the test curves, ROC-AUC with its interval); scores that rank well but never cross the decision
    boundary are a timid classifier (under-trained, or a threshold to choose), said as such.

    "Not moving" and "flat" claim that nothing was learned: they need the loss to still be at least half that of
    predicting the class frequencies (``class_counts`` of the training split) -- a loss that stays near zero is
    learned, not stuck -- and never start from a converged linear probe's epoch (its loss is an optimum).
    """
    trainable, total = params["trainable"], params["total"]
    share = trainable / total if total else 0.0
    more = options_text(parts, trainable, False, total)
    unfreeze = f"unfreeze more: {more}" if more else "a higher --lr / --head-lr"
    found = []
    if trainable == 0:
        return [Finding("nothing-trainable", "error", "no parameter trains: the loss cannot change",
                        "use a strategy that trains the head (linear-probe) or more", {"trainable": 0})]
    sgd = [h for h in history if not h.get("probe")]
    prior = prior_loss(class_counts)

    def stuck(loss: float) -> bool:
        return prior is None or loss >= 0.5 * prior

    if len(sgd) >= 2:
        first, last = sgd[0]["train"]["loss"], sgd[-1]["train"]["loss"]
        vals = [h["val"]["accuracy"] for h in sgd]
        vloss = [h["val"]["loss"] for h in sgd]
        if abs(first - last) < 0.02 * max(abs(first), 1e-12) and stuck(last):
            found.append(Finding(
                "loss-not-moving", "warning",
                f"training loss moved from {first:.4f} to {last:.4f} over {len(sgd)} epochs "
                f"({pct(share)} of parameters trainable)" + (f"; predicting the class frequencies scores {prior:.4f}"
                                                              if prior is not None else ""),
                f"raise --lr / --head-lr, or {unfreeze}",
                {"first_train_loss": first, "last_train_loss": last, "trainable_share": share},
            ))
        last_val = sgd[-1]["val"]
        n_val, majority = last_val.get("n") or 0, last_val.get("majority_baseline")
        # flat and no better than always predicting the majority class: a model that learned in its first epoch
        # and then levelled off (70% on a balanced set, loss below the prior's) is not "not learning"
        learned = majority is not None and n_val > 0 and \
            vals[-1] - majority > 2 * math.sqrt(max(majority * (1 - majority), 1e-12) / n_val)
        if max(vals) - min(vals) < 0.005 and abs(vloss[0] - vloss[-1]) < 0.02 * max(abs(vloss[0]), 1e-12) \
                and stuck(vloss[-1]) and not learned:
            held = pct(vals[-1]) if pct(min(vals)) == pct(max(vals)) else f"{pct(min(vals))}-{pct(max(vals))}"
            found.append(Finding(
                "validation-flat", "warning",
                f"validation accuracy stayed at {held}"
                + (f" (always predicting the majority class scores {pct(majority)})" if majority is not None else "")
                + f" and loss between {min(vloss):.4f} and {max(vloss):.4f} for {len(sgd)} epochs",
                f"the model is not learning: {unfreeze}, a higher learning rate, more epochs",
                {"val_accuracy": vals, "val_loss": vloss, "majority_baseline": majority},
            ))
    if test is not None and test["n"]:
        predicted = [sum(col) for col in zip(*test["confusion_matrix"], strict=True)]
        used = [name for name, c in zip(test["support"], predicted, strict=True) if c]
        if len(used) == 1 and len(test["support"]) > 1:
            frozen_note = "almost everything is frozen" if share < 0.01 else f"{pct(share)} trains"
            numbers = {"predicted": dict(zip(test["support"], predicted, strict=True)), "trainable_share": share}
            auc = _ranking_auc(ranking, test)
            if auc is not None and auc[1] > 0.5:
                found.append(Finding(
                    "single-class-predictions", "warning",
                    f"every test sample is predicted {used[0]!r}, yet the scores rank the classes (ROC-AUC "
                    f"{auc[0]:.3f}, 95% interval {auc[1]:.3f}-{auc[2]:.3f}): the model separates them but its outputs "
                    "never cross the decision boundary",
                    "train longer or raise --head-lr (the head is still timid), or choose the operating threshold "
                    "on validation: --optimize f1", numbers | {"roc_auc": auc[0], "roc_auc_interval": list(auc[1:])},
                ))
            else:
                found.append(Finding(
                    "single-class-predictions", "error",
                    f"every test sample is predicted {used[0]!r} ({frozen_note})"
                    + (f" and the scores do not rank the classes either (ROC-AUC {auc[0]:.3f}, 95% interval "
                       f"{auc[1]:.3f}-{auc[2]:.3f})" if auc is not None else "")
                    + ": the classifier ignores its input",
                    f"{unfreeze}, raise --head-lr, train longer, or rebalance the classes",
                    numbers | ({"roc_auc": auc[0], "roc_auc_interval": list(auc[1:])} if auc is not None else {}),
                ))
    return found


def _ranking_auc(ranking: dict[str, Any] | None, test: dict[str, Any]) -> tuple[float, float, float] | None:
    """Binary ROC-AUC of the test scores with its 95 % interval (Hanley and McNeil 1982, around the AUC moved half a
    pair toward 0.5, so 1.000 on 3 samples is not "1.000-1.000"), or ``None``."""
    if not ranking or ranking.get("roc_auc") is None or len(test["support"]) != 2:
        return None
    a0 = float(ranking["roc_auc"])
    n1, n2 = sorted(int(v) for v in test["support"].values())
    if n1 == 0:
        return None
    a = (a0 * n1 * n2 + 0.5) / (n1 * n2 + 1)  # half a pair toward 0.5: not degenerate at 0 or 1 (0 wrong of 2 pairs)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    se = math.sqrt(max(a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n2 - 1) * (q2 - a * a), 0.0) / (n1 * n2))
    return a0, max(0.0, a - 1.96 * se), min(1.0, a + 1.96 * se)


def unexplained_advice(params: dict[str, int] | None = None, bn: dict[str, Any] | None = None) -> str:
    """What to try when a bad or mixed result has no finding to explain it, given what the run trained."""
    everything = bool(params) and params.get("trainable", 0) >= 0.9 * max(params.get("total", 0), 1)
    tries = ["more epochs, another --lr, or more data"] if everything else [
        "compare strategies that train more, more epochs, or more data"]
    if bn and bn.get("mode") == "eval" and bn.get("layers") and params and params.get("trainable", 0) > 0:
        tries.append("the BatchNorm layers normalised with their pretrained statistics (--bn eval): when the new "
                     "pictures differ from the pretraining ones (size, colour, domain), try --bn reestimate")
    return "no finding above explains it: " + "; ".join(tries)


def verdict(m: dict[str, Any], t: Thresholds | None = None, distrust: int = 0, scope: str = "",
            others: int | None = None, advice: str | None = None) -> Finding:
    """Good / bad / mixed by the thresholds; ``distrust`` counts error findings that undermine the numbers;
    ``scope`` says which samples ``m`` covers when not the whole test split. Macro precision and recall are over the
    classes present in ``m`` (a class with no test sample has no recall to judge). ``others``: how many findings
    come before the verdict (``None``: unknown), so its advice never points at findings that are not there."""
    t = t or Thresholds()
    acc, p, r = m["accuracy"], m["precision"]["macro"], m["recall"]["macro"]
    macro = present_macro(m)
    if macro is not None:
        p, r = macro["precision"], macro["recall"]
        n_present = sum(1 for n in m["support"].values() if n)
        scope = (scope + "; " if scope else "") + f"macro over the {n_present} classes present"
    present = {c: v for c, v in m["recall"]["per_class"].items() if m["support"].get(c)}
    worst = min(present.items(), key=lambda kv: kv[1]) if present else ("-", 1.0)
    worst_hi = wilson(worst[1], m["support"].get(worst[0], 0))[1] if present else 1.0
    numbers = {"accuracy": acc, "precision_macro": p, "recall_macro": r, "worst_class": worst[0],
               "worst_class_recall": worst[1], "worst_class_recall_upper": worst_hi, "thresholds": t.to_dict(),
               "scope": scope or "test"}
    caveat = f"; but {distrust} error finding(s) say not to trust these numbers" if distrust else ""
    see = "see the findings above" if others is None or others else (advice or unexplained_advice())
    on = f" ({scope})" if scope else ""
    # a class recall under the bar counts when its 95 % interval stays under 50 %: 0 of 2 found proves nothing
    if acc < t.bad_accuracy or (worst[1] < t.bad_class_recall and worst_hi < 0.5):
        why = (f"accuracy {pct(acc)} < {pct(t.bad_accuracy)}" if acc < t.bad_accuracy
               else f"recall of {worst[0]!r} {pct(worst[1])} < {pct(t.bad_class_recall)}")
        return Finding("verdict-bad", "error", f"bad{on}: {why}{caveat}", see, numbers)
    if acc > t.good_accuracy and p > t.good_precision and r > t.good_recall:
        return Finding("verdict-good", "warning" if distrust else "info",
                       f"good{on}: accuracy {pct(acc)}, macro precision {pct(p)}, macro recall {pct(r)}{caveat}",
                       "fix the errors above first" if distrust else "-", numbers)
    return Finding("verdict-mixed", "warning",
                   f"mixed{on}: accuracy {pct(acc)}, macro precision {pct(p)}, macro recall {pct(r)} (good needs "
                   f"> {pct(t.good_accuracy)} / {pct(t.good_precision)} / {pct(t.good_recall)}){caveat}",
                   see if not (worst[1] < t.bad_class_recall) else
                   f"{worst[0]!r} has recall {pct(worst[1])} on only {plural(m['support'][worst[0]], 'sample')}: too "
                   "few to judge that class; more data for it", numbers)


def diagnose_run(metrics: dict[str, Any], leak: LeakageReport | None = None,
                 thresholds: Thresholds | None = None) -> list[Finding]:
    """Every diagnosis of a finished run (``metrics.json`` content), errors first, the verdict last.

    With ``metrics["test_clean"]`` (the test split without leaked samples), leakage is graded by its effect and
    the verdict judges the unseen samples.
    """
    test, history, params = metrics["test"], metrics["history"], metrics["params"]
    parts = metrics.get("parts", [])
    clean = metrics.get("test_clean")
    best = metrics.get("best_epoch")
    mode_gap = train_eval_gap(history, best, metrics.get("train_eval"), metrics["run"].get("bn"))
    found = [*small_test_split(test), *leakage(leak, test, clean), *accuracy_paradox(test), *mode_gap,
             *([] if mode_gap else overfitting(history, params, parts, metrics["data"]["sizes"]["train"], best,
                                               metrics.get("train_eval"))),
             *([] if mode_gap else under_trained(history, best, metrics.get("stopped_early", False),
                                                 metrics["run"].get("epochs"))),
             *underfitting(history, test, params, parts, metrics["data"].get("class_counts", {}).get("train"),
                           (metrics.get("threshold") or {}).get("curves"))]
    absent, macro_present = absent_classes(test, metrics["labels"]) if metrics.get("labels") else (None, None)
    if absent is not None:
        metrics["macro_present"] = macro_present
        found.append(absent)
    errors = sum(f.severity == "error" for f in found)
    scope = f"on the {clean['n']} test samples not seen in training" if clean else ""
    advice = unexplained_advice(params, metrics["run"].get("bn"))
    return [*by_severity(found), verdict(clean or test, thresholds, errors, scope, others=len(found), advice=advice)]
