"""Terminal tables of a run and of a comparison (rich)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from ..core.errors import shorten
from ..evaluation.metrics import HEADLINE, headline, task_of


def _f(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def history_table(metrics: dict[str, Any], width: int | None = None) -> Table:
    """One row per epoch: plan, trainable parameters, seconds, train / validation loss and accuracy, F1 (below 80
    columns of ``width``: epoch, plan, trainable, validation loss and accuracy)."""
    t = Table(title=f"{escape(metrics['run']['strategy'])}: epochs", header_style="bold")
    kind = task_of(metrics["history"][0]["val"]) if metrics["history"] else "classification"
    (k1, n1), (k2, n2) = {"classification": (("accuracy", "acc"), ("f1", "F1")),
                          "regression": (("rmse", "RMSE"), ("r2", "R^2")),
                          "multilabel": (("micro_f1", "micro F1"), ("f1", "macro F1"))}[kind]
    c1, c2 = f"val\n{n1}", f"val\n{n2}"
    cols = ["epoch", "plan", "trainable", "s", "train\nloss", "val\nloss", c1, c2]
    if width is not None and width < 80:
        cols = ["epoch", "plan", "trainable", "val\nloss", c1]
    for col in cols:
        text = col == "plan"  # the plan wraps on a narrow terminal; numbers are never cut
        t.add_column(col, justify="left" if text else "right", no_wrap=not text, overflow="fold" if text else "crop",
                     min_width=12 if text else None)
    for h in metrics["history"]:
        best = " *" if h["epoch"] == metrics["best_epoch"] else ""
        v = headline(h["val"])
        cells = {"epoch": f"{h['epoch']}{best}", "plan": escape(h["plan"]), "trainable": params_text(h["trainable"]),
                 "s": f"{h['seconds']:.1f}", "train\nloss": _f(h["train"]["loss"]), "val\nloss": _f(h["val"]["loss"]),
                 c1: _f(v[k1]), c2: _f(v[k2])}
        t.add_row(*[cells[c] for c in cols])
    t.caption = "* best epoch (lowest validation loss): its weights are kept; s: seconds" + (
        "; val F1: macro average" if kind == "classification" else "")
    return t


def class_table(m: dict[str, Any], title: str = "test") -> Table:
    """Per-class precision, recall, F1 and support, then macro and weighted averages."""
    t = Table(title=f"{title}: accuracy {m['accuracy']:.4f} on {m['n']} samples, loss {_f(m['loss'])}",
              header_style="bold")
    for col in ("class", "precision", "recall", "F1", "support"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for name, support in m["support"].items():
        t.add_row(escape(shorten(name)), _f(m["precision"]["per_class"][name]), _f(m["recall"]["per_class"][name]),
                  _f(m["f1"]["per_class"][name]), str(support))
    for avg in ("macro", "weighted"):
        t.add_row(f"[dim]{avg}[/]", _f(m["precision"][avg]), _f(m["recall"][avg]), _f(m["f1"][avg]), str(m["n"]))
    return t


def confusion_table(m: dict[str, Any], labels: list[str]) -> Table:
    """Confusion matrix: rows true, columns predicted."""
    t = Table(title="confusion matrix (rows: true, columns: predicted)", header_style="bold")
    t.add_column("", overflow="fold")
    for name in labels:
        t.add_column(escape(shorten(name, 24)), justify="right", overflow="fold")
    for name, row in zip(labels, m["confusion_matrix"], strict=True):
        t.add_row(escape(shorten(name, 24)), *map(str, row))
    return t


def task_table(m: dict[str, Any], title: str = "test") -> Table:
    """A regression's metrics beside always predicting the training mean; a multi-label run's per-label scores with
    micro, macro and samples averages."""
    if "r2" in m:
        t = Table(title=f"{title}: {m['n']} samples, loss {_f(m['loss'])}", header_style="bold")
        for col in ("", "MSE", "RMSE", "MAE", "R^2", "Spearman"):
            t.add_column(col, justify="left" if not col else "right")
        t.add_row("model", _f(m["mse"]), _f(m["rmse"]), _f(m["mae"]), _f(m["r2"]), _f(m["spearman"]))
        b = m.get("mean_baseline")
        if b:
            t.add_row(f"[dim]always {b['value']:.4g} (train mean)[/]", _f(b["mse"]), _f(b["rmse"]), _f(b["mae"]),
                      _f(b["r2"]), "-")
        return t
    t = Table(title=f"{title}: subset accuracy {m['subset_accuracy']:.4f}, Hamming loss {m['hamming_loss']:.4f} on "
              f"{m['n']} samples", header_style="bold")
    for col in ("label", "precision", "recall", "F1", "positives", "predicted"):
        t.add_column(col, justify="left" if col == "label" else "right")
    for name, support in m["support"].items():
        t.add_row(escape(shorten(name)), _f(m["precision"]["per_class"][name]), _f(m["recall"]["per_class"][name]),
                  _f(m["f1"]["per_class"][name]), str(support), str(m["predicted"][name]))
    for avg in ("micro", "macro", "samples"):
        t.add_row(f"[dim]{avg}[/]", _f(m["precision"][avg]), _f(m["recall"][avg]), _f(m["f1"][avg]), "", "")
    return t


def compare_rows(base: dict[str, Any] | None, runs: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of the comparison: the base model first, then each strategy (test metrics, best validation loss)."""
    rows = []
    if base is not None:
        rows.append({"strategy": "base model", "trainable": 0, "seconds": 0.0, "budget": "-",
                     "val_loss": base["val"]["loss"], **_test(base["test"])})
    for name, m in runs:
        # the kept weights' validation loss as scored at the end (the losses compare's recommendation reads from
        # validation.csv); runs from before it was recorded: the epoch's own evaluation
        best = m.get("val") or next(h for h in m["history"] if h["epoch"] == m["best_epoch"])["val"]
        rows.append({"strategy": name, "trainable": m["params"]["trainable"], "seconds": m["seconds"]["total"],
                     "budget": budget_text(m), "val_loss": best["loss"], **_test(m["test"])})
    return rows


