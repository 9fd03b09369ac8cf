"""Self-contained HTML reports (plots embedded as PNG data, no external files): one per run, one per comparison."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core import atomic
from ..core.errors import shorten
from ..evaluation.comparing import split_findings
from ..evaluation.metrics import HEADLINE
from .importance import auto_html
from .page import dropped_html, esc, findings_html, fmt, freeze_plan_html, img, page, table
from .task_report import task_run_report
from .terminal import compare_rows


def _metrics_rows(name: str, m: dict[str, Any]) -> list[Any]:
    return [name, fmt(m["loss"]), fmt(m["accuracy"]), fmt(m["balanced_accuracy"]), fmt(m["mcc"]),
            fmt(m["precision"]["macro"]), fmt(m["recall"]["macro"]), fmt(m["f1"]["macro"])]


METRIC_HEAD = ["", "loss", "accuracy", "balanced acc.", "MCC", "precision", "recall", "F1"]


def _setup_html(m: dict[str, Any]) -> str:
    """Pooling of the head and how a linear probe was fit (what the numbers rest on)."""
    out = []
    pooling = (m.get("head") or {}).get("pooling")
    if pooling:
        out.append(f"head on <b>{esc(pooling['mode'])}</b> pooling ({esc(pooling['source'])})")
    probe = ((m["run"].get("budget") or {}).get("probe"))
    if probe:
        out.append(f"linear probe fit by L-BFGS to convergence: C={probe['C']:g} chosen by {esc(probe['chosen_by'])}, "
                   f"{probe['iterations']} iterations, gradient {probe['grad_norm']:.1e}")
    return f"<p>{'; '.join(out)}.</p>" if out else ""


def pictures_html(shown: dict[str, Any] | None, split: str = "test") -> str:
    """The misclassified pictures section (image runs; ``shown`` from :func:`frostline.reporting.pictures.
    misclassified`)."""
    if shown is None:
        return ""
    from .pictures import grid

    if not shown["wrong"]:
        return f"<h2>Misclassified pictures</h2><p>none: every {split} picture ({shown['n']}) is classified right.</p>"
    kept = len(shown["pictures"])
    return (f"<h2>Misclassified pictures</h2><p>{shown['wrong']} of {shown['n']} {split} pictures are wrong"
            + (f"; the {kept} most confident mistakes" if kept < shown["wrong"] else "")
            + ", each titled true -> predicted (the predicted class's probability), as the model saw them (after "
            "resizing, before normalisation).</p>" + img(grid(shown), "misclassified pictures"))


def run_report(m: dict[str, Any], pictures: dict[str, Any] | None = None) -> str:
    """HTML of one run's ``metrics.json`` (``pictures``: the misclassified test pictures of an image run)."""
    from . import plots  # matplotlib only when a report is written

    run, labels, test = m["run"], m["labels"], m["test"]
    th = m.get("threshold") or {}
    summary = (f"<p>model <b>{esc(run['model'])}</b>, strategy <b>{esc(run['strategy'])}</b>, "
               f"{len(m['history'])} epochs on {esc(run['device'])} ({esc(run['precision'])}), "
               f"{m['params']['trainable']:,} of {m['params']['total']:,} parameters trainable; data "
               f"{esc(m['data']['source'])}: " + ", ".join(f"{k} {v}" for k, v in m["data"]["sizes"].items())
               + f"; {m['seconds']['total']:.1f} s.</p>" + dropped_html(m) + _setup_html(m))
    rows = [_metrics_rows("test (fine-tuned)", test)]
    if m.get("base"):
        rows.insert(0, _metrics_rows("test (base, before fine-tuning)", m["base"]["test"]))
    if th.get("chosen"):
        rows.append(_metrics_rows(f"test at threshold {th['chosen']['threshold']:.3f}", th["chosen"]["test"]))
    per_class = [[shorten(n), fmt(test["precision"]["per_class"][n]), fmt(test["recall"]["per_class"][n]),
                  fmt(test["f1"]["per_class"][n]), test["support"][n]] for n in labels]
    curves = th.get("curves", {})
    chosen = th.get("chosen")
    threshold_text = ""
    if curves.get("roc_auc") is not None:
        threshold_text = (f"<p>positive class <b>{esc(shorten(th['positive']))}</b>: ROC-AUC {curves['roc_auc']:.4f}, "
                          f"average precision {curves['average_precision']:.4f} (test).")
        if chosen:
            threshold_text += (f" Threshold {chosen['threshold']:.4f} chosen on validation for "
                               f"<b>{esc(chosen['objective'])}</b> (validation precision {chosen['precision']:.3f}, "
                               f"recall {chosen['recall']:.3f}{'' if chosen['met'] else '; constraint not met'}).")
        threshold_text += "</p>"
    body = [
        summary,
        "<h2>Findings</h2>", findings_html(m.get("diagnoses", []), m.get("labels")),
        "<h2>Metrics</h2>", table(METRIC_HEAD, rows), table(["class", "precision", "recall", "F1", "support"],
                                                              per_class),
        "<h2>Learning curves</h2>", img(plots.learning_curves(m["history"], m["best_epoch"]), "learning curves"),
        "<h2>Confusion matrix</h2>", img(plots.confusion_heatmap(test["confusion_matrix"], labels),
                                          "confusion matrix"), pictures_html(pictures),
        "<h2>Precision-recall trade-off</h2>", threshold_text,
        img(plots.pr_curve(th, "test", labels) if th else None,
             "precision-recall curve per class, one vs rest" if len(labels) > 2 else "precision-recall curve"),
        "<h2>Freeze plan</h2>", freeze_plan_html(m), auto_html(run.get("auto"), m["history"]),
    ]
    return page(f"frostline run: {run['strategy']} on {Path(m['data']['source']).name}", "".join(body))


