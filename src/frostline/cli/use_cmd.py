"""``frostline evaluate`` and ``frostline predict``: use a finished run (thin wrappers over
:mod:`frostline.runs.scoring` and :mod:`frostline.runs.inference`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .application import app, console, friendly, print_json
from .status import status, status_stderr
from .train_cmd import show_findings

CheckpointOpt = Annotated[str, typer.Option(help="A finished run folder.")]
ModelOpt = Annotated[str | None, typer.Option(help="Rebuild the model from this spec (needed for runs built by your "
                                                   "own module:function; frostline never imports code a run names).")]


DelimiterOpt = Annotated[str | None, typer.Option(help="Separator of a CSV-like file: one character, or tab | "
                                                      "comma | semicolon | pipe (default: the run's).")]


@app.command("evaluate")
@friendly
def evaluate_command(
    checkpoint: CheckpointOpt,
    data: Annotated[str, typer.Option(help="Labelled data file or image folder.")],
    text_column: Annotated[str | None, typer.Option(help="Text column (default: the run's).")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column (default: the run's).")] = None,
    header: Annotated[bool | None, typer.Option("--header/--no-header", help="First row is a header (default: "
                                                                             "the run's setting).")] = None,
    delimiter: DelimiterOpt = None,
    out: Annotated[str | None, typer.Option(help="Write predictions.csv, metrics.json and report.html to this new "
                                                 "folder.")] = None,
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the evaluation as JSON.")] = False,
) -> None:
    """Score a finished run's best checkpoint on labelled data, with findings and the run's own test score."""
    from ..reporting.terminal import class_table, confusion_table, task_table
    from ..runs.scoring import evaluate

    result = evaluate(checkpoint, data, text_column, label_column, header, out=out, model=model, status=status,
                      delimiter=delimiter)
    if as_json:
        print_json(result)
        return
    m, th = result["test"], result["threshold"]
    if "accuracy" not in m:  # regression / multilabel: the task's table, then the findings
        console.print(task_table(m, title=Path(data).name))
        show_findings(result["diagnoses"])
        if out:
            console.print(f"written: {out}/predictions.csv, metrics.json")
        return
    console.print(class_table(m, title=Path(data).name))
    console.print(confusion_table(m, result["labels"]))
    c = th.get("curves") or {}
    if c.get("roc_auc") is not None and len(result["labels"]) == 2:
        console.print(f"positive class {th['positive']!r}: ROC-AUC {c['roc_auc']:.4f}, average precision "
                      f"{c['average_precision']:.4f}", highlight=False)
    elif c.get("roc_auc_ovr_macro") is not None:
        console.print(f"{len(result['labels'])} classes: ROC-AUC {c['roc_auc_ovr_macro']:.4f} (macro, each class "
                      "against the rest)", highlight=False)
    if th.get("chosen"):
        console.print(class_table(th["chosen"]["test"], title=f"at the run's threshold {th['chosen']['threshold']:.4f} "
                                                               f"({th['chosen']['objective']})"))
    if not result["overlap"]["checked"]:
        console.print(f"[dim]overlap with the training data not checked: {result['overlap']['note']}[/]",
                      highlight=False)
    show_findings(result["diagnoses"])
    if out:
        console.print(f"written: {out}/predictions.csv, metrics.json, report.html")


def _task_predictions(result: Any, out: str | None, show: int) -> None:
    """The terminal view of a regression's values or a multi-label run's label sets."""
    predicted = result.predicted
    if out is None:
        t = Table(title=f"predictions; first {min(show, len(predicted))} of {len(predicted)}", header_style="bold")
        t.add_column("input", overflow="fold", max_width=70)
        t.add_column(escape(result.label_names[0]) if result.task == "regression" else "labels")
        for i in range(min(show, len(predicted))):
            value = predicted[i]
            t.add_row(escape(result.names[i]), f"{value:.4g}" if result.task == "regression" else escape(value or "-"))
        console.print(t)
    if result.task == "regression":
        v = [float(x) for x in predicted]
        summary = f"values {min(v):.4g} .. {max(v):.4g}, mean {sum(v) / len(v):.4g}"
    else:
        counts = Counter(n for row in predicted for n in row.split("|") if n)
        summary = ", ".join(f"{n} {counts[n]}" for n in result.label_names if counts[n]) or "no label anywhere"
        summary = "labels at the run's per-label thresholds: " + summary
    console.print(f"{len(predicted)} predicted ({summary})" + (f"; written to {out}" if out else
                                                               "; --out FILE writes them all"),
                  highlight=False, markup=False)


@app.command("predict")
@friendly
def predict_command(
    checkpoint: CheckpointOpt,
    data: Annotated[str, typer.Option(help="Unlabelled data: a CSV/TSV/JSONL file (its text column), a .txt file "
                                           "(one text per line), or a folder of images.")],
    out: Annotated[str | None, typer.Option(help="Write a CSV (input, predicted, p_<class>...) to this new file; - "
                                                 "for standard output.")] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column: name or number (default: a one-column file's "
                                                         "only column, else the run's text column).")] = None,
    delimiter: DelimiterOpt = None,
    model: ModelOpt = None,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 128,
    show: Annotated[int, typer.Option(help="Rows to show in the terminal when no --out is given.")] = 20,
) -> None:
    """Predict the class of every input of an unlabelled file or image folder with a finished run."""
    from ..runs.inference import predict_file

    result = predict_file(checkpoint, data, out, text_column, model, batch_size,
                          status=status_stderr if out == "-" else status, delimiter=delimiter)
    if out == "-":
        return
    if result.task != "classification":
        _task_predictions(result, out, show)
        return
    counts = Counter(result.predicted_at_threshold or result.predicted)
    rule = (f"at the run's threshold {result.threshold['threshold']:.4f} for {result.threshold['positive']!r}"
            if result.threshold else "arg-max")
    summary = ", ".join(f"{name} {counts.get(name, 0)}" for name in result.label_names)
    if out is None:
        t = Table(title=escape(f"predictions ({rule}); first {min(show, len(result.names))} of {len(result.names)}"),
                  header_style="bold")
        t.add_column("input", overflow="fold", max_width=70)
        t.add_column("predicted")
        for name in result.label_names:
            t.add_column(escape(f"p({name})"), justify="right")
        labels = result.predicted_at_threshold or result.predicted
        for i in range(min(show, len(result.names))):
            t.add_row(escape(result.names[i]), escape(labels[i]), *[f"{p:.4f}" for p in result.probs[i]])
        console.print(t)
    console.print(f"{len(result.names)} predicted ({rule}): {summary}" + (f"; written to {out}" if out else
                                                                         "; --out FILE writes them all"),
                  highlight=False, markup=False)


@app.command("export")
@friendly
def export_command(
    checkpoint: Annotated[str, typer.Option(help="A finished run folder.")],
    out: Annotated[str, typer.Option(help="New folder for the standalone model.")],
    model: Annotated[str | None, typer.Option(help="Model spec, for runs built by your own module:function.")] = None,
) -> None:
    """Export a run's best model as a standalone model (safetensors + config + tokenizer) for plain transformers."""
    from ..runs.export import export_run

    kind = export_run(checkpoint, out, model, status=status)
    console.print(f"exported {checkpoint} to {out}: {kind}", highlight=False, markup=False)
