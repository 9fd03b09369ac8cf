"""The run folder: what a run leaves behind, written atomically, what an interrupted run resumes from, and which
folders a command may write into.

=====================  =====================================================================================
``state.json``         written first: the run's identity (configuration, content hash of each data file, base
                       model hash); at the end ``complete`` with the SHA-256 of each result file
``config.yaml``        the full configuration of the run
``checkpoints/``       one atomic folder per finished epoch (:mod:`frostline.runs.checkpoint`), removed at the end
``model.safetensors``  the best epoch's tensors that training changed (new head included); the rest is the base
                       model, rebuilt from its spec and checked against the recorded hash
``metrics.json``       per-epoch history, final test metrics, parameter counts, wall time (strict JSON)
``predictions.csv``    one row per test sample: index, true label, predicted label, one probability per class
``report.html``        the report with plots
``train.log``          one line per event
=====================  =====================================================================================
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..core import atomic
from ..core.errors import FrostlineError
from ..evaluation.predictions import Predictions
from ..evaluation.threshold import predict_at
from .identity import apply_tensors, check_same_run, file_hash

if TYPE_CHECKING:
    from .config import RunConfig

METRICS_SCHEMA = "frostline.metrics/1"
STATE_SCHEMA = "frostline.state/3"  # /3: with ``state_sha256``; /1 and /2 are read without it
#: Files a run folder may hold (anything else in ``--out`` belongs to someone else).
RUN_FILES = {"state.json", "config.yaml", "train.log", "model.safetensors", "metrics.json", "predictions.csv",
             "validation.csv", "report.html", "checkpoints", "last.safetensors", "optimizer.pt", "tracking.json",
             "tensorboard", "logs"}
RESULT_FILES = ("model.safetensors", "metrics.json", "predictions.csv", "validation.csv", "report.html")


def foreign_entries(folder: Path, allowed: set[str]) -> list[str]:
    """Entries of ``folder`` that are neither in ``allowed`` nor frostline's temporary files."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in allowed and not atomic.is_temp(p))


