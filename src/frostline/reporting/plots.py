"""matplotlib figures for the HTML report, returned as PNG bytes.

Figures are drawn on their own Agg canvas (no pyplot: no display needed, the caller's backend and open figures are
left alone). Every text is literal whatever the caller's ``rcParams`` say: a class label such as ``"$5 off"``,
``"$x_1^2$"`` or ``"100%"`` is neither mathtext nor LaTeX.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import Any, TypeVar

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from ..core.errors import shorten
from ..evaluation.metrics import headline

COLORS = {"train": "#1f77b4", "val": "#d62728"}
#: Text as written: no mathtext (``$...$``), no LaTeX.
LITERAL_TEXT = {"text.parse_math": False, "text.usetex": False}
F = TypeVar("F", bound=Callable[..., Any])


def _literal(fn: F) -> F:
    """Draw within :data:`LITERAL_TEXT` (tick labels are made when the figure is saved, so saving is inside)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with matplotlib.rc_context(LITERAL_TEXT):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _subplots(*grid: int, figsize: tuple[float, float]) -> tuple[Figure, Any]:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*grid)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


@_literal
def learning_curves(history: list[dict[str, Any]], best_epoch: int | None = None, title: str = "") -> bytes:
    """Train and validation loss and accuracy (regression: R^2; multilabel: micro F1) per epoch; the best epoch
    marked."""
    epochs = [h["epoch"] for h in history]
    fig, axes = _subplots(1, 2, figsize=(9, 3.2))
    first = history[0]["val"] if history else {}
    score, name = (("r2", "R^2") if "r2" in first else ("f1", "micro F1") if "subset_accuracy" in first
                   else ("accuracy", "accuracy"))

    def value(m: dict[str, Any], key: str) -> float:
        v = m[key]["micro"] if key == "f1" else m[key]
        return float("nan") if v is None else v

    for ax, key, label in ((axes[0], "loss", "loss"), (axes[1], score, name)):
        for split in ("train", "val"):
            ax.plot(epochs, [value(h[split], key) for h in history], marker="o", color=COLORS[split],
                    label="validation" if split == "val" else split)
        if best_epoch is not None and best_epoch >= 1:
            ax.axvline(best_epoch, color="grey", linestyle=":", label="best epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _png(fig)


@_literal
def confusion_heatmap(cm: list[list[int]], labels: list[str], title: str = "test") -> bytes:
    """Confusion matrix heat map with counts (rows true, columns predicted)."""
    arr = np.asarray(cm)
    size = max(3.0, 0.7 * len(labels) + 2)
    fig, ax = _subplots(figsize=(size, size * 0.85))
    ax.imshow(arr, cmap="Blues")
    shown = [shorten(n, 32) for n in labels]
    ax.set_xticks(range(len(labels)), shown, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), shown)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = arr.max() if arr.size else 0
    for i in range(arr.shape[0]):
        for j in range(arr.shape[1]):
            ax.text(j, i, str(arr[i, j]), ha="center", va="center",
                    color="white" if top and arr[i, j] > top / 2 else "black")
    ax.set_title(title)
    return _png(fig)


def _nearest(curve: dict[str, list[float]], threshold: float) -> tuple[float, float] | None:
    ts = np.asarray(curve["threshold"])
    if not len(ts):
        return None
    i = int(np.argmin(np.abs(ts - threshold)))
    return curve["recall"][i], curve["precision"][i]


@_literal
def pr_curve(section: dict[str, Any], where: str = "test", labels: list[str] | None = None) -> bytes | None:
    """Precision-recall curve of the positive class on ``where`` with the default and the chosen threshold; with
    more than two ``labels``, every class's curve against the rest instead."""
    c = section["curves"]
    if labels is not None and len(labels) > 2 and c.get("per_class"):
        return _pr_per_class(c["per_class"], labels, where)
    if not c.get("pr"):
        return None
    fig, ax = _subplots(figsize=(4.6, 3.6))
    ax.plot(c["pr"]["recall"], c["pr"]["precision"], color="#1f77b4",
            label=f"AP {c['average_precision']:.3f}, ROC-AUC {c['roc_auc']:.3f}")
    ax.axhline(c["positive_rate"], color="grey", linestyle=":", label=f"chance ({c['positive_rate']:.2f})")
    default = (section.get("default") or {}).get("threshold")
    if default is not None and (pt := _nearest(c["pr"], default)):
        ax.plot(*pt, "s", color="black", label=f"default threshold {default:g}")
    chosen = section.get("chosen")
    if chosen:
        t = chosen["test"]["recall"]["per_class"][section["positive"]]
        p = chosen["test"]["precision"]["per_class"][section["positive"]]
        ax.plot(t, p, "o", color="#d62728", markersize=9,
                label=f"chosen {chosen['threshold']:.3f} ({chosen['objective']})")
    ax.set_xlabel(f"recall of {section['positive']!r}")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title(f"precision-recall of {section['positive']!r} ({where})")
    return _png(fig)


