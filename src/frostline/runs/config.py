"""Run configuration: one flat set of keys, from CLI flags or a YAML file (flags win)."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import FrostlineError, did_you_mean, shorten, shown
from ..evaluation.diagnose import Thresholds
from ..training.records import TrainConfig

ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
#: what a row that cannot be used does: dropped with a warning that names it, or an error
BAD_ROWS = ("skip", "error")
#: ``--lr`` (pretrained parts) and ``--epochs`` when unset, for strategies that name none of their own
#: the engine's and the verdict's own defaults: a RunConfig key they share takes its default from them (one source)
_TRAIN, _VERDICT = TrainConfig(), Thresholds()
BUDGET_DEFAULTS = {"lr": _TRAIN.lr, "epochs": _TRAIN.epochs}
#: Other names of keys, as the command line spells them (``--limit`` is ``max_samples``).
ALIASES = {"limit": "max_samples"}


def flag(name: str) -> str:
    """The command-line flag of a configuration key, for error messages."""
    return "--limit" if name == "max_samples" else "--" + name.replace("_", "-")
PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16-true", "16-mixed", "16-true", "64-true")
#: Other spellings of a precision, for the error's suggestion.
PRECISION_ALIASES = {"fp16": "16-mixed", "16": "16-mixed", "half": "16-mixed", "float16": "16-mixed",
                     "bf16": "bf16-mixed", "bfloat16": "bf16-mixed", "fp32": "32-true", "float32": "32-true",
                     "fp64": "64-true", "64": "64-true", "double": "64-true"}


@dataclass
class RunConfig:
    """Everything that defines a run. Keys are the CLI flags with ``_`` for ``-``."""

    model: str = "minilm"
    data: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    task: str | None = None
    loss: str | None = None
    header: bool | None = None
    delimiter: str | None = None
    val_data: str | None = None
    test_data: str | None = None
    image_size: int | None = None
    augment: str | None = None
    max_samples: int | None = None
    val_frac: float = 0.15
    test_frac: float = 0.15
    max_length: int | None = None
    dropout: float | None = None
    pooling: str = "auto"
    probe: str = _TRAIN.probe
    strategy: str = "full"
    epochs: int | None = None  # unset: the strategy's own (:meth:`budget`)
    batch_size: int = _TRAIN.batch_size
    eval_batch_size: int = _TRAIN.eval_batch_size
    lr: float | None = None  # unset: the strategy's own (:meth:`budget`)
    head_lr: float = _TRAIN.head_lr
    weight_decay: float = _TRAIN.weight_decay
    optimizer: str = _TRAIN.optimizer
    schedule: str = _TRAIN.schedule
    warmup: float = _TRAIN.warmup
    clip: float | None = _TRAIN.clip
    patience: int | None = _TRAIN.patience
    seed: int = _TRAIN.seed
    accelerator: str = _TRAIN.accelerator
    precision: str | None = _TRAIN.precision
    devices: int = 1
    num_nodes: int = 1
    distributed: str = "auto"
    verify: bool = _TRAIN.verify
    cache: bool = _TRAIN.cache
    cache_budget: float = _TRAIN.cache_budget
    dropout_masks: str = _TRAIN.dropout_masks
    bn: str = _TRAIN.bn
    dedup: bool = False
    on_bad_rows: str = "skip"
    log: list[str] = field(default_factory=list)
    optimize: str | None = None
    positive_label: str | None = None
    good_accuracy: float = _VERDICT.good_accuracy
    good_precision: float = _VERDICT.good_precision
    good_recall: float = _VERDICT.good_recall
    bad_accuracy: float = _VERDICT.bad_accuracy
    bad_class_recall: float = _VERDICT.bad_class_recall
    good_r2: float = _VERDICT.good_r2
    good_f1: float = _VERDICT.good_f1
    out: str = "runs/latest"

    def validate(self, strategies: list[str] | None = None) -> RunConfig:
        """Check every option that can be checked before the model or the data load; returns ``self``.

        Args:
            strategies: The strategies of a comparison (default: ``[self.strategy]``).
        """
        from ..data.augment import parse_augment
        from ..evaluation.threshold import parse_objective
        from ..models.load import check_model_spec
        from ..models.pooling import check_pooling
        from ..training.optim import OPTIMIZERS
        from ..training.schedule import LRSchedule
        from ..training.strategies import check_strategy_spec

        check_types(self)
        _check_task(self.task, self.loss)
        check_model_spec(self.model)
        check_pooling(self.pooling)
        for spec in strategies if strategies is not None else [self.strategy]:
            check_strategy_spec(spec)
        self.train_config().validate()
        LRSchedule(1, 0, self.schedule)
        if self.optimizer.lower() not in OPTIMIZERS:
            raise FrostlineError(f"unknown optimizer {shown(self.optimizer)}; expected one of {', '.join(OPTIMIZERS)}"
                                 f"{did_you_mean(self.optimizer.lower(), OPTIMIZERS)}")
        if self.accelerator not in ACCELERATORS:
            raise FrostlineError(f"--accelerator must be one of {', '.join(ACCELERATORS)}, got "
                                 f"{shown(self.accelerator)}{did_you_mean(self.accelerator, ACCELERATORS)}")
        on_gpu = _check_device(self.accelerator)
        from ..training.distributed import check as check_distributed

        check_distributed(self.devices, self.num_nodes, self.distributed,
                          "cpu" if self.accelerator == "auto" and not on_gpu else self.accelerator)
        if self.delimiter is not None:
            from ..data.unlabelled import check_delimiter

            self.delimiter = check_delimiter(self.delimiter)
        if isinstance(self.precision, str) and self.precision.strip().lower() == "auto":
            self.precision = None  # the help's "auto" is the unset option
        if self.precision is not None and self.precision not in PRECISIONS:
            alias = PRECISION_ALIASES.get(self.precision.lower())
            hint = f"; did you mean {alias}?" if alias else did_you_mean(self.precision, PRECISIONS)
            raise FrostlineError(f"--precision must be one of {', '.join(PRECISIONS)} (or auto), got "
                                 f"{shown(self.precision)}{hint}")
        from ..training.fabric import check_precision

        runs_on = "cpu" if self.accelerator == "auto" and not on_gpu else self.accelerator
        check_precision(runs_on, self.precision)
        if isinstance(self.log, str):
            self.log = [self.log]
        if not isinstance(self.log, list) or not all(isinstance(k, str) for k in self.log):
            raise FrostlineError(f"--log must be a list of names (mlflow, tensorboard, csv), got {shown(self.log)}")
        from .tracking import check_loggers

        check_loggers(self.log)
        if self.on_bad_rows not in BAD_ROWS:
            raise FrostlineError(f"--on-bad-rows must be one of {', '.join(BAD_ROWS)}, got {shown(self.on_bad_rows)}"
                                 f"{did_you_mean(self.on_bad_rows, BAD_ROWS)}")
        if self.optimize is not None:
            parse_objective(self.optimize)
        parse_augment(self.augment)
        for name, frac in (("val_frac", self.val_frac), ("test_frac", self.test_frac)):
            if not 0 < frac < 1:
                raise FrostlineError(f"{flag(name)} must be a fraction in (0, 1), got {shown(frac)}")
        if self.val_frac + self.test_frac >= 1:
            raise FrostlineError(f"--val-frac + --test-frac must leave training data, got {self.val_frac} + "
                                 f"{self.test_frac}")
        checks = [("image_size", self.image_size is None or self.image_size >= 8, ">= 8 or unset (the model's own)"),
                  ("max_length", self.max_length is None or self.max_length >= 2, ">= 2 or unset"),
                  ("max_samples", self.max_samples is None or self.max_samples >= 4, ">= 4 or unset"),
                  ("cache_budget", self.cache_budget >= 0, ">= 0 MiB"),
                  ("seed", 0 <= self.seed < 2**32, "an integer in [0, 4294967295]"),
                  ("dropout", self.dropout is None or 0 <= self.dropout < 1, "a probability in [0, 1)")]
        checks += [(n, 0 <= getattr(self, n) <= 1, "a fraction in [0, 1]") for n in
                   ("good_accuracy", "good_precision", "good_recall", "bad_accuracy", "bad_class_recall", "good_f1")]
        checks.append(("good_r2", self.good_r2 <= 1, "at most 1 (R^2 of a perfect fit)"))
        for name, ok, expected in checks:
            if not ok:
                raise FrostlineError(f"{flag(name)} must be {expected}, got {shown(getattr(self, name))}")
        if self.text_column is not None and self.text_column == self.label_column:
            raise FrostlineError(f"--text-column and --label-column are the same column ({shown(self.text_column)}); "
                                 "the labels must come from another column than the texts")
        for name in ("data", "val_data", "test_data"):
            path = getattr(self, name)
            if path is not None and not Path(path).exists():
                raise FrostlineError(f"{flag(name)} {shown(path)} does not exist")
        _check_out(Path(self.out))
        return self

    def budget(self, key: str) -> Any:
        """``lr`` or ``epochs`` as given, or without it the strategy's own: PEFT strategies take the rate their
        paper used and 10 epochs (:data:`frostline.training.adapted.DEFAULTS`), the others 1e-4 and 3."""
        from ..training.adapted import strategy_default

        value = getattr(self, key)
        return value if value is not None else strategy_default(self.strategy, key, BUDGET_DEFAULTS[key])

    def body_lr(self) -> float:
        """The learning rate of pretrained parts and adapters (:meth:`budget`)."""
        return self.budget("lr")

    def train_config(self) -> TrainConfig:
        """The engine's part of the configuration."""
        names = {f.name for f in fields(TrainConfig)}
        given = {k: v for k, v in asdict(self).items() if k in names}
        return TrainConfig(**{**given, "lr": self.budget("lr"), "epochs": self.budget("epochs")})

    def thresholds(self) -> Thresholds:
        """The verdict thresholds."""
        return Thresholds(**{f.name: getattr(self, f.name) for f in fields(Thresholds)})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for config.yaml)."""
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """The keys that must match for a run folder to be resumed (everything but where it is written)."""
        d = {**self.to_dict(), "lr": self.budget("lr"), "epochs": self.budget("epochs")}
        for key in ("out", *PROCESS_KEYS):
            d.pop(key)
        return d


#: how many processes run it: not part of a run's identity (the same global batch gives the same run, and an
#: interrupted run may resume on another number of processes)
PROCESS_KEYS = ("devices", "num_nodes", "distributed", "log")  # and where it is logged


def _check_task(task: str | None, loss: str | None) -> None:
    from ..core.task import LOSSES, check_task

    kind = check_task(task)
    allowed = LOSSES[kind] if kind else tuple(dict.fromkeys(x for v in LOSSES.values() for x in v))
    if loss is not None and loss not in allowed:
        raise FrostlineError(f"--loss {shown(loss)} is not a loss{' of a ' + kind + ' task' if kind else ''}; "
                             f"expected one of {', '.join(allowed)}{did_you_mean(loss, allowed)}")


def config_keys() -> list[str]:
    """All valid keys."""
    return [f.name for f in fields(RunConfig)]


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a run YAML file and check its keys."""
    p = Path(path)
    if not p.is_file():
        raise FrostlineError(f"config file {str(path)!r} does not exist")
    from ..data.unlabelled import read_utf8

    try:
        data = yaml.load(read_utf8(p), Loader=_NoAliases) or {}  # SafeLoader, aliases refused
    except yaml.YAMLError as exc:
        raise FrostlineError(f"{p}: not valid YAML: {shorten(str(exc), 300)}") from None
    if not isinstance(data, dict):
        raise FrostlineError(f"{p}: expected a mapping of keys to values, got {type(data).__name__}")
    names = [str(k).replace("-", "_") for k in data]
    for alias, key in ALIASES.items():
        if alias in names and key in names:
            raise FrostlineError(f"{p}: both {alias!r} and {key!r} are set; they are the same option, give one")
    data = {ALIASES.get(k, k): v for k, v in zip(names, data.values(), strict=True)}
    keys = [*config_keys(), "strategies"]
    for key in data:
        if key not in keys:
            raise FrostlineError(f"{p}: unknown key {shown(key)}{did_you_mean(str(key)[:100], keys)}")
    return data


