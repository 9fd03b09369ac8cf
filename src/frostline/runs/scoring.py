"""``evaluate``: score a finished run on new labelled data and audit the result as ``train`` does.

Besides the metrics it gives the curves and ROC-AUC of the run's positive class, the metrics at the run's chosen
threshold, the findings (accuracy paradox, verdict), whether the data overlaps the run's own training data, and a
domain-shift line: these numbers beside the run's own test score, with the noise of both sample sizes.
"""

from __future__ import annotations

import math
import sys
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core import atomic
from ..core.findings import Finding, by_severity
from ..core.lock import folder_lock
from ..core.task import Task
from ..data.batching import Encoded
from ..data.dataset import dropped_summary
from ..data.leakage import sample_keys
from ..data.unlabelled import check_delimiter
from ..evaluation.diagnose import absent_classes, accuracy_paradox, verdict
from ..evaluation.metrics import classification_metrics, split_metrics
from ..evaluation.threshold import curves, predict_at
from ..reporting.html import write_evaluate_report
from ..reporting.pictures import misclassified
from ..training.prediction import predict
from .config import RunConfig
from .folder import RunFolder, check_out
from .identity import content_hash
from .inference import check_batch_size, load_run, recorded_inputs, run_state
from .preparation import Status, no_status, read_splits
from .sources import read_data

EVALUATE_SCHEMA = "frostline.evaluate/1"


def _training_keys(cfg: RunConfig, state: dict[str, Any]) -> tuple[set[str] | None, str]:
    """Normalised keys of the run's training + validation samples, re-derived from its data files (``--data`` and,
    if the run had them, ``--val-data`` / ``--test-data``) when each is here and unchanged (by content hash)."""
    from .config import flag

    paths = {"data": state.get("data_path") or cfg.data, "val_data": cfg.val_data, "test_data": cfg.test_data}
    recorded = state.get("data_sha256") or {}
    for key, path in paths.items():
        if not path:
            continue
        if not Path(path).exists():
            return None, f"the run's {flag(key)} file {path} is not available here"
        if recorded.get(key) is None or content_hash(path) != recorded[key]:
            return None, f"the run's {flag(key)} file {path} changed since training (or was not fingerprinted)"
    size = recorded_inputs(state, cfg).size
    splits = read_splits(replace(cfg, data=paths["data"]), size, echo=lambda _line: None).splits  # as training did
    return set(sample_keys(splits.train, near=True)) | set(sample_keys(splits.val, near=True)), ""


def domain_shift(here: dict[str, Any], own: dict[str, Any] | None) -> Finding | None:
    """This data's accuracy beside the run's own test accuracy, significant when beyond 1.96 standard errors.

    The standard error is Agresti and Caffo's (2000): one success and one failure added to each side, so 30 of 30
    still carries the uncertainty of 30 samples instead of none.
    """
    if not own or not own.get("n"):
        return None
    a, n1, b, n2 = here["accuracy"], here["n"], own["accuracy"], own["n"]
    a_, b_ = (a * n1 + 1) / (n1 + 2), (b * n2 + 1) / (n2 + 2)
    se = math.sqrt(a_ * (1 - a_) / (n1 + 2) + b_ * (1 - b_) / (n2 + 2))
    d = a - b
    f1_here, over = here["f1"]["macro"], ""
    if here.get("macro_present"):
        f1_here, over = here["macro_present"]["f1"], " (present classes)"
    f1 = f", macro F1 {f1_here:.4f}{over} vs {own['f1_macro']:.4f}" if own.get("f1_macro") is not None else ""
    text = (f"accuracy here {a:.4f} on {n1} vs {b:.4f} on the run's own test split ({n2}){f1}: "
            f"{100 * d:+.1f} points (+/- {196 * se:.1f} at 95%)")
    numbers = {"accuracy": a, "n": n1, "run_test_accuracy": b, "run_test_n": n2, "difference": d, "se": se}
    if d < -1.96 * se:
        return Finding("domain-shift", "warning", f"{text}: this data is harder for the model than its own test "
                       "split (a different distribution, or labels that mean something else)",
                       "fine-tune on some of this data, or check that its labels follow the training data's", numbers)
    if d > 1.96 * se:
        return Finding("domain-shift", "info", f"{text}: better than on its own test split", "-", numbers)
    return Finding("domain-shift", "info", f"{text}: in line with the run's own test score (within noise)", "-",
                   numbers)