def _pr_per_class(per_class: list[dict[str, Any] | None], labels: list[str], where: str) -> bytes | None:
    """One-vs-rest precision-recall curve of every class present (legend: its average precision)."""
    shown = [(n, c) for n, c in zip(labels, per_class, strict=True) if c]
    if not shown:
        return None
    fig, ax = _subplots(figsize=(5.6, 4.0))
    for name, c in shown:
        ax.plot(c["recall"], c["precision"], label=f"{shorten(name, 24)} (AP {c['average_precision']:.3f})")
    ax.set_xlabel("recall (each class against the rest)")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower left", ncol=2 if len(shown) > 6 else 1)
    ax.set_title(f"precision-recall per class, one vs rest ({where})")
    return _png(fig)


@_literal
def compare_curves(runs: list[tuple[str, dict[str, Any]]]) -> bytes:
    """Training (dashed) and validation loss, and validation accuracy (regression: R^2; multilabel: micro F1), per
    epoch for every strategy."""
    fig, axes = _subplots(1, 2, figsize=(9, 3.2))
    first = runs[0][1]["history"][0]["val"] if runs and runs[0][1]["history"] else {}
    key, name_ = ("r2", "R^2") if "r2" in first else ("micro_f1", "micro F1") if "subset_accuracy" in first \
        else ("accuracy", "accuracy")
    for name, m in runs:
        epochs = [h["epoch"] for h in m["history"]]
        line, = axes[0].plot(epochs, [h["val"]["loss"] for h in m["history"]], marker="o", label=f"{name} (val)")
        train_loss = [(h.get("train") or {}).get("loss") for h in m["history"]]
        if any(v is not None for v in train_loss):
            axes[0].plot(epochs, [np.nan if v is None else v for v in train_loss], linestyle="--", marker=".",
                         color=line.get_color(), label=f"{name} (train)")
        values = [headline(h["val"])[key] for h in m["history"]]
        axes[1].plot(epochs, [np.nan if v is None else v for v in values], marker="o", label=name)
    for ax, label in zip(axes, ("loss (dashed: training)", f"validation {name_}"), strict=True):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return _png(fig)


def _short(v: float) -> str:
    """A tick value in a few characters: 0.5, 10, 1K, 3M."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if v >= div:
            return f"{v / div:g}{unit}"
    return f"{v:g}"


@_literal
def cost_vs_score(evidence: dict[str, Any], runs: list[tuple[str, dict[str, Any]]]) -> bytes | None:
    """Each strategy's test score (95 % interval as error bars) against its seconds and its trainable parameters."""
    tested = {r["strategy"]: r for r in evidence.get("test", [])}
    points = [(name, m["seconds"]["total"], max(m["params"]["trainable"], 1), tested[name]) for name, m in runs
              if name in tested and np.isfinite(tested[name]["score"])]
    if not points:
        return None
    fig, axes = _subplots(1, 2, figsize=(9, 3.4))
    rec = evidence.get("recommended")
    for ax, j, xlabel in ((axes[0], 1, "seconds (training and validation)"), (axes[1], 2, "trainable parameters")):
        for point in points:
            t = point[3]
            ax.errorbar([point[j]], [t["score"]], yerr=[[t["score"] - t["low"]], [t["high"] - t["score"]]],
                        fmt="*" if point[0] == rec else "o", markersize=11 if point[0] == rec else 6, capsize=4,
                        label=point[0] + (" (recommended)" if point[0] == rec else ""))
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _short(v)))
        ax.xaxis.set_minor_formatter(NullFormatter())  # plain numbers: no mathtext in literal-text plots
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"test {evidence.get('score', 'score')}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("cost against score (95 % intervals; recommended: chosen on validation)", fontsize=10)
    return _png(fig)


