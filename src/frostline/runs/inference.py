"""Use a finished run: predict on new inputs (raw texts, PIL images, tensors, files), and evaluate on labelled data.

The model is rebuilt from what the run recorded (``minilm``, a Hugging Face folder or hub id, the pooling) and its
best weights are loaded from ``model.safetensors``. A model built by your own ``module:function`` is rebuilt only
from ``--model`` / ``model=`` given again: frostline never imports code that a run folder names.
"""

from __future__ import annotations

import csv
import io
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core import atomic
from ..core.errors import FrostlineError
from ..core.task import Task
from ..data import Dataset, image_tensor
from ..data.batching import Encoded
from ..data.normalise import IMAGENET_MEAN, IMAGENET_STD, ImageInputs
from ..data.unlabelled import read_unlabelled
from ..evaluation.threshold import predict_at
from ..models.efficientnet import BUNDLED_CNNS
from ..models.heads import replace_head
from ..models.load import BUNDLED_TEXT, load_model
from ..training.adapters import AdapterSpec, Attached, attach, check_paths
from ..training.prediction import predict as predict_encoded
from .config import RunConfig, check_types, config_keys
from .folder import RunFolder
from .identity import state_hash
from .preparation import Status, no_status
from .sources import text_length

log = logging.getLogger("frostline")

#: File suffixes that make a lone string look like a file name rather than a text.
DATA_SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".json", ".ndjson")


@dataclass
class PredictionSet:
    """Predictions for a list of inputs.

    Attributes:
        names: One display name per input (the text, the image file, or ``#i``).
        probs: Class probabilities, ``(n, classes)``.
        label_names: Class names, index order.
        threshold: The run's operating threshold ``{"positive", "threshold", "objective"}``, if it chose one.
    """

    names: list[str]
    probs: np.ndarray
    label_names: list[str]
    threshold: dict[str, Any] | None = None
    task: str = "classification"
    label_thresholds: list[float] | None = None

    @property
    def predicted(self) -> list[Any]:
        """The most likely class of each input; the value (regression); the labels joined by ``|`` at the run's
        per-label thresholds (multilabel)."""
        if self.task == "regression":
            return [float(v) for v in self.probs.reshape(len(self.probs), -1)[:, 0]]
        if self.task == "multilabel":
            t = np.asarray(self.label_thresholds if self.label_thresholds is not None else 0.5)
            return ["|".join(n for n, on in zip(self.label_names, row >= t, strict=True) if on) for row in self.probs]
        return [self.label_names[i] for i in self.probs.argmax(axis=1)]

    @property
    def predicted_at_threshold(self) -> list[str] | None:
        """The class at the run's chosen threshold (``None`` when the run chose none)."""
        if not self.threshold:
            return None
        pos = self.label_names.index(self.threshold["positive"])
        return [self.label_names[i] for i in predict_at(self.probs, pos, self.threshold["threshold"])]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per input: ``input``, ``predicted``, ``p_<class>`` ... (``predicted_at_threshold``)."""
        at = self.predicted_at_threshold
        out = []
        for i, (name, label) in enumerate(zip(self.names, self.predicted, strict=True)):
            row: dict[str, Any] = {"input": name, "predicted": label}
            if self.task != "regression":
                row.update({f"p_{c}": float(p) for c, p in zip(self.label_names, self.probs[i], strict=True)})
            if at is not None:
                row["predicted_at_threshold"] = at[i]
            out.append(row)
        return out

    def to_csv(self) -> str:
        """The rows as CSV text (probabilities written exactly)."""
        buf = io.StringIO()
        rows = self.rows()
        fields = ["input", "predicted", *([] if self.task == "regression" else [f"p_{c}" for c in self.label_names])]
        fields += ["predicted_at_threshold"] if self.threshold else []
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
        return buf.getvalue()

    def write_csv(self, path: str | Path) -> Path:
        """Write the CSV atomically; an existing file is never replaced."""
        target = Path(path)
        if target.exists():
            raise FrostlineError(f"{target} already exists; frostline does not overwrite results: choose another "
                                 "--out")
        return atomic.write_text(target, self.to_csv())


def rebuild_spec(spec: str, info: dict[str, Any], run: Path) -> str:
    """The model spec to rebuild a run's model from its record, never importing code a run folder names."""
    if spec in BUNDLED_TEXT or spec in BUNDLED_CNNS:
        return spec
    if spec.startswith("hf:"):
        source = info.get("source") or spec[3:]
        return f"hf:{source}" if Path(source).is_dir() or not Path(spec[3:]).is_dir() else spec
    file = info.get("source_file")
    raise FrostlineError(
        f"run {run} was built by a function ({spec!r}); frostline never imports code named by a run folder. Pass "
        "the --model you trained it with, e.g. --model path/to/your_models.py:function (library: model=...)"
        + (f"; the run records {file!r}: pass it only if that file is your own code" if file else "")
    )


