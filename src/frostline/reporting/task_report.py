"""The HTML report of a regression or multi-label run: its metrics beside the base model and the baseline, the
findings, the learning curves, and the task's own plots (predicted against true with residuals; per-label bars)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import shorten
from .page import dropped_html, esc, findings_html, fmt, freeze_plan_html, img, page, table


def _regression_rows(name: str, m: dict[str, Any]) -> list[Any]:
    return [name, fmt(m.get("loss")), fmt(m["mse"]), fmt(m["rmse"]), fmt(m["mae"]), fmt(m["r2"]), fmt(m["spearman"])]


def _multilabel_rows(name: str, m: dict[str, Any]) -> list[Any]:
    return [name, fmt(m.get("loss")), fmt(m["subset_accuracy"]), fmt(m["hamming_loss"]), fmt(m["f1"]["micro"]),
            fmt(m["f1"]["macro"]), fmt(m["f1"]["samples"])]


def task_run_report(m: dict[str, Any], test_true: np.ndarray | None = None,
                    test_pred: np.ndarray | None = None) -> str:
    """HTML of a regression or multi-label run's ``metrics.json`` (``test_true`` / ``test_pred``: the test values, for
    the regression plot)."""
    from . import plots

    run, test, kind = m["run"], m["test"], m["task"]["kind"]
    summary = (f"<p>model <b>{esc(run['model'])}</b>, strategy <b>{esc(run['strategy'])}</b>, task <b>{esc(kind)}</b> "
               f"({esc(m['task']['loss'])} loss), {len(m['history'])} epochs on {esc(run['device'])}, "
               f"{m['params']['trainable']:,} of {m['params']['total']:,} parameters trainable; data "
               f"{esc(m['data']['source'])}: " + ", ".join(f"{k} {v}" for k, v in m["data"]["sizes"].items())
               + f"; {m['seconds']['total']:.1f} s.</p>" + dropped_html(m))
    if kind == "regression":
        head = ["", "loss", "MSE", "RMSE", "MAE", "R^2", "Spearman"]
        rows = [_regression_rows("test (fine-tuned)", test)]
        if m.get("base"):
            rows.insert(0, _regression_rows("test (base, before fine-tuning)", m["base"]["test"]))
        mb = test.get("mean_baseline")
        if mb:
            rows.insert(0, ["always the training mean " + f"{mb['value']:.4g}", "-", fmt(mb["mse"]), fmt(mb["rmse"]),
                            fmt(mb["mae"]), fmt(mb["r2"]), "-"])
        extra = ["<h2>Predicted against true (test)</h2>",
                 img(plots.regression_fit(test_true, test_pred, m["labels"][0]) if test_true is not None else None,
                      "predicted against true values")]
        per_label = ""
    else:
        head = ["", "loss", "subset acc.", "Hamming loss", "micro F1", "macro F1", "samples F1"]
        rows = [_multilabel_rows("test (fine-tuned, per-label thresholds)", test)]
        th = m.get("threshold") or {}
        if th.get("at_0.5"):
            rows.append(_multilabel_rows("test at 0.5", th["at_0.5"]))
        if m.get("base"):
            rows.insert(0, _multilabel_rows("test (base, before fine-tuning)", m["base"]["test"]))
        label_rows = [[shorten(n), fmt(test["precision"]["per_class"][n]), fmt(test["recall"]["per_class"][n]),
                       fmt(test["f1"]["per_class"][n]), test["support"][n], test["predicted"][n],
                       fmt((th.get("label_thresholds") or {}).get(n)),
                       (th.get("per_label") or {}).get(n, {}).get("why", "-")] for n in m["labels"]]
        per_label = table(["label", "precision", "recall", "F1", "positives", "predicted", "threshold",
                            "why this threshold (judged on validation, out of fold)"], label_rows)
        extra = ["<h2>Per label (test)</h2>", img(plots.label_bars(test), "per-label scores")]
    body = [summary, "<h2>Findings</h2>", findings_html(m.get("diagnoses", []), m.get("labels")), "<h2>Metrics</h2>",
            table(head, rows), per_label, "<h2>Learning curves</h2>",
            img(plots.learning_curves(m["history"], m["best_epoch"]), "learning curves"), *extra,
            "<h2>Freeze plan</h2>", freeze_plan_html(m)]
    return page(f"frostline run: {run['strategy']} on {Path(m['data']['source']).name} ({kind})", "".join(body))
