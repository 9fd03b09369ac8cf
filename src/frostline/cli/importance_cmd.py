"""``frostline importance``: score which parts of a model matter for your data (table, JSON, plot)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..runs.config import RunConfig
from .application import app, console, err_console, friendly, print_json
from .inspect_cmd import ModelArg, ModelOpt, PoolingOpt, pick_model
from .status import status, status_stderr

DataOpt = Annotated[str, typer.Option(help="Labelled CSV/TSV/JSONL file or image folder (scored on its train split).")]
TextOpt = Annotated[str | None, typer.Option(help="Text column: name, or 0-based index.")]
LabelOpt = Annotated[str | None, typer.Option(help="Label column: name, or 0-based index.")]
LimitOpt = Annotated[int | None, typer.Option("--max-samples", "--limit", help="Use a stratified sample of N.")]


@app.command()
@friendly
def importance(
    data: DataOpt,
    model: ModelArg = None,
    model_option: ModelOpt = None,
    text_column: TextOpt = None,
    label_column: LabelOpt = None,
    max_samples: LimitOpt = None,
    pooling: PoolingOpt = "auto",
    batches: Annotated[int | None, typer.Option(help="Mini-batches to average over (default 4).")] = None,
    batch_size: Annotated[int | None, typer.Option(
        help="Samples per batch (default: 1/160 of the train split, 8 to 32, as surgical:auto).")] = None,
    per_tensor: Annotated[bool, typer.Option("--per-tensor", help="Also score every parameter tensor.")] = False,
    top: Annotated[int | None, typer.Option(help="Mark the K blocks surgical:auto:K would train (default 2).")] = None,
    score: Annotated[str, typer.Option(help="rgn | fisher | relevance: the score --top ranks by.")] = "rgn",
    seed: Annotated[int, typer.Option(help="Split, new head and the batches drawn.")] = 0,
    out: Annotated[str | None, typer.Option(help="Folder for importance.json and importance.png.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Score each part of MODEL (stem, blocks, post, head) on a few batches of your data with a new head:
    relative gradient norm, diagonal Fisher and weight x gradient relevance (the scores surgical:auto uses)."""
    from ..freezing.importance import check_score
    from ..reporting.importance import importance_table
    from ..runs.folder import check_out
    from ..runs.importance import score_importance, write_importance

    check_score(score)
    model = pick_model(model, model_option)
    cfg = RunConfig(model=model, data=data, text_column=text_column, label_column=label_column,
                    max_samples=max_samples, pooling=pooling, seed=seed)
    if out is not None:
        check_out(out, "importance")  # before any work: a used folder fails at once
    shown = err_console if as_json else console  # --json: stdout holds the JSON alone
    scores, _ = score_importance(cfg, batches=batches, batch_size=batch_size, per_tensor=per_tensor,
                                 status=status_stderr if as_json else status,
                                 echo=lambda line: shown.print(line, highlight=False, markup=False))
    top = top if top is not None else min(2, len(scores.ranked(score, blocks_only=True)))
    chosen = scores.top(top, score, blocks_only=True)
    if out is not None:
        folder = write_importance(out, scores, chosen, score)
        shown.print(f"wrote {folder / 'importance.json'} and {folder / 'importance.png'}", highlight=False)
    if as_json:
        print_json(scores.to_dict() | {"chosen": chosen, "chosen_by": score})
        return
    console.print(importance_table(scores.to_dict(), chosen, title=f"{model}: importance per part"))
    console.print(f"surgical:auto:{top}{'' if score == 'rgn' else ':' + score} would train: {', '.join(chosen)} "
                  f"+ head (cost: {scores.batches} batches, {scores.samples} samples, {scores.seconds:.2f} s)",
                  highlight=False)
