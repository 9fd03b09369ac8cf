"""``--log mlflow|tensorboard|csv``: a run's options, every epoch's metrics, the final test metrics and its files
(report, metrics, predictions) where users follow their runs. Through the libraries' own APIs: MLflow's client
(``MLFLOW_TRACKING_URI`` and ``MLFLOW_EXPERIMENT_NAME`` as MLflow reads them; with nothing set, MLflow's own local
store), and Lightning Fabric's ``TensorBoardLogger`` / ``CSVLogger`` writing into the run folder (``tensorboard/``,
``logs/``). The extras are optional: ``pip install "frostline[mlflow]"`` / ``"frostline[tensorboard]"``.

A resumed run goes on logging into the same MLflow run (its id, and how many epochs were logged, are kept in
``tracking.json``): each epoch is logged once, also one that finished just before the interruption.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..core import atomic
from ..core.errors import FrostlineError, did_you_mean

LOGGERS = ("mlflow", "tensorboard", "csv")
#: what each logger needs, and the extra that installs it
NEEDS = {"mlflow": ("mlflow", "mlflow"), "tensorboard": ("tensorboard", "tensorboard"), "csv": (None, None)}


def check_loggers(kinds: list[str]) -> list[str]:
    """``--log`` values: known, installed, each once (one error naming the bad one)."""
    import importlib.util

    out = []
    for kind in kinds:
        if kind not in LOGGERS:
            raise FrostlineError(f"--log must be one of {', '.join(LOGGERS)}, got {kind!r}"
                                 f"{did_you_mean(kind, LOGGERS)}")
        module, extra = NEEDS[kind]
        if module is not None and importlib.util.find_spec(module) is None:
            raise FrostlineError(f"--log {kind} needs the {module} package: pip install \"frostline[{extra}]\"")
        if kind not in out:
            out.append(kind)
    return out


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numbers of a nested metrics dict as ``a/b/c`` -> value (finite ones only)."""
    out: dict[str, float] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "/"))
        elif isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[key] = float(v)
    return out


def epoch_metrics(record: dict[str, Any]) -> dict[str, float]:
    """One epoch's numbers: train and validation loss and scores (no per-class tables, no curves)."""
    out = {}
    for split in ("train", "val"):
        for k, v in _flat(record.get(split) or {}).items():
            if "/per_class/" not in f"/{k}/" and not k.startswith(("confusion", "curves", "support")):
                out[f"{split}/{k}"] = v
    out["seconds"] = float(record.get("seconds") or 0.0)
    out["trainable"] = float(record.get("trainable") or 0)
    return out


class Tracking:
    """The loggers of one run (nothing at all when ``kinds`` is empty)."""

    def __init__(self, kinds: list[str], run: Path, name: str) -> None:
        self.kinds, self.run, self.name = check_loggers(kinds), run, name
        self.fabric_loggers: list[Any] = []
        self.mlflow_run: str | None = None
        self.logged_epochs = 0

    def start(self, params: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Open the loggers and log the options; a resumed run reopens its MLflow run and logs the epochs of its
        ``history`` that were not logged before the interruption (``tracking.json`` counts them)."""
        if not self.kinds:
            return
        self.state_file = self.run / "tracking.json"
        saved = json.loads(self.state_file.read_text()) if self.state_file.is_file() else {}
        self.logged_epochs = int(saved.get("logged_epochs", 0))
        flat = {k: ("" if v is None else str(v)) for k, v in params.items()}
        if "tensorboard" in self.kinds:
            from lightning_fabric.loggers import TensorBoardLogger

            self.fabric_loggers.append(TensorBoardLogger(root_dir=str(self.run / "tensorboard"), name="", version=0))
        if "csv" in self.kinds:
            from lightning_fabric.loggers import CSVLogger

            self.fabric_loggers.append(CSVLogger(root_dir=str(self.run / "logs"), name="", version=0))
        for logger in self.fabric_loggers:
            if type(logger).__name__ != "CSVLogger":  # it logs no options (config.yaml holds them)
                logger.log_hyperparams(flat)
        if "mlflow" in self.kinds:
            import mlflow

            experiment = mlflow.set_experiment(_experiment_name())
            active = mlflow.start_run(run_id=saved.get("mlflow_run_id"), run_name=None if saved else self.name,
                                      experiment_id=None if saved else experiment.experiment_id)
            self.mlflow_run = active.info.run_id
            if not saved:
                mlflow.log_params({k: v[:500] for k, v in flat.items()})
            mlflow.end_run()
        self._save()
        for record in history:
            self.epoch(record)

    def _save(self) -> None:
        uri = None
        if self.mlflow_run is not None:
            import mlflow

            uri = mlflow.get_tracking_uri()
        atomic.write_json(self.state_file, {"mlflow_run_id": self.mlflow_run, "tracking_uri": uri,
                                            "logged_epochs": self.logged_epochs})

    def epoch(self, record: dict[str, Any]) -> None:
        """Log one finished epoch (``record``: the history entry; its ``epoch`` is the step)."""
        if not self.kinds or record["epoch"] <= self.logged_epochs:
            return
        values = epoch_metrics(record)
        for logger in self.fabric_loggers:
            logger.log_metrics(values, step=record["epoch"])
        if self.mlflow_run is not None:
            import mlflow

            with mlflow.start_run(run_id=self.mlflow_run):
                mlflow.log_metrics(values, step=record["epoch"])
        self.logged_epochs = record["epoch"]
        self._save()

    def finish(self, metrics: dict[str, Any], files: list[Path]) -> None:
        """Log the test metrics (``test/...``) and the run's files as artifacts; close the loggers."""
        if not self.kinds:
            return
        test = {f"test/{k}": v for k, v in _flat(metrics.get("test") or {}).items()
                if "per_class" not in k and not k.startswith(("confusion", "curves", "support"))}
        for logger in self.fabric_loggers:
            logger.log_metrics(test, step=len(metrics.get("history") or []))
            logger.finalize("success")
        if self.mlflow_run is not None:
            import mlflow

            with mlflow.start_run(run_id=self.mlflow_run):
                mlflow.log_metrics(test)
                for f in files:
                    if f.is_file():
                        mlflow.log_artifact(str(f))


def _experiment_name() -> str:
    import os

    return os.environ.get("MLFLOW_EXPERIMENT_NAME") or "frostline"