def recorded_inputs(state: dict[str, Any], cfg: RunConfig) -> ImageInputs:
    """The image convention a run applied (size and normalisation), as recorded; runs from before conventions were
    recorded used ``--image-size`` (default 64) and ImageNet's normalisation."""
    found = ImageInputs.from_dict((state.get("model") or {}).get("inputs"))
    return found or ImageInputs(cfg.image_size or 64, IMAGENET_MEAN, IMAGENET_STD, "ImageNet (run recorded before "
                                "input conventions were)")


@dataclass
class RunModel:
    """A finished run's best model, ready to predict (``load_run``)."""

    model: nn.Module
    tokenizer: Any
    label_names: list[str]
    config: RunConfig
    path: Path
    state: dict[str, Any]
    adapters: Attached | None = None  # PEFT adapters in the model (export merges them)

    @property
    def max_length(self) -> int:
        """Tokens per text, as the run was trained with (runs before 13/18 recorded no ``max_seq_length``: 128)."""
        own = (self.state.get("model") or {}).get("max_seq_length")
        return text_length(self.config.max_length, self.model, self.tokenizer, own=own)

    @property
    def inputs(self) -> ImageInputs:
        """How the run prepared pictures: size and normalisation (applied again to whatever it predicts)."""
        return recorded_inputs(self.state, self.config)

    @property
    def task(self) -> Task:
        """What the run predicts (runs from before tasks were recorded: classification)."""
        return Task.from_dict(self.state.get("task"))

    @property
    def label_thresholds(self) -> list[float] | None:
        """A multi-label run's per-label thresholds, chosen on validation."""
        th = (self.state.get("threshold") or {}).get("labels")
        return [float(th[n]) for n in self.label_names] if th else None

    def unlabelled(self, ds: Dataset) -> Dataset:
        """``ds`` (inputs without targets) shaped as this run's task: placeholder targets of the right kind."""
        n, kind = len(ds), self.task.kind
        targets = (np.zeros((n, len(self.label_names)), np.uint8) if kind == "multilabel"
                   else np.zeros(n) if kind == "regression" else np.zeros(n, np.int64))
        return replace(ds, labels=targets, label_names=self.label_names, task=kind)

    def result(self, names: list[str], probs: np.ndarray) -> PredictionSet:
        """The predictions of ``names`` as this run reads them."""
        return PredictionSet(names, probs, self.label_names, self.threshold, self.task.kind, self.label_thresholds)

    @property
    def threshold(self) -> dict[str, Any] | None:
        """The operating threshold the run chose on validation, if any."""
        th = self.state.get("threshold") or {}
        if th.get("chosen") is None:
            return None
        return {"positive": th["positive"], "threshold": th["chosen"], "objective": th.get("objective")}

    def _dataset(self, inputs: Any) -> tuple[Dataset, list[str]]:
        labels = self.label_names
        if isinstance(inputs, Path) or (isinstance(inputs, str) and self.tokenizer is None and Path(inputs).exists()):
            ds, names = read_unlabelled(inputs, self.config.text_column, image_size=self.inputs.size)
            for note in ds.notes:
                log.warning("note: %s", note)
            return replace(ds, label_names=labels), names
        if isinstance(inputs, str):
            if Path(inputs).suffix.lower() in DATA_SUFFIXES and not any(ch.isspace() for ch in inputs):
                raise FrostlineError(f"{inputs!r} looks like a file name: pass Path({inputs!r}) to read the file, or "
                                     f"[{inputs!r}] to classify that string as a text")
            inputs = [inputs]
        if isinstance(inputs, torch.Tensor):
            x = inputs if inputs.dim() > 1 else inputs.unsqueeze(0)
            kind = "image" if x.dtype == torch.uint8 and x.dim() == 4 else "tensor"
            return Dataset(kind, x, np.zeros(len(x), np.int64), labels, np.arange(len(x))), \
                [f"#{i}" for i in range(len(x))]
        if hasattr(inputs, "convert") and hasattr(inputs, "resize"):  # one PIL image
            inputs = [inputs]
        try:
            items = list(inputs)
        except TypeError:
            raise FrostlineError(f"cannot predict on a {type(inputs).__name__}; expected texts, PIL images, a tensor "
                                 "(N, C, H, W), or a file / image folder path") from None
        if not items:
            raise FrostlineError("nothing to predict: the input list is empty")
        if all(isinstance(t, str) for t in items) and self.tokenizer is not None:
            return Dataset("text", items, np.zeros(len(items), np.int64), labels, np.arange(len(items))), items
        if all(hasattr(t, "convert") and hasattr(t, "resize") for t in items):  # PIL images
            x = torch.stack([image_tensor(t, self.inputs.size) for t in items])
            return Dataset("image", x, np.zeros(len(x), np.int64), labels, np.arange(len(x))), \
                [f"#{i}" for i in range(len(x))]
        if all(isinstance(t, str) for t in items):
            raise FrostlineError("this run's model takes images, not text: pass image files, PIL images or tensors")
        kinds = sorted({type(t).__name__ for t in items})
        raise FrostlineError(f"cannot predict on inputs of type {', '.join(kinds)}; expected texts, PIL images, a "
                             "tensor (N, C, H, W), or a file / image folder path")

    def predict(self, inputs: Any, batch_size: int = 128) -> PredictionSet:
        """Predict classes of raw texts, PIL images, a tensor batch, or a ``pathlib.Path`` to a data file or image
        folder (a string is a text for a text model: a lone string that looks like a file name is an error)."""
        check_batch_size(batch_size)
        ds, names = self._dataset(inputs)
        enc = Encoded(self.unlabelled(ds), self.tokenizer, self.max_length, image_inputs=self.inputs)
        pred = predict_encoded(self.model, enc, batch_size, task=self.task)
        return self.result(names, pred.probs)


