"""The run options shared by ``train`` and ``compare``, declared once.

:func:`run_options` adds them to a command's signature (typer reads ``__signature__``) and hands the command
one :class:`~frostline.runs.config.RunConfig` built from defaults, then ``--config`` YAML, then the flags actually
given on the command line.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..runs.config import RunConfig, build_config, load_yaml

_D = RunConfig()

RUN_OPTIONS: dict[str, tuple[Any, Any]] = {
    "config": (str | None, typer.Option(help="YAML file with any of these options (flags win).")),
    "model": (str, typer.Option(help="minilm | mpnet (make models) | efficientnet-lite0 | hf:<dir or hub id> | "
                                     "package.module:function | path/to/file.py:function")),
    "data": (str | None, typer.Option(help="CSV/TSV/JSONL file, or an image folder (one sub-folder per class).")),
    "text_column": (str | None, typer.Option(help="Text column: name, or number for files without header.")),
    "label_column": (str | None, typer.Option(help="Label column: name, or number.")),
    "task": (str | None, typer.Option(help="classification | regression | multilabel (default: from the labels: "
                                           "lists or a|b -> multilabel, fractional numbers -> regression).")),
    "loss": (str | None, typer.Option(help="regression: mse | huber (default mse); classification: cross-entropy; "
                                           "multilabel: bce.")),
    "header": (bool | None, typer.Option("--header/--no-header", help="First row is a header (default: guess).")),
    "delimiter": (str | None, typer.Option(help="Separator of a CSV-like file: one character, or tab | comma | "
                                                "semicolon | pipe (default: tab for .tsv or a tab in the first line, "
                                                "else comma).")),
    "val_data": (str | None, typer.Option(help="Your own validation file (else split from --data).")),
    "test_data": (str | None, typer.Option(help="Your own test file (else split from --data).")),
    "image_size": (int | None, typer.Option(help="Images are resized to this square size (default: the model's "
                                                 "own input size, e.g. 224 for efficientnet-lite0; smaller is faster "
                                                 "and usually less accurate).")),
    "augment": (str | None, typer.Option(help="Training-image augmentation: hflip, vflip, crop:PIXELS, e.g. "
                                              "hflip,crop:4 (turns the frozen-prefix cache off).")),
    "max_samples": (int | None, typer.Option("--max-samples", "--limit",
                                             help="Use a stratified sample of this many rows (quick runs).")),
    "val_frac": (float, typer.Option(help="Validation fraction of --data.")),
    "test_frac": (float, typer.Option(help="Test fraction of --data.")),
    "max_length": (int | None, typer.Option(help="Truncate text to this many tokens (batches pad dynamically); "
                                                 "default: where a sentence-transformers model's encode truncates "
                                                 "(MiniLM 256, MPNet 384), else 128; never over the model's limit.")),
    "log": (list[str], typer.Option(metavar="<name>", help="Also log the run to mlflow (MLFLOW_TRACKING_URI; else "
                                                           "MLflow's local store) | tensorboard (event files in the "
                                                           "run folder) | csv; repeatable.")),
    "on_bad_rows": (str, typer.Option(help="Rows that cannot be used (empty text or label, NaN target, unreadable "
                                           "picture): skip (dropped, with a warning naming them) | error.")),
    "dropout": (float | None, typer.Option(help="Dropout before the new head.")),
    "pooling": (str, typer.Option(help="Text encoders: auto (a sentence-transformers folder's pooling, else the "
                                       "model's own) | native | cls | pooler | mean | max.")),
    "probe": (str, typer.Option(help="Head-only plans on cached features: auto / lbfgs fit the convex probe to "
                                     "convergence (L2 by cross-validation); sgd trains it for the epochs.")),
    "epochs": (int | None, typer.Option(help="Epochs. Unset: 3, or 10 for lora, ia3 and bitfit.")),
    "batch_size": (int, typer.Option(help="Training batch size.")),
    "eval_batch_size": (int, typer.Option(help="Evaluation batch size.")),
    "lr": (float | None, typer.Option(help="Learning rate of pretrained parts (and adapters). Unset: 1e-4, or the "
                                    "rate the strategy's paper used: lora 5e-4, ia3 3e-3, bitfit 1e-3.")),
    "head_lr": (float, typer.Option(help="Learning rate of the new head.")),
    "weight_decay": (float, typer.Option(help="Weight decay (not on biases and norms).")),
    "optimizer": (str, typer.Option(help="adamw | adam | sgd (momentum 0.9).")),
    "schedule": (str, typer.Option(help="cosine | linear | constant, after per-group warm-up.")),
    "warmup": (float, typer.Option(help="Warm-up as a fraction of all steps (also for groups unfrozen later).")),
    "clip": (float | None, typer.Option(help="Gradient-norm clipping.")),
    "patience": (int | None, typer.Option(help="Early stopping: epochs without a better validation loss.")),
    "seed": (int, typer.Option(help="Seed for splits, initialisation and data order.")),
    "accelerator": (str, typer.Option(help="auto | cpu | cuda.")),
    "devices": (int, typer.Option(help="Processes (one per device) on this machine; >1 is a distributed run, "
                                       "launched by frostline itself (CPU: the gloo backend).")),
    "num_nodes": (int, typer.Option(help="Machines of a distributed run (start each with torchrun or fabric run).")),
    "distributed": (str, typer.Option(help="auto | ddp | fsdp (CUDA only); auto is ddp when devices x nodes > 1.")),
    "precision": (str | None, typer.Option(help="auto (the default), or a Fabric precision: 32-true, bf16-mixed, "
                                                "16-mixed... auto is bf16 where fast (a bf16 GPU, a CPU with AVX-512 "
                                                "BF16 / AMX), checked on validation.")),
    "verify": (bool, typer.Option("--verify/--no-verify", help="Checksum frozen tensors when a plan starts, "
                                                             "verify when it ends.")),
    "cache": (bool, typer.Option("--cache/--no-cache", help="Cache the frozen prefix's output (when valid).")),
    "cache_budget": (float, typer.Option(help="MiB of cached activations kept in memory; beyond, memory-mapped.")),
    "dropout_masks": (str, typer.Option(help="fast | torch: on a CPU, fast draws nn.Dropout masks from a "
                                             "counter-based stream (same Bernoulli; a third of torch's time).")),
    "bn": (str, typer.Option(help="BatchNorm in trainable blocks: auto (= eval for a model with BatchNorm) | eval "
                                  "(pretrained statistics kept) | train (batch statistics, running ones updated) | "
                                  "reestimate (train, then statistics recomputed on the training split before each "
                                  "evaluation).")),
    "dedup": (bool, typer.Option("--dedup/--no-dedup", help="Drop duplicates (after normalising) before splitting.")),
    "optimize": (str | None, typer.Option(help="Choose a threshold on validation: f1, recall@precision>=0.95, "
                                               "precision@recall>=0.90.")),
    "positive_label": (str | None, typer.Option(help="Positive class for thresholds and curves (default: rarest).")),
    "good_accuracy": (float, typer.Option(help="Verdict 'good' needs accuracy above this.")),
    "good_precision": (float, typer.Option(help="... and macro precision above this.")),
    "good_recall": (float, typer.Option(help="... and macro recall above this.")),
    "bad_accuracy": (float, typer.Option(help="Verdict 'bad' below this accuracy.")),
    "bad_class_recall": (float, typer.Option(help="... or any class recall below this.")),
    "good_r2": (float, typer.Option(help="Regression: verdict 'good' needs test R^2 above this ('bad' at or below "
                                         "0: no better than the mean).")),
    "good_f1": (float, typer.Option(help="Multilabel: verdict 'good' needs micro F1 above this.")),
}


def _param(name: str, kind: Any, option: Any) -> inspect.Parameter:
    default = None if name == "config" else getattr(_D, name)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[kind, option])


def run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``fn`` every run option; it receives ``cfg: RunConfig`` plus its own parameters."""
    own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "cfg"]
    extra = [_param(n, k, o) for n, (k, o) in RUN_OPTIONS.items()]

    ctx_param = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)

    @functools.wraps(fn)
    def wrapper(ctx: typer.Context, **kwargs: Any) -> Any:
        def on_command_line(name: str) -> bool:
            source = ctx.get_parameter_source(name)
            return source is not None and source.name == "COMMANDLINE"

        given = {n: kwargs.pop(n) for n in list(kwargs) if n in RUN_OPTIONS}
        explicit = {n: v for n, v in given.items() if n != "config" and on_command_line(n)}
        yaml_values = load_yaml(given["config"]) if given.get("config") else {}
        for n, v in yaml_values.items():
            if n in kwargs and not on_command_line(n):
                kwargs[n] = v  # command-specific keys (strategy, strategies, out) may come from YAML too
        return fn(cfg=build_config(yaml_values, explicit), **kwargs)

    params = [ctx_param, *own, *extra]
    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    del wrapper.__wrapped__  # typer must read the new signature, not fn's
    return wrapper