def evaluate(checkpoint: str | Path, data: str, text_column: str | None = None, label_column: str | None = None,
             header: bool | None = None, batch_size: int = 128, out: str | Path | None = None,
             model: str | None = None, status: Status = no_status, delimiter: str | None = None) -> dict[str, Any]:
    """Score a finished run's best checkpoint on labelled ``data``, with findings; write ``out`` if given
    (``delimiter``: the separator of a CSV-like ``data``; default: the run's).

    Returns:
        The evaluation (``metrics.json`` content): ``test`` METRICS on ``data``, ``threshold`` (curves of the
        run's positive class, metrics at its chosen threshold), ``run_test`` (its own test score), ``overlap``,
        ``diagnoses``.
    """
    check_batch_size(batch_size)
    if out is not None:
        check_out(out, "evaluate")
    with folder_lock(out, "evaluates a run") if out is not None else nullcontext():
        return _evaluate(checkpoint, data, text_column, label_column, header, batch_size, out, model, status,
                         delimiter)


def _evaluate(checkpoint: str | Path, data: str, text_column: str | None, label_column: str | None,
              header: bool | None, batch_size: int, out: str | Path | None, model: str | None,
              status: Status, delimiter: str | None = None) -> dict[str, Any]:
    """:func:`evaluate` with its ``out`` folder held."""
    dest = RunFolder(check_out(out, "evaluate")) if out is not None else None  # new or empty: never written over
    state, cfg = run_state(checkpoint)  # the data is read before the model loads: a bad column fails at once
    labels = list(state["label_names"])
    trained = replace(cfg)  # the run's own options: its training data is re-read with them
    cfg.text_column = text_column or cfg.text_column
    cfg.label_column = label_column or cfg.label_column
    cfg.header = cfg.header if header is None else header
    cfg.delimiter = check_delimiter(delimiter) if delimiter is not None else cfg.delimiter
    task = Task.from_dict(state.get("task"))
    with status(f"reading {data}"):
        ds = read_data(data, cfg, labels, task.kind, recorded_inputs(state, cfg).size)
    bad = dropped_summary(ds)
    if bad:
        print(f"warning: {bad}", file=sys.stderr)
    runm = load_run(checkpoint, model, status)
    with status(f"scoring {len(ds)} samples"):
        pred = predict(runm.model, Encoded(ds, runm.tokenizer, runm.max_length, image_inputs=runm.inputs), batch_size,
                       task=task)
    if task.kind != "classification":
        return _evaluate_task(checkpoint, data, state, cfg, task, runm.label_thresholds, pred, ds, labels, dest,
                              status)
    metrics = split_metrics(pred, labels)
    th = state.get("threshold") or {}
    positive = th.get("positive") if th.get("positive") in labels else labels[-1]
    pos = labels.index(positive)
    section: dict[str, Any] = {"positive": positive, "curves": curves(pred.probs, pred.labels, pos),
                               "default": {"threshold": 0.5 if len(labels) == 2 else None}}
    if th.get("chosen") is not None:
        at = predict_at(pred.probs, pos, th["chosen"])
        section["chosen"] = {"threshold": th["chosen"], "objective": th.get("objective"), "chosen_on": "run's val",
                             "test": classification_metrics(pred.labels, at, labels, pred.loss)}
    findings: list[Finding] = []
    with status("checking overlap with the run's training data"):
        keys, why_not = _training_keys(trained, state)
    overlap: dict[str, Any] = {"checked": keys is not None, "note": why_not}
    judged, scope = metrics, ""  # with an overlap, the verdict and the domain shift judge the unseen samples
    if keys is not None:
        seen = [i for i, k in enumerate(sample_keys(ds, near=True)) if k in keys]
        overlap["samples"] = len(seen)
        if seen:
            keep = np.ones(len(ds), bool)
            keep[seen] = False
            unseen = classification_metrics(pred.labels[keep], pred.preds[keep], labels) if keep.any() else None
            overlap["unseen"] = unseen
            if unseen is not None:
                judged, scope = unseen, f"on the {unseen['n']} samples not seen in training"
            findings.append(Finding(
                "data-leakage", "error" if len(seen) / len(ds) >= 0.10 else "warning",
                f"{len(seen)} of {len(ds)} samples ({100 * len(seen) / len(ds):.1f}%) were in the run's training or "
                f"validation data" + (f"; accuracy {metrics['accuracy']:.4f} on all, {unseen['accuracy']:.4f} on the "
                                      f"{unseen['n']} unseen" if unseen else ""),
                "evaluate on data the model never saw", {"samples": len(seen)}))
    absent, macro_present = absent_classes(metrics, labels)
    if absent is not None:
        metrics["macro_present"] = macro_present
        findings.append(absent)
    findings += accuracy_paradox(metrics)
    shift = domain_shift(judged, (state.get("metrics") or {}).get("test"))
    if shift is not None:
        findings.append(shift)
    errors = sum(f.severity == "error" for f in findings)
    result = {"schema": EVALUATE_SCHEMA, "checkpoint": str(checkpoint), "data": str(data), "labels": labels,
              "model": state.get("model"), "test": metrics, "threshold": section,
              "run_test": (state.get("metrics") or {}).get("test"), "overlap": overlap,
              "diagnoses": [f.to_dict() for f in [*by_severity(findings),
                                                  verdict(judged, cfg.thresholds(), errors, scope)]]}
    if dest is not None:
        with status(f"writing {dest.path}"):
            dest.write_predictions(pred, ds.ids, labels, (pos, th["chosen"]) if th.get("chosen") is not None else None)
            atomic.write_json(dest.file("metrics.json"), result)
            write_evaluate_report(dest.file("report.html"), result,
                                  misclassified(ds.inputs, pred.probs, pred.labels, pred.positions, labels))
    return result


