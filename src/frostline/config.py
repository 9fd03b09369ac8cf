"""Run configuration: one flat set of keys, from CLI flags or a YAML file (flags win)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .diagnose import Thresholds
from .engine import TrainConfig
from .errors import FrostlineError, did_you_mean


@dataclass
class RunConfig:
    """Everything that defines a run. Keys are the CLI flags with ``_`` for ``-``."""

    model: str = "minilm"
    data: str | None = None
    text_column: str | None = None
    label_column: str | None = None
    header: bool | None = None
    val_data: str | None = None
    test_data: str | None = None
    image_size: int = 64
    augment: str | None = None
    max_samples: int | None = None
    val_frac: float = 0.15
    test_frac: float = 0.15
    max_length: int = 128
    dropout: float | None = None
    strategy: str = "full"
    epochs: int = 3
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 1e-4
    head_lr: float = 1e-2
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    schedule: str = "cosine"
    warmup: float = 0.1
    clip: float | None = 1.0
    patience: int | None = 3
    seed: int = 0
    accelerator: str = "auto"
    precision: str | None = None
    verify: bool = True
    cache: bool = True
    cache_budget: float = 2048.0
    dedup: bool = False
    optimize: str | None = None
    positive_label: str | None = None
    good_accuracy: float = 0.80
    good_precision: float = 0.75
    good_recall: float = 0.75
    bad_accuracy: float = 0.60
    bad_class_recall: float = 0.20
    out: str = "runs/latest"

    def train_config(self) -> TrainConfig:
        """The engine's part of the configuration."""
        names = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in asdict(self).items() if k in names})

    def thresholds(self) -> Thresholds:
        """The verdict thresholds."""
        return Thresholds(self.good_accuracy, self.good_precision, self.good_recall, self.bad_accuracy,
                          self.bad_class_recall)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for config.yaml)."""
        return asdict(self)

    def identity(self) -> dict[str, Any]:
        """The keys that must match for a run folder to be resumed (everything but where it is written)."""
        d = self.to_dict()
        d.pop("out")
        return d


def config_keys() -> list[str]:
    """All valid keys."""
    return [f.name for f in fields(RunConfig)]


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a run YAML file and check its keys."""
    p = Path(path)
    if not p.is_file():
        raise FrostlineError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise FrostlineError(f"{p}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise FrostlineError(f"{p}: expected a mapping of keys to values, got {type(data).__name__}")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    if "strategies" in data and isinstance(data["strategies"], list):
        data["strategies"] = ",".join(map(str, data["strategies"]))
    keys = [*config_keys(), "strategies"]
    for key in data:
        if key not in keys:
            raise FrostlineError(f"{p}: unknown key {key!r}{did_you_mean(key, keys)}")
    return data


def build_config(yaml_values: dict[str, Any], cli_values: dict[str, Any]) -> RunConfig:
    """Defaults, then YAML, then flags given on the command line."""
    merged = {k: v for k, v in {**yaml_values, **cli_values}.items() if k in config_keys()}
    cfg = RunConfig(**merged)
    for f in fields(RunConfig):
        value = getattr(cfg, f.name)
        if f.type in ("int", "int | None") and value is not None and not isinstance(value, int):
            raise FrostlineError(f"{f.name} must be an integer, got {value!r}")
        if f.type in ("float", "float | None") and value is not None and not isinstance(value, int | float):
            raise FrostlineError(f"{f.name} must be a number, got {value!r}")
    return cfg