def check_batch_size(batch_size: Any) -> int:
    """``--batch-size`` of predict / evaluate: an integer >= 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise FrostlineError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    return batch_size


def run_state(path: str | Path) -> tuple[dict[str, Any], RunConfig]:
    """A finished run's state.json and configuration (nothing loaded yet; a damaged state is a clear error)."""
    run = RunFolder(path)
    if not run.exists():
        raise FrostlineError(f"{path} is not a frostline run folder (no state.json)")
    state = run.state()
    if state.get("complete") and not run.file("model.safetensors").is_file():
        raise FrostlineError(f"{path}/model.safetensors is missing from this finished run; restore it, or retrain in "
                             "a new --out")
    if not state.get("complete") or not run.file("model.safetensors").is_file():
        raise FrostlineError(f"{path} holds an unfinished run (no final model.safetensors); finish it by running the "
                             "same train command again")
    config, labels = state.get("config"), state.get("label_names")
    if not isinstance(config, dict) or not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise FrostlineError(f"{path}/state.json is damaged: it lacks the run's configuration or label names")
    unknown = sorted(set(config) - set(config_keys()))
    if unknown:
        raise FrostlineError(f"{path}/state.json has unknown configuration keys {unknown[:3]} (edited by hand, or "
                             "made by another frostline version)")
    try:
        cfg = RunConfig(**{**config, "out": str(path)})
        check_types(cfg)
    except (TypeError, FrostlineError) as exc:
        raise FrostlineError(f"{path}/state.json is damaged: {exc}") from None
    return state, cfg