def check_out(path: str | Path, kind: str, allowed: set[str] | None = None) -> Path:
    """Refuse an ``--out`` that is a file or holds files this command did not write.

    Args:
        path: The folder to write.
        kind: The command, for the message (``train``, ``evaluate``, ``compare``).
        allowed: Names the folder may already hold (``None``: it must be new or empty).
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise FrostlineError(f"--out {out} is a file, not a folder; choose a new folder for the {kind} results")
    check_no_links(out)
    if allowed is None:  # new or empty (the temporary file of an interrupted first state.json aside)
        foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith(".state.json.")) \
            if out.is_dir() else []
    else:
        foreign = foreign_entries(out, allowed)
    if foreign:
        what = ("another run's results" if set(foreign) & RUN_FILES else "earlier importance scores"
                if set(foreign) & {"importance.json", "importance.png"} else "files frostline did not write")
        raise FrostlineError(f"--out {out} already holds {what} ({', '.join(foreign[:5])}"
                             f"{', ...' if len(foreign) > 5 else ''}); frostline does not write over them: choose "
                             f"a new folder for the {kind} results")
    return out


def check_no_links(folder: Path) -> None:
    """frostline never writes through a symbolic link inside a folder it writes (a ``train.log`` linked to a file
    elsewhere would have the run's lines appended there): one error naming the link and its target."""
    if not folder.is_dir():
        return
    for p in sorted(folder.iterdir()):
        if p.is_symlink():
            raise FrostlineError(f"{p} is a symbolic link (to {os.readlink(p)}); frostline never writes through a link "
                                 "in a folder it writes: remove the link, or choose another --out")


def state_checksum(state: dict[str, Any]) -> str:
    """SHA-256 of a state's content (every key but the checksum itself, as canonical strict JSON)."""
    body = {k: v for k, v in state.items() if k != "state_sha256"}
    return hashlib.sha256(json.dumps(json.loads(atomic.strict_json(body)), sort_keys=True).encode()).hexdigest()


def check_run_out(path: str | Path) -> Path:
    """``train``'s ``--out``: new, empty, or a frostline run (state.json is the first file a run writes, so a
    folder without one holds nobody's run but the user's files, which are never written over or deleted)."""
    out = Path(path)
    return check_out(out, "train", RUN_FILES if (out / "state.json").is_file() else None)


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
        """The parsed state.json (a clear error when it is missing, damaged or not a frostline state)."""
        try:
            state = json.loads(self.file("state.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FrostlineError(f"{self.path}: cannot read state.json ({exc}); is this a frostline run folder?"
                                 ) from None
        if not isinstance(state, dict) or not str(state.get("schema", "")).startswith("frostline.state/"):
            raise FrostlineError(f"{self.path}/state.json is not a frostline run state (no frostline.state schema)")
        if state.get("schema") not in ("frostline.state/1", "frostline.state/2") \
                and state.get("state_sha256") != state_checksum(state):
            raise FrostlineError(f"{self.path}/state.json is damaged or was edited (its checksum does not match its "
                                 "content); frostline will not guess what the run was: restore it or retrain")
        return state

    def log(self, line: str) -> None:
        """Append a timestamped line to train.log."""
        if not atomic.writes():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.file("train.log")
        try:  # O_NOFOLLOW: a link put there during the run is refused too, never written through
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                         atomic.umask_mode())
        except OSError as exc:
            if path.is_symlink():
                raise FrostlineError(f"{path} is a symbolic link (to {os.readlink(path)}); frostline never writes "
                                     "through a link in a run folder: remove it") from None
            raise exc
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def write_config(self, config: dict[str, Any]) -> None:
        """config.yaml."""
        atomic.write_text(self.file("config.yaml"), yaml.safe_dump(config, sort_keys=False))

    def write_state(self, state: dict[str, Any]) -> None:
        """state.json."""
        label = f"state.json({'complete' if state.get('complete') else 'begin'})"
        full = {"schema": STATE_SCHEMA, **state}
        full["state_sha256"] = state_checksum(full)
        atomic.write_json(self.file("state.json"), full, label)

    def save_model(self, tensors: dict[str, torch.Tensor], base_hash: str | None) -> Path:
        """model.safetensors: the best epoch's changed tensors, tagged with the base model they apply to."""
        # one metadata key: safetensors writes several in a random order, and the file must be bit-reproducible
        meta = {"frostline": json.dumps({"kind": "changed-tensors", "base_sha256": base_hash})}
        return atomic.save_tensors(self.file("model.safetensors"), tensors, meta)

    def verify_results(self, state: dict[str, Any], names: tuple[str, ...] = RESULT_FILES) -> None:
        """Each result file matches the SHA-256 recorded when the run finished (a clear error otherwise)."""
        recorded = state.get("files") or {}
        for name in names:
            path = self.file(name)
            if name not in recorded:
                continue  # a run made before hashes were recorded
            if not path.is_file():
                raise FrostlineError(f"{path} is missing; the run folder is incomplete (retrain it in a new folder)")
            if file_hash(path) != recorded[name]:
                raise FrostlineError(f"{path} is damaged or was changed after the run finished (its SHA-256 differs "
                                     "from the one recorded in state.json); restore it or retrain")

    def load_weights(self, model: torch.nn.Module, state: dict[str, Any]) -> None:
        """Load the run's weights into ``model`` (the base model with the run's head): verified, changed tensors
        over the base, or a full state dict for runs made before runs stored only changes."""
        path = self.file("model.safetensors")
        if not path.is_file():
            raise FrostlineError(f"{self.path}: no model.safetensors; the run has no final weights")
        self.verify_results(state, ("model.safetensors",))
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise FrostlineError(f"{path} is not a readable safetensors file ({exc})") from None
        if (state.get("base") or {}).get("sha256"):
            apply_tensors(model, tensors, str(path))
            return
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        if missing or unexpected:
            raise FrostlineError(f"{path} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")

    def write_predictions(self, pred: Predictions, ids: np.ndarray, label_names: list[str],
                          threshold: tuple[int, float] | None = None) -> Path:
        """predictions.csv: index, true, predicted, then per task: one probability column per class (and
        ``predicted_at_threshold`` when an operating threshold ``(positive class, t)`` was chosen); nothing more for a
        regression (values in the target's units); one probability column per label for multilabel (true and
        predicted are the labels joined by ``|``, at the per-label thresholds)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if pred.kind == "regression":
            writer.writerow(["index", "true", "predicted"])
            for pos, y, yhat in zip(pred.positions, pred.labels, pred.preds, strict=True):
                writer.writerow([int(ids[pos]), repr(float(y)), repr(float(yhat))])
            return atomic.write_text(self.file("predictions.csv"), buf.getvalue())
        if pred.kind == "multilabel":
            def joined(row: np.ndarray) -> str:
                return "|".join(n for n, on in zip(label_names, row, strict=True) if on)

            writer.writerow(["index", "true", "predicted", *[f"p_{n}" for n in label_names]])
            for pos, y, yhat, probs in zip(pred.positions, pred.labels, pred.preds, pred.probs, strict=True):
                writer.writerow([int(ids[pos]), joined(y), joined(yhat), *[repr(float(p)) for p in probs]])
            return atomic.write_text(self.file("predictions.csv"), buf.getvalue())
        extra = ["predicted_at_threshold"] if threshold else []
        writer.writerow(["index", "true", "predicted", *[f"p_{n}" for n in label_names], *extra])
        at = predict_at(pred.probs, *threshold) if threshold else None
        for i, (pos, y, yhat, probs) in enumerate(zip(pred.positions, pred.labels, pred.preds, pred.probs,
                                                      strict=True)):
            row = [int(ids[pos]), label_names[y], label_names[yhat], *[repr(float(p)) for p in probs]]
            writer.writerow(row + ([label_names[at[i]]] if at is not None else []))
        return atomic.write_text(self.file("predictions.csv"), buf.getvalue())

    def write_validation(self, pred: Predictions, ids: np.ndarray) -> Path:
        """validation.csv: index and loss of each validation sample at the kept epoch (a comparison's strategies are
        compared on these, paired sample by sample, to recommend one without looking at test)."""
        lines = ["index,loss", *(f"{int(ids[pos])},{float(loss)!r}" for pos, loss in
                                 zip(pred.positions, pred.losses, strict=True))]
        return atomic.write_text(self.file("validation.csv"), "\n".join(lines) + "\n")

    def validation_losses(self) -> dict[int, float] | None:
        """validation.csv as {index: loss} (None for a run made before it was written)."""
        path = self.file("validation.csv")
        if not path.is_file():
            return None
        rows = path.read_text(encoding="utf-8").splitlines()[1:]
        return {int(i): float(v) for i, v in (r.split(",") for r in rows if r)}

    def write_metrics(self, metrics: dict[str, Any]) -> Path:
        """metrics.json."""
        return atomic.write_json(self.file("metrics.json"), {"schema": METRICS_SCHEMA, **metrics})

    def metrics(self) -> dict[str, Any]:
        """The parsed metrics.json."""
        try:
            return json.loads(self.file("metrics.json").read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FrostlineError(f"{self.path}: cannot read metrics.json ({exc})") from None

    def hashes(self, names: tuple[str, ...] = RESULT_FILES) -> dict[str, str]:
        """SHA-256 of each result file present."""
        return {n: file_hash(self.file(n)) for n in names if self.file(n).is_file()}


def default_out(base: str, cfg: RunConfig) -> str:
    """Where a run goes when no ``--out`` is given: ``base`` if it is new or holds this same run (resumed or reused),
    else the first of ``base-2``, ``base-3``... that is (a different run, or a user's files, stay as they are)."""
    for i in range(1, 10_000):
        path = Path(base if i == 1 else f"{base}-{i}")
        try:
            check_run_out(path)
            run = RunFolder(path)
            if run.exists():
                check_same_run(path, run.state(), cfg)
            return str(path)
        except FrostlineError:
            continue
    raise FrostlineError(f"no free folder from {base} to {base}-9999: give one with --out")