@_literal
def compare_bars(rows: list[dict[str, Any]]) -> bytes:
    """Test accuracy, macro recall and macro F1 per strategy (the base model included); regression: R^2 and
    Spearman; multilabel: subset accuracy, micro and macro F1."""
    names = [r["strategy"] for r in rows]
    kind = rows[-1].get("task", "classification") if rows else "classification"
    keys = {"classification": (("accuracy", "accuracy"), ("recall", "recall"), ("f1", "F1 (macro)")),
            "regression": (("r2", "R^2"), ("spearman", "Spearman")),
            "multilabel": (("subset_accuracy", "subset accuracy"), ("micro_f1", "micro F1"),
                           ("f1", "macro F1"))}[kind]
    x = np.arange(len(names))
    fig, ax = _subplots(figsize=(max(5.0, 1.6 * len(names)), 3.4))
    for i, (key, label) in enumerate(keys):
        values = [np.nan if r.get(key) is None else r[key] for r in rows]
        ax.bar(x + (i - (len(keys) - 1) / 2) * 0.26, values, width=0.26, label=label)
    ax.set_xticks(x, names, rotation=15, ha="right")
    low = min([0.0, *(r[k] for r in rows for k, _ in keys if r.get(k) is not None)])
    ax.set_ylim(max(low, -1.0) - (0.05 if low < 0 else 0), 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=3, loc="lower right")
    ax.set_title("test metrics by strategy")
    return _png(fig)


@_literal
def importance_bars(scores: dict[str, Any], chosen: list[str] | None = None) -> bytes:
    """Each importance score per part (``importance.json`` content), one panel per score, chosen parts marked."""
    head = next((p for p in scores["parts"] if p["name"] == "head"), None)
    parts = [p for p in scores["parts"] if p is not head]  # the new head's scores dwarf the body's: said, not drawn
    names = [p["name"] for p in parts]
    kinds = list(scores["scores"])
    fig, axes = _subplots(1, len(kinds), figsize=(max(6.0, 0.5 * len(names) * len(kinds)), 3.4))
    for ax, kind in zip(np.atleast_1d(axes), kinds, strict=True):
        values = [p[kind] for p in parts]
        colors = ["#d62728" if chosen and n in chosen else "#1f77b4" for n in names]
        ax.bar(np.arange(len(names)), values, color=colors)
        ax.set_xticks(np.arange(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(kind + (f" (head {head[kind]:.3g}, not drawn)" if head else ""), fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(f"importance per part ({scores['batches']} batches, {scores['samples']} samples)"
                 + ("; red: chosen" if chosen else ""), fontsize=9, y=1.04)
    return _png(fig)


@_literal
def regression_fit(y_true: np.ndarray, y_pred: np.ndarray, name: str = "target") -> bytes:
    """Predicted against true values with the identity line, and the residuals against the prediction."""
    fig, axes = _subplots(1, 2, figsize=(9, 3.6))
    lo, hi = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    axes[0].scatter(y_true, y_pred, s=10, alpha=0.6)
    axes[0].plot([lo, hi], [lo, hi], color="grey", linestyle="--", label="predicted = true")
    axes[0].set_xlabel(f"true {name}")
    axes[0].set_ylabel(f"predicted {name}")
    axes[0].legend(fontsize=8)
    residual = y_pred - y_true
    axes[1].scatter(y_pred, residual, s=10, alpha=0.6, color="#d62728")
    axes[1].axhline(0, color="grey", linestyle="--")
    axes[1].set_xlabel(f"predicted {name}")
    axes[1].set_ylabel("residual (predicted - true)")
    for ax in axes:
        ax.grid(alpha=0.3)
    return _png(fig)


@_literal
def label_bars(m: dict[str, Any], limit: int = 40) -> bytes:
    """Per-label precision, recall and F1 (test), labels ordered by their number of positives."""
    names = sorted(m["support"], key=lambda n: -m["support"][n])[:limit]
    x = np.arange(len(names))
    fig, ax = _subplots(1, 1, figsize=(max(6.0, 0.35 * len(names) + 2), 3.6))
    for i, (key, color) in enumerate((("precision", "#1f77b4"), ("recall", "#ff7f0e"), ("f1", "#2ca02c"))):
        ax.bar(x + (i - 1) * 0.27, [m[key]["per_class"][n] for n in names], width=0.27, color=color,
               label="F1" if key == "f1" else key)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{shorten(n, 32)} ({m['support'][n]})" for n in names], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("test score")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)
