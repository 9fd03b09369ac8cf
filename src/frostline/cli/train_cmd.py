"""``frostline train``, ``compare`` and ``demo``: thin wrappers over :mod:`frostline.runs.training` and
:mod:`frostline.runs.comparison`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ..core.errors import shorten_labels
from ..runs.config import RunConfig
from .application import app, console, friendly
from .options import run_options
from .status import status

if TYPE_CHECKING:  # the run's modules load when a command runs, not for ``--help`` (torch, matplotlib)
    from ..runs.comparison import Comparison

OutOpt = Annotated[str, typer.Option(help="Run folder (resumed if interrupted, never overwritten).")]
STRATEGY_HELP = ("linear-probe | partial:N | full | gradual | discriminative[:F] | lp-ft[:K] | surgical:SELECTOR "
                 "(e.g. surgical:blocks:0-1) | surgical:auto[:K[:SCORE]] | auto-freeze[:I] | mask:fisher:P | "
                 "lora[:KEY=VALUE...] with keys r, alpha, dropout, blocks, targets (e.g. lora:r=16:blocks=last:2) | "
                 "lora:auto[:K] | ia3[:blocks=SEL] [:targets=NAMES] | bitfit")


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int], Callable[[float], None]]]:
    """A progress-bar factory for the engine: one bar per epoch with the epoch's running mean loss.

    Each epoch's bar is its own live display, so piped output keeps bars in order under their run's heading.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[loss]}")]
    live: list[Progress] = []

    def factory(description: str, total: int) -> Callable[[float], None]:
        bars = Progress(*columns, console=console)
        task = bars.add_task(description, total=total, loss="")
        bars.start()
        live.append(bars)
        done = 0

        def advance(mean_loss: float) -> None:
            nonlocal done
            done += 1
            bars.update(task, advance=1, loss="" if mean_loss != mean_loss else f"mean loss {mean_loss:.4f}")
            if done >= total:
                bars.stop()

        return advance

    try:
        yield factory
    finally:
        for bars in live:
            if bars.live.is_started:
                bars.stop()


def _echo(text: str) -> None:
    console.print(text, highlight=False)


def show_findings(findings: list[dict], title: str = "findings", labels: list[str] | None = None) -> None:
    """Print diagnoses: severity, message and what to do (the same lines after train, compare and evaluate; class
    names longer than a table column shortened)."""
    color = {"error": "red", "warning": "yellow", "info": "green"}
    console.print(f"[bold]{title}[/]")
    for f in findings:
        message, fix = shorten_labels(f["message"], labels or []), shorten_labels(f["fix"], labels or [])
        console.print(f"  [{color[f['severity']]}]{f['severity']}[/] [bold]{f['code']}[/]: {escape(message)}",
                      highlight=False)
        if fix not in ("-", ""):
            console.print(f"      what to do: {fix}", highlight=False, markup=False)


def show_comparison(result: Comparison) -> None:
    """Print the comparison table, each strategy's findings, and where the runs and reports are."""
    from ..evaluation.comparing import split_findings
    from ..reporting.terminal import compare_rows, compare_table

    rows = compare_rows(result.base, [(r.strategy, r.metrics) for r in result.runs])
    console.print(compare_table(rows, width=console.width))
    for line in result.evidence.get("lines", []):
        console.print(line, highlight=False, markup=False)
    for r in result.runs:
        chosen = (r.metrics["run"].get("auto") or {}).get("chosen")
        if chosen:
            console.print(f"{r.strategy} chose: {', '.join(map(str, chosen))}", highlight=False, markup=False)
    shared, own = split_findings([r.metrics.get("diagnoses", []) for r in result.runs])
    if shared:
        show_findings(shared, "findings: the data (every strategy)", result.runs[0].metrics.get("labels"))
    for r, found in zip(result.runs, own, strict=True):
        show_findings(found, f"findings: {r.strategy}", r.metrics.get("labels"))
    console.print(f"runs: {', '.join(str(r.out) for r in result.runs)}; summary: {result.out / 'compare.json'}; "
                  f"report: {result.out / 'report.html'}")