def compare_report(base: dict[str, Any] | None, runs: list[tuple[str, dict[str, Any]]],
                   evidence: dict[str, Any] | None = None) -> str:
    """HTML of a comparison: table with the change against the base model, what the evidence supports (the
    recommendation on validation, test intervals and paired tests, cost against score), curves, each strategy's
    confusion matrix and findings."""
    from . import plots

    rows = compare_rows(base, runs)
    ref = rows[0] if base is not None else None
    kind = rows[-1].get("task", "classification") if rows else "classification"
    scores = HEADLINE[kind]
    judge, judged = {"classification": ("f1", "F1"), "regression": ("r2", "R^2"),
                     "multilabel": ("micro_f1", "micro F1")}[kind]
    head = ["strategy", "budget", "trainable", "seconds", "val loss", *(t for _k, t in scores),
            f"{judged} change vs base"]

    def change(r: dict[str, Any]) -> str:
        if ref is None or r is ref or r.get(judge) is None or ref.get(judge) is None:
            return "-"
        return f"{r[judge] - ref[judge]:+.4f}"

    table_rows = [[r["strategy"], r["budget"], f"{r['trainable']:,}", f"{r['seconds']:.1f}", fmt(r["val_loss"]),
                   *(fmt(r.get(k)) for k, _t in scores), change(r)] for r in rows]
    body = ["<h2>Strategy comparison</h2>", table(head, table_rows),
            '<p class="muted">test split' + (", macro averages" if kind == "classification" else "")
            + "; val loss at the best epoch; base = pretrained body with the new head only initialised.</p>",
            img(plots.compare_bars(rows), "test metrics by strategy"),
            *_evidence_html(evidence or {}, runs),
            "<h2>Learning curves</h2>", img(plots.compare_curves(runs), "training and validation curves")]
    shared, own = split_findings([m.get("diagnoses", []) for _name, m in runs])
    if shared:
        body += ["<h2>Findings: the data (every strategy)</h2>", findings_html(shared, runs[0][1].get("labels"))]
    for (name, m), found in zip(runs, own, strict=True):
        body += [f"<h2>Findings: {esc(name)}</h2>", findings_html(found, m.get("labels"))]
        if m["test"].get("confusion_matrix") is not None and m.get("labels"):
            body.append(img(plots.confusion_heatmap(m["test"]["confusion_matrix"], m["labels"],
                                                     title=f"test: {name}"), f"confusion matrix of {name}"))
        body += [f"<h3>Freeze plan: {esc(name)}</h3>", freeze_plan_html(m)]
    return page("frostline comparison", "".join(body))


def _drawn(path: str | Path, build: Callable[[], str]) -> Path:
    """Write the page ``build`` makes; if it fails (a plot library's error, memory), write a page naming the error
    and warn in one line: the run it reports on is finished, and a report must never lose it."""
    try:
        text = build()
    except Exception as exc:  # any failure of drawing: the metrics and weights are already written
        line = (f"report.html could not be drawn ({type(exc).__name__}: {shorten(str(exc), 160) or 'no message'}); "
                "metrics.json, predictions.csv and the weights are complete")
        warnings.warn(line, UserWarning, stacklevel=3)
        text = page("frostline report", f"<p><b>error</b>: {esc(line)}</p>")
    return atomic.write_text(path, text)


def write_run_report(path: str | Path, metrics: dict[str, Any], test_true: Any = None, test_pred: Any = None,
                     pictures: dict[str, Any] | None = None) -> Path:
    """Write ``report.html`` for one run (atomically); a regression's plot needs the test values; ``pictures``: the
    misclassified test pictures of an image run."""
    if (metrics.get("task") or {}).get("kind", "classification") != "classification":
        return _drawn(path, lambda: task_run_report(metrics, test_true, test_pred))
    return _drawn(path, lambda: run_report(metrics, pictures))


