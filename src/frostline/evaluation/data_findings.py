"""Findings about the data rather than the training: leakage across splits (graded by share and a clean re-score),
conflicting labels, and trained classes absent from the scored data."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..core.findings import Finding
from .evidence import pct, present_macro, wilson

if TYPE_CHECKING:
    from ..data.leakage import LeakageReport


def absent_classes(m: dict[str, Any], labels: list[str]) -> tuple[Finding | None, dict[str, float] | None]:
    """Trained classes with no sample in this data: macro averages count them as 0; give them over present ones."""
    macro = present_macro(m)
    if macro is None:
        return None, None
    absent = [c for c in labels if not m["support"].get(c)]
    present = [c for c in labels if m["support"].get(c)]
    predicted = {c: int(sum(row[labels.index(c)] for row in m["confusion_matrix"])) for c in absent}
    return Finding(
        "classes-absent", "warning",
        f"{', '.join(map(repr, absent))} {'has' if len(absent) == 1 else 'have'} no sample in this data: macro "
        f"averages over all {len(labels)} trained classes count {'it' if len(absent) == 1 else 'them'} as 0 (macro "
        f"F1 {m['f1']['macro']:.4f}); over the {len(present)} present classes macro F1 is {macro['f1']:.4f}. "
        f"Samples predicted as absent classes: " + ", ".join(f"{c} {n}" for c, n in predicted.items()),
        "judge by accuracy and the present classes' scores (metrics.json: macro_present)",
        {"absent": absent, "macro_present": macro, "predicted_as_absent": predicted}), macro


#: share of the validation split that must have leaked (test clean) for a warning; below it, an info
VAL_LEAK_WARN = 0.02


def leakage(report: LeakageReport | None, test: dict[str, Any] | None = None,
            clean: dict[str, Any] | None = None, values: bool = False) -> list[Finding]:
    """Samples on both sides of a split, graded by share and effect; duplicates with conflicting labels.

    ``clean`` holds the test metrics re-scored without the leaked test samples. An error when at least 10 % of the
    test split leaked, or the leak moves test accuracy or macro F1 by 3 points or more and the leaked samples score
    better than the unseen ones beyond noise (two-proportion z >= 1.96); otherwise a warning that gives both scores
    (a few duplicated short messages do not void a result). ``values``: the targets are numbers (a regression),
    whose repeated samples with scattered values are the data's noise: an info, not a warning.
    """
    if report is None:
        return []
    found = []
    by_split = report.leaked_by_split()
    example = f" e.g. {report.examples[0]['sample']!r}" if report.examples else ""
    exact = ", ".join(f"{p}: {n}" for p, n in report.exact.items() if n) or "none"
    near = ", ".join(f"{k} {v}" for k, v in by_split.items())
    where = (f"exact copies {exact}; after normalising case, whitespace and punctuation: {near}"
             if report.kind == "text" else f"identical {'files' if report.kind == 'image' else 'tensors'}: {near}")
    if report.copies:
        where += f"; the data holds {report.copies} extra exact copies of {report.duplicated} samples"
    if by_split.get("test") and (test is None or clean is None or not test["n"]):
        found.append(Finding(
            "data-leakage", "error",
            f"{by_split['test']} test and {by_split.get('val', 0)} validation samples also occur in an earlier split "
            f"({where});{example}. Test scores are inflated by memorised samples",
            "--dedup drops duplicates (after normalisation) before splitting", report.to_dict()))
    elif by_split.get("test") and test is not None and clean is not None:
        n_leak, n = by_split["test"], test["n"]
        share = n_leak / n
        d_acc = test["accuracy"] - clean["accuracy"]
        d_f1 = test["f1"]["macro"] - clean["f1"]["macro"]
        # Is the leaked part scored better than the unseen part beyond noise (two-proportion z-test)?
        n_clean = clean["n"]
        acc_leaked = (test["accuracy"] * n - clean["accuracy"] * n_clean) / max(n_leak, 1)
        pooled = test["accuracy"]
        se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / max(n_leak, 1) + 1 / max(n_clean, 1)))
        z = (acc_leaked - clean["accuracy"]) / se
        severe = share >= 0.10 or (max(d_acc, d_f1) >= 0.03 and z >= 1.96)
        found.append(Finding(
            "data-leakage", "error" if severe else "warning",
            f"{n_leak} of {n} test samples ({pct(share)}) also occur in training or validation ({where});{example}. "
            f"Test accuracy {test['accuracy']:.4f} / macro F1 {test['f1']['macro']:.4f} on all {n}, "
            f"{clean['accuracy']:.4f} / {clean['f1']['macro']:.4f} on the {clean['n']} unseen: the leak moves the "
            f"score by {100 * d_acc:+.1f} / {100 * d_f1:+.1f} points"
            + ("" if severe else " (small: trust the unseen score; the verdict judges it)"),
            "--dedup drops duplicates (after normalisation) before splitting; metrics.json test_clean has the "
            "unseen score",
            {**report.to_dict(), "test_share": share, "z_leaked_vs_unseen": z, "accuracy_all": test["accuracy"],
             "accuracy_unseen": clean["accuracy"], "f1_all": test["f1"]["macro"], "f1_unseen": clean["f1"]["macro"]},
        ))
    elif by_split.get("val"):
        n_val = report.sizes.get("val", 0)
        share = by_split["val"] / n_val if n_val else 1.0
        minor = share < VAL_LEAK_WARN
        found.append(Finding(
            "data-leakage", "info" if minor else "warning",
            f"{by_split['val']} validation samples" + (f" of {n_val} ({pct(share)})" if n_val else "")
            + f" also occur in training ({where});{example}. The test split is clean"
            + ("; too few to move validation loss (best epoch, early stopping, thresholds)" if minor else
               ", but validation loss (best epoch, early stopping, thresholds) is measured partly on memorised "
               "samples"),
            "--dedup drops duplicates (after normalisation) before splitting",
            {**report.to_dict(), "val_share": share},
        ))
    if report.conflicting:
        shown = "; ".join(f"{e['sample']!r}: {', '.join(x if x else '(no label)' for x in e['labels'])}"
                          for e in report.conflict_examples[:3])
        found.append(Finding(
            "conflicting-labels", "info" if values else "warning",
            f"{report.conflicting} samples occur with "
            + ("different target values" if values else "more than one label")
            + (" (texts compared after normalising case, whitespace and punctuation)" if report.kind == "text" else
               " (pictures compared by file content)" if report.kind == "image" else " (tensors compared exactly)")
            + (f", e.g. {shown}" if shown else "")
            + ("; --dedup kept the first label of each" if report.conflicts_deduped else ""),
            "check the labels of those samples (metrics.json leakage.conflict_examples)",
            {"conflicting": report.conflicting, "examples": report.conflict_examples},
        ))
    return found


#: a test split smaller than this cannot judge a model: its scores' 95 % intervals span tens of points
MIN_TEST_SAMPLES = 30


def small_test_split(test: dict[str, Any]) -> list[Finding]:
    """An error when the test split has fewer than :data:`MIN_TEST_SAMPLES` samples (with accuracy's Wilson interval,
    not degenerate at 0 or 100 %, for classification)."""
    n = int(test.get("n") or 0)
    if n >= MIN_TEST_SAMPLES:
        return []
    numbers: dict[str, Any] = {"n": n, "min_samples": MIN_TEST_SAMPLES}
    spread = ""
    if test.get("accuracy") is not None:
        lo, hi = wilson(test["accuracy"], n)
        spread = f": accuracy {pct(test['accuracy'])} has a 95% interval of {pct(lo)}-{pct(hi)} (Wilson)"
        numbers["accuracy_interval"] = [lo, hi]
    return [Finding("small-test-split", "error",
                    f"the test split has only {n} sample{'' if n == 1 else 's'}{spread}: too few to judge the model "
                    "or to tell strategies apart; the scores and the verdict below are not evidence",
                    f"score it on at least {MIN_TEST_SAMPLES} samples: more data, a larger --test-frac, or "
                    "--test-data", numbers)]