def _check_device(accelerator: str) -> bool:
    """An accelerator that is asked for must exist here (checked before anything loads); returns whether a CUDA GPU
    is available."""
    import torch

    if accelerator in ("cuda", "gpu") and not torch.cuda.is_available():
        raise FrostlineError(f"--accelerator {accelerator}: no CUDA GPU is available to this torch "
                             f"({torch.__version__}); use --accelerator auto or cpu")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise FrostlineError("--accelerator mps: Apple's MPS is not available here; use --accelerator auto or cpu")
    return torch.cuda.is_available()


def _check_out(out: Path) -> None:
    """A new ``--out`` folder can be made: its nearest existing parent is a folder this user can write in."""
    parent = out
    while not parent.exists() and parent.parent != parent:
        parent = parent.parent
    if parent == out:
        return  # an existing --out is the run folder's business (resumed, reused, or refused)
    if not parent.is_dir():
        raise FrostlineError(f"--out {str(out)!r} cannot be made: {str(parent)!r} is a file, not a folder; choose "
                             "another --out")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise FrostlineError(f"--out {str(out)!r} cannot be made: no permission to write in {str(parent)!r}; "
                             "choose another --out")


def _shown(value: Any) -> str:
    """A value and its YAML kind, for type errors: ``'3' (a string)`` (a long value is cut: never echoed whole)."""
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "a mapping"}
    return f"{shown(value)} ({kinds.get(type(value), 'null' if value is None else type(value).__name__)})"