def write_compare_report(path: str | Path, base: dict[str, Any] | None, runs: list[tuple[str, dict[str, Any]]],
                         evidence: dict[str, Any] | None = None) -> Path:
    """Write the comparison's ``report.html`` (atomically)."""
    return _drawn(path, lambda: compare_report(base, runs, evidence))


def _evidence_html(ev: dict[str, Any], runs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The recommendation, the test intervals and paired tests, and the cost-against-score plot."""
    from . import plots

    if not ev:
        return []
    out = ["<h2>What the evidence supports</h2>"]
    said = [line.strip() for line in ev.get("lines", []) if not line.startswith("  ") or "within noise" in line]
    out += [f"<p>{esc(line)}</p>" for line in said[:2]]
    rows = [[r["strategy"], fmt(r["score"]), f"{fmt(r['low'])} - {fmt(r['high'])}",
             (f"{fmt(r['accuracy']['value'])} ({fmt(r['accuracy']['low'])} - {fmt(r['accuracy']['high'])})"
              if r.get("accuracy") else "-"),
             (f"{r['vs_recommended']['diff']:+.4f}, p={r['vs_recommended']['p']:.3g}"
              + (f", McNemar p={r['vs_recommended']['accuracy_p']:.3g}" if "accuracy_p" in r['vs_recommended']
                 else "") if r.get("vs_recommended") else "recommended" if r["strategy"] == ev.get("recommended")
              else "-")] for r in ev.get("test", [])]
    if rows:
        score = ev.get("score", "score")
        out.append(table(["strategy", f"test {score}", "95 % interval (bootstrap)", "accuracy (Wilson 95 %)",
                           "vs recommended (paired)"], rows))
    out += [f"<p>{esc(line)}</p>" for line in said[2:]]
    out.append(img(plots.cost_vs_score(ev, runs), "cost against score"))
    return out


def evaluate_report(m: dict[str, Any], pictures: dict[str, Any] | None = None) -> str:
    """HTML of an evaluation (``frostline evaluate --out``; ``pictures``: its misclassified pictures)."""
    from . import plots

    test, labels, th = m["test"], m["labels"], m.get("threshold") or {}
    where = Path(m["data"]).name
    rows = [_metrics_rows(f"this data ({where})", test)]
    if th.get("chosen"):
        rows.append(_metrics_rows(f"at the run's threshold {th['chosen']['threshold']:.3f}", th["chosen"]["test"]))
    own = m.get("run_test") or {}
    own_text = (f"<p>the run's own test split: accuracy {own['accuracy']:.4f} on {own['n']} samples.</p>"
                if own.get("n") else "")
    c = th.get("curves") or {}
    auc = (f"<p>positive class <b>{esc(shorten(th['positive']))}</b>: ROC-AUC {c['roc_auc']:.4f}, average precision "
           f"{c['average_precision']:.4f}.</p>" if c.get("roc_auc") is not None else "")
    per_class = [[shorten(n), fmt(test["precision"]["per_class"][n]), fmt(test["recall"]["per_class"][n]),
                  fmt(test["f1"]["per_class"][n]), test["support"][n]] for n in labels]
    body = [f"<p>checkpoint <b>{esc(m['checkpoint'])}</b> on <b>{esc(m['data'])}</b> ({test['n']} samples).</p>",
            "<h2>Findings</h2>", findings_html(m.get("diagnoses", []), m.get("labels")),
            "<h2>Metrics</h2>", table(METRIC_HEAD, rows), own_text,
            table(["class", "precision", "recall", "F1", "support"], per_class),
            "<h2>Confusion matrix</h2>", img(plots.confusion_heatmap(test["confusion_matrix"], labels, title=where),
                                              "confusion matrix"), pictures_html(pictures, "evaluated"),
            "<h2>Precision-recall trade-off</h2>", auc if len(labels) == 2 else "",
            img(plots.pr_curve(th, where, labels) if c.get("pr") or c.get("per_class") else None,
                 ("precision-recall curve per class, one vs rest" if len(labels) > 2 else
                  f"precision-recall curve of {th.get('positive')!r}") + (f" ({c['note']})" if c.get("note") else ""))]
    return page(f"frostline evaluation: {Path(m['checkpoint']).name} on {Path(m['data']).name}", "".join(body))


def write_evaluate_report(path: str | Path, m: dict[str, Any], pictures: dict[str, Any] | None = None) -> Path:
    """Write an evaluation's ``report.html`` (atomically)."""
    return _drawn(path, lambda: evaluate_report(m, pictures))
