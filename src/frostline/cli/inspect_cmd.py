"""``frostline inspect`` and ``frostline check``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from ..core.errors import FrostlineError
from .application import app, console, friendly, print_json
from .status import status

if TYPE_CHECKING:  # the model's modules load when a command runs, not for ``--help`` (torch)
    from torch import nn

    from ..freezing.plan import FreezePlan
    from ..models.load import LoadedModel

MODEL_HELP = ("minilm | mpnet | efficientnet-lite0 | hf:<dir or hub id> | package.module:function | "
              "path/to/file.py:function")
ModelArg = Annotated[str | None, typer.Argument(help=f"{MODEL_HELP} (or --model)", show_default=False)]
ModelOpt = Annotated[str | None, typer.Option("--model", help=f"{MODEL_HELP} (as in train and compare).",
                                              show_default=False)]


def pick_model(positional: str | None, option: str | None) -> str:
    """The model named by the positional argument or by ``--model`` (one of them; both only if they agree)."""
    if positional is not None and option is not None and positional != option:
        raise FrostlineError(f"two models given: {positional!r} and --model {option!r}; give one")
    chosen = positional if positional is not None else option
    if chosen is None:
        raise FrostlineError("no model given: name one, e.g. `frostline inspect minilm` or --model minilm "
                             f"({MODEL_HELP})")
    return chosen
FreezeOpt = Annotated[list[str] | None, typer.Option("--freeze", help="Selector to freeze (repeatable).")]
ExceptOpt = Annotated[
    list[str] | None, typer.Option("--freeze-except", help="Selector kept trainable (repeatable).")
]
BnOpt = Annotated[str, typer.Option(help="BatchNorm in frozen parts: eval (pinned) or train.")]
ClassesOpt = Annotated[int | None, typer.Option(help="Replace the head with one of this many classes.")]


PoolingOpt = Annotated[str, typer.Option(help="Text encoders: auto | native | cls | pooler | mean | max.")]


def _prepare(model: str, freeze_: list[str] | None, except_: list[str] | None, bn: str,
             num_classes: int | None, pooling: str = "auto") -> tuple[LoadedModel, FreezePlan | None]:
    if except_ and not freeze_:
        raise FrostlineError("--freeze-except needs --freeze, e.g. --freeze all --freeze-except last:2")
    from ..freezing.plan import freeze
    from ..models.load import load_model
    from ..models.pooling import check_pooling

    check_pooling(pooling)
    loaded = load_model(model, num_classes, pooling=pooling)
    for note in loaded.notes:
        console.print(f"note: {note}", highlight=False)
    plan = freeze(loaded.model, *freeze_, except_=except_ or None, bn=bn) if freeze_ else None  # type: ignore[arg-type]
    return loaded, plan


def _with_importance(model: str, data: str | None, text_column: str | None, label_column: str | None,
                     pooling: str, score: str, freeze_: list[str] | None, except_: list[str] | None,
                     bn: str) -> tuple[LoadedModel, FreezePlan | None, dict[str, str]]:
    from ..freezing.importance import check_score
    from ..freezing.plan import freeze
    from ..runs.config import RunConfig
    from ..runs.importance import module_scores, score_importance

    if data is None:
        raise FrostlineError("--importance needs --data FILE: the scores are measured on your labelled data")
    check_score(score)
    cfg = RunConfig(model=model, data=data, text_column=text_column, label_column=label_column, pooling=pooling)
    result, prepared = score_importance(cfg, status=status,
                                        echo=lambda line: console.print(line, highlight=False, markup=False))
    loaded = prepared.loaded
    plan = freeze(loaded.model, *freeze_, except_=except_ or None, bn=bn) if freeze_ else None  # type: ignore[arg-type]
    console.print(f"importance: {result.batches} batches, {result.samples} samples, {result.seconds:.2f} s",
                  highlight=False)
    return loaded, plan, module_scores(prepared, result, score)


@app.command()
@friendly
def inspect(
    model: ModelArg = None,
    model_option: ModelOpt = None,
    freeze_: FreezeOpt = None,
    freeze_except: ExceptOpt = None,
    bn: BnOpt = "eval",
    num_classes: ClassesOpt = None,
    pooling: PoolingOpt = "auto",
    depth: Annotated[int | None, typer.Option(help="Show every module down to this depth.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan and layout as JSON.")] = False,
    importance: Annotated[bool, typer.Option("--importance", help="Add each part's importance score on --data "
                                             "(a new head for its classes).")] = False,
    data: Annotated[str | None, typer.Option(help="Labelled data for --importance.")] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column of --data.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of --data.")] = None,
    score: Annotated[str, typer.Option(help="rgn | fisher | relevance: the score --importance shows.")] = "rgn",
    strategy: Annotated[str | None, typer.Option(help="Preview what a strategy trains in its first epoch (for "
                                                 "lora / ia3: the layers it adapts and its trainable count).")] = None,
) -> None:
    """Show the module tree (parameters, trainable / frozen, norm statistics), the head and the blocks.

    With --freeze, preview a freeze plan without training; with --importance --data FILE, add the score of each
    part (see frostline importance).
    """
    from ..freezing.overview import summary_table
    from ..models.blocks import discover_blocks

    model = pick_model(model, model_option)
    scores = None
    if importance:
        loaded, plan, scores = _with_importance(model, data, text_column, label_column, pooling, score, freeze_,
                                                freeze_except, bn)
    else:
        if data is not None:
            raise FrostlineError("--data is for --importance; add --importance to score the model on it")
        loaded, plan = _prepare(model, freeze_, freeze_except, bn, num_classes, pooling)
    if strategy is not None and plan is not None:
        raise FrostlineError("--strategy and --freeze are two plans; preview one at a time")
    preview = strategy_preview(loaded.model, strategy) if strategy is not None else None
    layout = discover_blocks(loaded.model, loaded.head.name)
    choice = loaded.pooling.to_dict() if loaded.pooling else None
    if as_json:
        print_json({"model": model, "head": loaded.head.to_dict(), "pooling": choice, "blocks": layout.to_dict(),
                    "inputs": loaded.inputs.to_dict() if loaded.inputs else None,
                    "plan": plan.to_dict() if plan else None, "strategy": preview})
        return
    console.print(summary_table(loaded.model, depth, title=f"{model}: {type(loaded.model).__name__}",
                                scores=scores, score_name=f"importance ({score})"))
    h = loaded.head
    console.print(f"[bold]head[/]: {h.name} ({h.family}; Linear {h.in_features} -> {h.num_classes})")
    if choice:
        console.print(f"[bold]pooling[/]: {' -> '.join(choice['pipeline'])} ({choice['source']})", highlight=False)
    if loaded.inputs is not None:
        console.print(f"[bold]images[/]: {escape(loaded.inputs.describe())}", highlight=False)
    console.print(f"[bold]blocks[/]: {len(layout.blocks)} in {layout.container or '<root>'} "
                  f"({layout.blocks[0]} .. {layout.blocks[-1]}); stem: {', '.join(layout.stem) or '-'}; "
                  f"post: {', '.join(layout.post) or '-'}")
    if plan is not None:
        console.print(f"[bold]plan[/]: {plan}", highlight=False)
    if preview is not None:
        console.print(f"[bold]strategy[/] {escape(preview['text'])}", highlight=False)


def strategy_preview(model: nn.Module, spec: str) -> dict[str, Any]:
    """Apply ``spec``'s first-epoch plan to ``model`` (adapters attached): what it adapts and trains."""
    from ..freezing.plan import set_trainable
    from ..models.parts import model_parts
    from ..training.strategies import parse_strategy

    strategy = parse_strategy(spec, model)
    if strategy.needs_data:
        raise FrostlineError(f"strategy {spec!r} chooses its blocks from importance scores on your data, when it "
                             "trains: frostline importance MODEL --data FILE ranks the blocks now (it adapts or trains "
                             "the top K); preview those blocks with --strategy lora:blocks=A,B or surgical:blocks:A,B")
    strategy.attach(model, 0)
    epoch = strategy.plan(0, model_parts(model), 1e-4, 1e-2)
    done = set_trainable(model, epoch.params)
    total = done.trainable + done.frozen
    counts = f"trainable {done.trainable:,} of {total:,} ({100 * done.trainable / max(total, 1):.2f}%)"
    spec_ = strategy.adapters
    if spec_ is None:
        return {"strategy": str(strategy), "plan": epoch.note, "trainable": done.trainable, "total": total,
                "text": f"{strategy}: {epoch.note}; {counts}"}
    what = (f"LoRA r={spec_.r} alpha={spec_.alpha:g} dropout {spec_.dropout:g}" if spec_.kind == "lora"
            else "(IA)3")
    return {"strategy": str(strategy), "plan": epoch.note, "trainable": done.trainable, "total": total,
            "adapters": spec_.to_dict(),
            "text": f"{strategy}: {what} on {len(spec_.targets)} layers ({', '.join(spec_.targets)}) + head; {counts}"}


@app.command()
@friendly
def check(
    model: ModelArg = None,
    model_option: ModelOpt = None,
    freeze_: FreezeOpt = None,
    freeze_except: ExceptOpt = None,
    bn: BnOpt = "eval",
    num_classes: ClassesOpt = None,
) -> None:
    """Find freezing mistakes: ignored requires_grad attributes, typos, nothing trainable, drifting BatchNorm.

    Exits with status 1 when an error is found.
    """
    from ..freezing.check import check_model

    model = pick_model(model, model_option)
    loaded, _ = _prepare(model, freeze_, freeze_except, bn, num_classes)
    findings = check_model(loaded.model)
    if not findings:
        console.print("[green]no freezing mistakes found[/]")
        return
    for f in findings:
        color = "red" if f.severity == "error" else "yellow"
        console.print(f"[{color}]{f.severity}[/] [bold]{f.code}[/]: {f.message}", highlight=False)
        console.print(f"    fix: {f.fix}", highlight=False, markup=False)
    if any(f.severity == "error" for f in findings):
        raise typer.Exit(1)