def _evaluate_task(checkpoint: str | Path, data: str, state: dict[str, Any], cfg: Any, task: Task,
                   label_thresholds: list[float] | None, pred: Any, ds: Any, labels: list[str],
                   dest: RunFolder | None, status: Status) -> dict[str, Any]:
    """``evaluate`` of a regression or multi-label run: its metrics on ``data`` and the task's findings."""
    from ..evaluation.task_audit import label_paradox, no_better_than_mean, task_verdict

    if label_thresholds is not None:
        pred.thresholds = np.asarray(label_thresholds)
    metrics = split_metrics(pred, labels, task)
    findings = no_better_than_mean(pred, task.mean) if task.kind == "regression" else label_paradox(metrics)
    errors = sum(f.severity == "error" for f in findings)
    result = {"schema": EVALUATE_SCHEMA, "checkpoint": str(checkpoint), "data": str(data), "labels": labels,
              "task": task.to_dict(), "model": state.get("model"), "test": metrics, "threshold": None,
              "run_test": (state.get("metrics") or {}).get("test"), "overlap": {"checked": False},
              "diagnoses": [f.to_dict() for f in [*by_severity(findings),
                                                  task_verdict(task.kind, metrics, cfg.thresholds(), errors,
                                                               f"on the {metrics['n']} samples of "
                                                               f"{Path(data).name}")]]}
    if dest is not None:
        with status(f"writing {dest.path}"):
            dest.write_predictions(pred, ds.ids, labels)
            atomic.write_json(dest.file("metrics.json"), result)
    return result