def load_run(path: str | Path, model: str | None = None, status: Status = no_status) -> RunModel:
    """Load a finished run's best model for prediction or evaluation.

    The base model is rebuilt from its spec (seeded as in training) and must hash to the value the run recorded;
    the run's changed tensors are then applied. Nothing a run folder names is imported or executed.

    Args:
        path: The run folder.
        model: Model spec to rebuild it from, for runs built by ``module:function`` (never read from the folder).
        status: Status-line context for the slow steps.
    """
    run = RunFolder(path)
    state, cfg = run_state(path)
    info = state.get("model") or {}
    spec = model or rebuild_spec(cfg.model, info, Path(path))
    recorded_pooling = info.get("pooling") or {}
    # a run recorded with its pipeline rebuilds it as chosen then; an older one had its pooling alone
    pooling = cfg.pooling if "pipeline" in recorded_pooling else recorded_pooling.get("mode") or cfg.pooling
    labels = list(state["label_names"])
    with status(f"loading the run's model ({spec})"):
        torch.manual_seed(cfg.seed)  # as in training: a base built with random weights comes out the same
        loaded = load_model(spec, pooling=pooling)
        if "pipeline" in recorded_pooling and loaded.pooling is not None and \
                loaded.pooling.pipeline != recorded_pooling["pipeline"]:
            raise FrostlineError(f"model {spec!r} now pools as {' -> '.join(loaded.pooling.pipeline)}, but run {path} "
                                 f"was trained on {' -> '.join(recorded_pooling['pipeline'])} (its modules.json "
                                 "changed?); restore the model folder the run was trained from")
        recorded = (state.get("base") or {}).get("sha256")
        if recorded and state_hash(loaded.model) != recorded:
            raise FrostlineError(
                f"model {spec!r} is not the base model run {path} was trained from (its weights hash differs); the "
                "run stores only the tensors training changed, so it needs the same base: restore it, or pass the "
                "right one with --model")
        task = Task.from_dict(state.get("task"))
        replace_head(loaded.model, task.outputs(labels), labels=None if task.kind == "regression" else labels,
                     dropout=(state.get("head") or {}).get("dropout"), problem_type=task.problem_type)
        attached = None
        if state.get("adapters") is not None:  # the PEFT adapters the run trained, rebuilt from their record
            spec = AdapterSpec.from_dict(state["adapters"], f"{path}/state.json")
            check_paths(loaded.model, spec, f"run {path}")
            attached = attach(loaded.model, spec, cfg.seed)
        run.load_weights(loaded.model, state)
    loaded.model.eval()
    return RunModel(loaded.model, loaded.tokenizer, labels, cfg, Path(path), state, attached)


def predict_file(checkpoint: str | Path, data: str, out: str | None = None, text_column: str | None = None,
                 model: str | None = None, batch_size: int = 128, status: Status = no_status,
                 delimiter: str | None = None) -> PredictionSet:
    """``frostline predict``: predictions for every input of ``data``; written to ``out`` (``-``: stdout). A table of
    several columns is read at ``text_column``, else at the run's own text column; ``delimiter``: its separator
    (default: the run's)."""
    check_batch_size(batch_size)
    if out is not None and out != "-" and Path(out).exists():
        raise FrostlineError(f"{out} already exists; frostline does not overwrite results: choose another --out")
    state, cfg = run_state(checkpoint)  # the data is read before the model loads: a bad column fails at once
    with status(f"reading {data}"):
        ds, names = read_unlabelled(data, text_column, image_size=recorded_inputs(state, cfg).size,
                                    delimiter=delimiter if delimiter is not None else cfg.delimiter,
                                    recorded=cfg.text_column or "text")
    for note in ds.notes:
        print(f"note: {note}", file=sys.stderr)
    runm = load_run(checkpoint, model, status)
    if ds.kind == "text" and runm.tokenizer is None:
        raise FrostlineError(f"{data} holds text but the run's model takes images")
    if ds.kind == "image" and runm.tokenizer is not None:
        raise FrostlineError(f"{data} is an image folder but the run's model is a text model")
    ds = runm.unlabelled(ds)
    enc = Encoded(ds, runm.tokenizer, runm.max_length, image_inputs=runm.inputs)
    if enc.truncated:
        print(f"note: {enc.truncated} of {len(ds)} texts were cut to {runm.max_length} tokens, as in training",
              file=sys.stderr)
    with status(f"predicting {len(ds)} samples"):
        pred = predict_encoded(runm.model, enc, batch_size, task=runm.task)
    result = runm.result(names, pred.probs)
    if out == "-":
        sys.stdout.write(result.to_csv())
    elif out is not None:
        result.write_csv(out)
    return result