@app.command("train")
@friendly
@run_options
def train_command(cfg: RunConfig, strategy: Annotated[str, typer.Option(help=STRATEGY_HELP)] = "full",
                  out: Annotated[str | None, typer.Option(
                      help="Run folder (resumed if interrupted, never overwritten). Default runs/latest, or "
                           "runs/latest-2, -3... when that holds another run.", show_default=False)] = None,
                  export: Annotated[str | None, typer.Option(
                      help="Also write the best model to this new folder as a standalone model (transformers "
                           "safetensors + config + tokenizer; see `frostline export`).")] = None) -> None:
    """Fine-tune MODEL on DATA with one strategy and write the run folder."""
    from ..reporting.terminal import class_table, confusion_table, history_table, task_table
    from ..runs.export import export_run
    from ..runs.folder import check_out, default_out
    from ..runs.training import train

    cfg.strategy = strategy
    if out is None:
        cfg.validate()
        cfg.out = default_out("runs/latest", cfg)
        if cfg.out != "runs/latest":
            console.print(f"note: runs/latest holds another run: this one goes to {cfg.out} (--out chooses the "
                          "folder)", highlight=False, markup=False)
    else:
        cfg.out = out
    if export is not None:
        check_out(export, "export")  # a taken export folder fails before training, not after
    with progress_bars() as progress:
        result = train(cfg, progress=progress, echo=_echo, status=status)
    m = result.metrics
    console.print(history_table(m, width=console.width))
    if "accuracy" in m["test"]:
        console.print(class_table(m["test"]))
        console.print(confusion_table(m["test"], m["labels"]))
    else:
        console.print(task_table(m["test"]))
    chosen = (m.get("threshold") or {}).get("chosen")
    if chosen:
        console.print(class_table(chosen["test"], title=f"test at threshold {chosen['threshold']:.4f} "
                                                         f"({chosen['objective']}, chosen on validation)"))
    show_findings(m.get("diagnoses", []), labels=m.get("labels"))
    console.print(f"run folder: {result.out}; report: {result.out / 'report.html'}")
    if export is not None:
        kind = export_run(result.out, export, cfg.model if ":" in cfg.model and not cfg.model.startswith("hf:")
                          else None, status=status)
        console.print(f"exported to {export}: {kind}", highlight=False, markup=False)


@app.command("compare")
@friendly
@run_options
def compare_command(
    cfg: RunConfig,
    strategies: Annotated[str, typer.Option(help="Comma-separated strategies, each optionally with its own budget: "
                                                 "full@lr=3e-5@epochs=4 (epochs, lr, head_lr, batch_size, "
                                                 "weight_decay, warmup, schedule, patience, optimizer, probe). "
                                                 "Default: linear-probe, partial:2, full.",
                                            show_default=False)] = "linear-probe,partial:2,full",
    out: OutOpt = "runs/compare",
) -> None:
    """Run several strategies on the same split and starting weights; print one table with the base model."""
    from ..runs.comparison import compare

    cfg.out = out
    with progress_bars() as progress:
        result = compare(cfg, strategies, progress=progress, echo=_echo, status=status)
    show_comparison(result)


@app.command("demo")
@friendly
def demo_command(
    out: Annotated[str | None, typer.Option(help="Run folder (default runs/demo, or runs/demo-images with "
                                                 "--images; resumed if interrupted, never overwritten).",
                                            show_default=False)] = None,
    images: Annotated[bool, typer.Option("--images", help="The image demo: the bundled pretrained CNN "
                                                          "(EfficientNet-Lite0) on real animal pictures.")] = False,
    max_samples: Annotated[int, typer.Option(help="Stratified sample of the SMS set (text demo).")] = 1200,
    per_class: Annotated[int, typer.Option(help="Pictures per class (image demo, 10 classes).")] = 100,
    epochs: Annotated[int, typer.Option(help="Epochs per strategy.")] = 3,
) -> None:
    """Compare strategies on built-in real data, offline: MiniLM on SMS spam (linear-probe, partial:2, full), or with
    --images EfficientNet-Lite0 on animal pictures (linear-probe, partial:2, gradual, auto-freeze, full)."""
    from ..runs.comparison import compare
    from ..runs.demo import DEMO_STRATEGIES, IMAGE_STRATEGIES, demo_config, demo_images_config

    if images:
        cfg, said = demo_images_config(out or "runs/demo-images", per_class, epochs)
        _echo(f"demo: {said}")
        _echo(f"demo: {cfg.model} on {cfg.data} at {cfg.image_size} px, {epochs} epochs per strategy")
        strategies = IMAGE_STRATEGIES
    else:
        cfg = demo_config(out or "runs/demo", max_samples, epochs)
        _echo(f"demo: {cfg.model} on {cfg.data} ({max_samples} messages, {epochs} epochs per strategy)")
        strategies = DEMO_STRATEGIES
    with progress_bars() as progress:
        result = compare(cfg, strategies, progress=progress, echo=_echo, status=status)
    show_comparison(result)