class _NoAliases(yaml.SafeLoader):
    """PyYAML's safe loader without aliases (``*name``): a config never needs them, and nested aliases expand
    exponentially (a "billion laughs" file of a few hundred bytes takes gigabytes)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"line {mark.line + 1}: an alias (*name) repeats another value; frostline configs "
                                 "do not accept aliases: write the value out")
        return super().compose_node(parent, index)


def check_types(cfg: RunConfig) -> None:
    """Each value has its field's type (YAML ``"false"`` is not a bool, ``true`` is not an epoch count).

    A string that reads as a number is taken for a number field: YAML 1.1 reads ``lr: 1e-3`` as the string
    ``"1e-3"``.
    """
    for f in fields(RunConfig):
        value = getattr(cfg, f.name)
        if value is None and "None" in str(f.type):
            continue
        kind = str(f.type).split(" |")[0]
        if kind == "float" and isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise FrostlineError(f"{flag(f.name)} must be a number, got {_shown(value)}") from None
            setattr(cfg, f.name, value)
        if kind == "bool" and not isinstance(value, bool):
            raise FrostlineError(f"{flag(f.name)} must be true or false, got {_shown(value)}")
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise FrostlineError(f"{flag(f.name)} must be an integer, got {_shown(value)}")
        if kind == "float" and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise FrostlineError(f"{flag(f.name)} must be a number, got {_shown(value)}")
        if kind == "float" and not math.isfinite(value):
            raise FrostlineError(f"{flag(f.name)} must be a finite number, got {_shown(value)}")
        if kind == "str" and not isinstance(value, str):
            raise FrostlineError(f"{flag(f.name)} must be a string, got {_shown(value)}")


def build_config(yaml_values: dict[str, Any], cli_values: dict[str, Any]) -> RunConfig:
    """Defaults, then YAML, then flags given on the command line; types checked."""
    merged = {k: v for k, v in {**yaml_values, **cli_values}.items() if k in config_keys()}
    for key in ("text_column", "label_column"):  # a column number in YAML is an int
        if isinstance(merged.get(key), int) and not isinstance(merged[key], bool):
            merged[key] = str(merged[key])
    cfg = RunConfig(**merged)
    check_types(cfg)
    return cfg
