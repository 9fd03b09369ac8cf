"""The run folder: everything a run leaves behind, written atomically, and what an interrupted run resumes from.

=====================  =====================================================================================
``config.yaml``        the full configuration of the run
``metrics.json``       per-epoch history, final test metrics, parameter counts, wall time (schema below)
``predictions.csv``    one row per test sample: index, true label, predicted label, one probability per class
``model.safetensors``  the best weights (lowest validation loss), new head included
``state.json``         epoch, plan, label names, head, metrics; ``complete`` once the run has finished
``last.safetensors``   weights after the last finished epoch (resume)
``optimizer.pt``       optimizer and RNG state after the last finished epoch (resume; tensors only)
``train.log``          one line per event
=====================  =====================================================================================
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file

from . import atomic
from .engine import Predictions, Resume
from .errors import FrostlineError
from .threshold import predict_at

METRICS_SCHEMA = "frostline.metrics/1"
STATE_SCHEMA = "frostline.state/1"


class RunFolder:
    """Reads and writes one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        """Path of a file in the folder."""
        return self.path / name

    def exists(self) -> bool:
        """True when the folder holds a run (a state.json)."""
        return self.file("state.json").is_file()

    def state(self) -> dict[str, Any]:
        """The parsed state.json."""
        try:
            return json.loads(self.file("state.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise FrostlineError(
                f"{self.path}: cannot read state.json ({exc}); is this a frostline run folder?"
            ) from None

    def log(self, line: str) -> None:
        """Append a timestamped line to train.log."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.file("train.log"), "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def write_config(self, config: dict[str, Any]) -> None:
        """config.yaml."""
        atomic.write_text(self.file("config.yaml"), yaml.safe_dump(config, sort_keys=False))

    def write_state(self, state: dict[str, Any]) -> None:
        """state.json."""
        atomic.write_json(self.file("state.json"), {"schema": STATE_SCHEMA, **state})

    def save_best(self, model: torch.nn.Module) -> None:
        """model.safetensors: the best weights so far."""
        atomic.save_tensors(self.file("model.safetensors"), model.state_dict(), {"format": "pt"})

    def save_last(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  val_losses: dict[str, np.ndarray | None] | None = None) -> None:
        """last.safetensors and optimizer.pt (with the per-sample validation losses of the previous and best
        epochs, the evidence later findings compare against), for resuming."""
        atomic.save_tensors(self.file("last.safetensors"), model.state_dict(), {"format": "pt"})
        losses = {k: torch.from_numpy(v) for k, v in (val_losses or {}).items() if v is not None}
        atomic.save_torch(self.file("optimizer.pt"), {"optimizer": optimizer.state_dict(),
                                                      "rng": torch.get_rng_state(), "val_losses": losses})

    def load_weights(self, model: torch.nn.Module, name: str = "model.safetensors") -> None:
        """Load safetensors weights into ``model`` (strict: every key must match)."""
        path = self.file(name)
        if not path.is_file():
            raise FrostlineError(f"{self.path}: no {name}; the run has no checkpoint yet")
        missing, unexpected = model.load_state_dict(load_file(str(path)), strict=False)
        if missing or unexpected:
            raise FrostlineError(f"{path} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")

    def resume_point(self, model: torch.nn.Module) -> Resume | None:
        """Load the last finished epoch into ``model`` and return where to continue (None: nothing to resume)."""
        if not self.exists():
            return None
        state = self.state()
        if state.get("complete") or state.get("next_epoch", 0) == 0 or not self.file("last.safetensors").is_file():
            return None
        self.load_weights(model, "last.safetensors")
        extra = torch.load(self.file("optimizer.pt"), weights_only=True, map_location="cpu")
        losses = {k: v.numpy() for k, v in extra.get("val_losses", {}).items()}
        return Resume(state["next_epoch"], state["step"], state["history"], state["best_epoch"],
                      state["best_val_loss"], extra["optimizer"], extra["rng"],  # the best weights stay on disk
                      prev_losses=losses.get("prev"), best_losses=losses.get("best"))

    def write_predictions(self, pred: Predictions, ids: np.ndarray, label_names: list[str],
                          threshold: tuple[int, float] | None = None) -> Path:
        """predictions.csv: index, true label, predicted label (arg-max), one probability column per class, and
        ``predicted_at_threshold`` when an operating threshold ``(positive class, t)`` was chosen."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        extra = ["predicted_at_threshold"] if threshold else []
        writer.writerow(["index", "true", "predicted", *[f"p_{n}" for n in label_names], *extra])
        at = predict_at(pred.probs, *threshold) if threshold else None
        for i, (pos, y, yhat, probs) in enumerate(zip(pred.positions, pred.labels, pred.preds, pred.probs,
                                                      strict=True)):
            row = [int(ids[pos]), label_names[y], label_names[yhat], *[repr(float(p)) for p in probs]]
            writer.writerow(row + ([label_names[at[i]]] if at is not None else []))
        return atomic.write_text(self.file("predictions.csv"), buf.getvalue())

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """metrics.json."""
        return atomic.write_json(self.file("metrics.json"), {"schema": METRICS_SCHEMA, **metrics})

    def metrics(self) -> dict[str, Any]:
        """The parsed metrics.json."""
        return json.loads(self.file("metrics.json").read_text(encoding="utf-8"))