def params_text(n: int) -> str:
    """A parameter count in a few characters: 770, 35.3K, 3.55M (exact counts are in metrics.json)."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def budget_text(m: dict[str, Any]) -> str:
    """What a run trained with, in a few characters: epochs run / planned and rates, or the probe's fit."""
    b = m["run"].get("budget")
    if not b:
        return "-"
    probe = b.get("probe")
    if probe and b.get("converged"):
        solver = "ridge" if probe.get("solver", "L-BFGS").startswith("ridge") else "L-BFGS"
        return f"{solver}, C={probe['C']:.3g}"
    rates = f"{_lr(b['lr'])}/{_lr(b['head_lr'])}"
    if probe:  # a converged probe epoch, then SGD epochs (skipped probe epochs are not run)
        return f"probe+{b['epochs_run'] - 1} ep, {rates}"
    return f"{b['epochs_run']}/{b['epochs']} ep, {rates}"


def _lr(x: float) -> str:
    return f"{x:g}" if x >= 1e-3 else f"{x:.0e}".replace("e-0", "e-")


def _test(m: dict[str, Any]) -> dict[str, Any]:
    h = headline(m)
    return {k: v for k, v in h.items() if k != "loss"} | {"task": task_of(m)}


#: columns the whole comparison table needs, per task (narrower: columns give way, never cut)
FULL_WIDTH = {"classification": 112, "regression": 112, "multilabel": 128}


def compare_table(rows: list[dict[str, Any]], title: str = "strategy comparison", width: int | None = None) -> Table:
    """The comparison table: one row per strategy.

    Below 112 columns (``width``) it keeps strategy, budget, trainable, accuracy, F1 and the change against the base
    model, so no number is cut; the rest is in ``compare.json`` and ``report.html``.
    """
    t = Table(title=title, header_style="bold")
    base = rows[0] if rows and rows[0]["strategy"] == "base model" else None
    compact = width is not None and width < 112
    kind = rows[-1].get("task", "classification") if rows else "classification"
    scores = dict(HEADLINE[kind])  # key -> column title
    first, last = next(iter(scores.values())), list(scores.values())[-1]
    judge = {"classification": "f1", "regression": "r2", "multilabel": "micro_f1"}[kind]
    cols = ["strategy", "budget", "trainable", "seconds", "val loss", *scores.values()]
    if compact:
        key_cols = [first, scores[judge]] if kind != "classification" else [first, last]
        cols = ["strategy", "budget", "trainable", *key_cols] if width >= 80 else ["strategy", "trainable", *key_cols]
    no_val_loss = not compact and width is not None and width < FULL_WIDTH.get(kind, 112)
    if no_val_loss:  # four multi-label scores: the best epoch's validation loss gives way (compare.json has it)
        cols.remove("val loss")
    for col in [*cols, *(["vs base"] if base else [])]:
        text = col in ("strategy", "budget")  # text wraps when the terminal is narrow; numbers never get cut
        t.add_column(col, justify="left" if text else "right", no_wrap=not text, overflow="fold" if text else "crop",
                     min_width={"strategy": 12, "budget": 17}.get(col, len(col)))
    for r in rows:
        cells = {"strategy": escape(r["strategy"]), "budget": escape(r["budget"]),
                 "trainable": params_text(r["trainable"]), "seconds": f"{r['seconds']:.1f}",
                 "val loss": _f(r["val_loss"]), **{title: _f(r.get(key)) for key, title in scores.items()}}
        gain = None if base is None or r is base or r.get(judge) is None or base.get(judge) is None \
            else r[judge] - base[judge]
        change = [] if base is None else ["" if gain is None else f"{gain:+.4f}"]
        t.add_row(*[cells[c] for c in cols], *change)
    solver = "ridge: linear probe solved in closed form, C = 1/alpha" if kind == "regression" else \
        "L-BFGS: linear probe fit to convergence"
    t.caption = (f"budget: epochs run / planned, body / head learning rate; {solver}, "
                 "L2 strength C by cross-validation on train (probe+N ep: that probe, then N epochs). "
                 + ("" if compact or no_val_loss else "val loss: best epoch; ")
                 + ("trainable: parameters; accuracy, precision, recall, F1: test split, macro averages; "
                    if kind == "classification" else
                    "trainable: parameters; scores: test split at per-label thresholds chosen on validation (0.5 for "
                    "labels with under 10 validation positives; all at 0.5: metrics.json threshold.at_0.5); "
                    if kind == "multilabel" else
                    "trainable: parameters; scores: test split; ")
                 + ("narrow terminal: the other columns are in compare.json and report.html; "
                    if compact else "seconds: training and validation; ")
                 + f"vs base: {scores[judge]} change against the base model (pretrained body, new head only "
                   "initialised)")
    return t
