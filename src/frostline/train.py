"""Whole runs: load model and data, replace the head, fine-tune with a strategy, write the run folder.

``train`` runs one strategy, ``compare`` several on the same split and starting weights (plus the base model
before fine-tuning), ``evaluate`` scores a finished run's checkpoint on a data file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .audit import audit_run
from .augment import parse_augment
from .batching import Encoded
from .config import RunConfig
from .data import Dataset, Splits, limit, read_image_folder, read_table, split
from .engine import EpochRecord, Predictions, fit, predict
from .errors import FrostlineError
from .freeze import trainable_state
from .heads import replace_head
from .html_report import write_compare_report, write_run_report
from .leakage import LeakageReport, check_splits, dedup
from .metrics import classification_metrics
from .models import LoadedModel, load_model
from .runs import RunFolder
from .schedule import PlanOptimizer
from .strategies import model_parts, parse_strategy

Progress = Callable[[str, int], Callable[[float], None]]


@dataclass
class Prepared:
    """A model with its new head, and the data encoded for it, shared by the runs of a comparison."""

    loaded: LoadedModel
    splits: Splits
    train: Encoded
    val: Encoded
    test: Encoded
    initial_state: dict[str, torch.Tensor] = field(repr=False, default_factory=dict)
    leakage: LeakageReport | None = None
    dedup_dropped: int = 0
    base: dict[str, Any] | None = None

    def reset(self) -> None:
        """Put the starting weights back (every strategy starts from the same model and head)."""
        self.loaded.model.load_state_dict(self.initial_state)

    def base_metrics(self, batch_size: int = 128) -> dict[str, Any]:
        """The model before fine-tuning (pretrained body, fresh head) on validation and test, computed once."""
        if self.base is None:
            self.reset()
            labels, model = self.splits.label_names, self.loaded.model
            self.base = {"val": split_metrics(predict(model, self.val, batch_size), labels),
                         "test": split_metrics(predict(model, self.test, batch_size), labels),
                         "params": {"total": sum(p.numel() for p in model.parameters()), "trainable": 0}}
        return self.base


@dataclass
class RunResult:
    """A finished run."""

    strategy: str
    out: Path
    metrics: dict[str, Any]
    resumed_from: int | None = None
    reused: bool = False


def read_data(path: str, cfg: RunConfig, label_names: list[str] | None = None) -> Dataset:
    """Read a data file (text table) or folder (images) as ``cfg`` says."""
    p = Path(path)
    if p.is_dir():
        return read_image_folder(p, cfg.image_size, label_names)
    return read_table(p, cfg.text_column, cfg.label_column, cfg.header, label_names)


def prepare(cfg: RunConfig, loaded: LoadedModel | None = None) -> Prepared:
    """Load the model and data, split, replace the head, and encode every split."""
    if cfg.data is None:
        raise FrostlineError("no data given: pass --data FILE (CSV/TSV/JSONL) or an image folder")
    full = read_data(cfg.data, cfg)
    dropped = 0
    if cfg.dedup:
        full, dropped = dedup(full)
    full = limit(full, cfg.max_samples, cfg.seed)
    names = full.label_names
    val = read_data(cfg.val_data, cfg, names) if cfg.val_data else None
    test = read_data(cfg.test_data, cfg, names) if cfg.test_data else None
    splits = split(full, cfg.val_frac, cfg.test_frac, cfg.seed, val, test)
    torch.manual_seed(cfg.seed)  # the new head's initial weights are part of the run's identity
    loaded = loaded or load_model(cfg.model)
    if full.kind == "text" and loaded.tokenizer is None:
        raise FrostlineError(f"{cfg.data} is text but model {cfg.model!r} has no tokenizer; use a text model")
    torch.manual_seed(cfg.seed)
    loaded.head = replace_head(loaded.model, len(names), labels=names, dropout=cfg.dropout)
    augment = parse_augment(cfg.augment)
    enc = [Encoded(s, loaded.tokenizer, cfg.max_length, augment if s is splits.train else None)
           for s in (splits.train, splits.val, splits.test)]
    state = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
    leak = check_splits(splits, source=full if val is None and test is None else None)
    return Prepared(loaded, splits, *enc, initial_state=state, leakage=leak, dedup_dropped=dropped)


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _data_summary(splits: Splits) -> dict[str, Any]:
    return {
        "source": splits.train.source,
        "sizes": splits.sizes(),
        "class_counts": {n: s.class_counts() for n, s in
                         (("train", splits.train), ("val", splits.val), ("test", splits.test))},
        "skipped_rows": splits.train.skipped,
    }


def split_metrics(pred: Predictions, labels: list[str]) -> dict[str, Any]:
    """Point metrics of one prediction pass."""
    return classification_metrics(pred.labels, pred.preds, labels, pred.loss)


def train(cfg: RunConfig, prepared: Prepared | None = None, progress: Progress | None = None,
          echo: Callable[[str], None] = print) -> RunResult:
    """Fine-tune with ``cfg.strategy`` and write the run folder ``cfg.out``.

    An unfinished run in ``cfg.out`` with the same configuration is resumed from its last finished epoch; a
    finished one is reported, not retrained; a different run there is an error (nothing is overwritten).
    """
    run = RunFolder(cfg.out)
    if run.exists():
        state = run.state()
        diff = _differences(state.get("config", {}), cfg.identity())
        if diff:
            raise FrostlineError(f"{run.path} holds a different run (differs in: {', '.join(diff)}); "
                                 "choose another --out or delete that folder")
        if state.get("complete") and run.file("metrics.json").is_file():
            echo(f"{run.path}: run already complete, reusing its results")
            return RunResult(cfg.strategy, run.path, run.metrics(), reused=True)
    prepared = prepared or prepare(cfg)
    base = prepared.base_metrics(cfg.eval_batch_size)
    prepared.reset()
    model, labels = prepared.loaded.model, prepared.splits.label_names
    strategy = parse_strategy(cfg.strategy, model)
    strategy.plan(0, model_parts(model), cfg.lr, cfg.head_lr)  # a bad strategy fails before any work
    run.write_config(cfg.to_dict())
    resume = run.resume_point(model)
    if resume is not None:
        echo(f"{run.path}: resuming after epoch {resume.next_epoch} of {cfg.epochs}")
        run.log(f"resume at epoch {resume.next_epoch + 1}")
    run.log(f"start strategy={strategy} model={cfg.model} data={cfg.data} sizes={prepared.splits.sizes()}")
    started = time.time()

    def on_epoch_end(record: EpochRecord, is_best: bool, popt: PlanOptimizer, step: int) -> None:
        if is_best:
            run.save_best(model)
        assert popt.optimizer is not None
        run.save_last(model, popt.optimizer)
        run.log(f"epoch {record.epoch + 1}: {record.plan}, train loss {record.train['loss']:.4f}, val loss "
                f"{record.val['loss']:.4f}, val acc {record.val['accuracy']:.4f}, {record.seconds:.1f}s"
                f"{' (best)' if is_best else ''}; {record.cache}")
        if not record.cache.startswith("cache reused") and record.cache != shown[-1]:
            echo(f"epoch {record.epoch + 1}: {record.cache}")  # once per change: built, dropped, fell back
            shown.append(record.cache)
        state_history.append(record.to_dict())
        best = min(state_history, key=lambda h: h["val"]["loss"])
        run.write_state({"complete": False, "next_epoch": record.epoch + 1, "step": step,
                         "history": state_history, "best_epoch": best["epoch"],
                         "best_val_loss": best["val"]["loss"], "label_names": labels,
                         "head": prepared.loaded.head.to_dict(), "config": cfg.identity()})

    state_history: list[dict[str, Any]] = list(resume.history) if resume else []
    shown = [""]
    # The best epoch is checkpointed to disk as it happens and loaded back from there: no copy held in memory.
    result = fit(model, prepared.train, prepared.val, strategy, replace(cfg.train_config(), restore_best=False),
                 on_epoch_end=on_epoch_end, resume=resume, progress=progress)
    run.load_weights(model)
    test_pred = predict(model, prepared.test, cfg.eval_batch_size)
    val_pred = predict(model, prepared.val, cfg.eval_batch_size)
    test = split_metrics(test_pred, labels)
    parts = model_parts(model)
    final_plan = strategy.plan(max(0, len(result.history) - 1), parts, cfg.lr, cfg.head_lr).params
    metrics = {
        "run": {"model": cfg.model, "strategy": str(strategy), "epochs": cfg.epochs, "seed": cfg.seed,
                "device": result.device, "precision": result.precision,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
                "resumed_from_epoch": resume.next_epoch if resume else None},
        "labels": labels,
        "data": _data_summary(prepared.splits),
        "head": prepared.loaded.head.to_dict(),
        "params": {"total": result.total_params, "trainable": result.trainable_params},
        "parts": [{"name": p.name, "params": sum(model.get_parameter(n).numel() for n in p.params),
                   "trainable": bool(set(p.params) & final_plan)} for p in parts],
        "history": result.history,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "seconds": {"total": round(result.seconds, 3),
                    "per_epoch": [round(h["seconds"], 3) for h in result.history]},
        "test": test,
        "base": base,
    }
    metrics["data"]["dedup_dropped"] = prepared.dedup_dropped
    audit_run(metrics, val_pred, test_pred, prepared.splits.train.labels, cfg.optimize, cfg.positive_label,
              prepared.leakage, cfg.thresholds())
    chosen = metrics["threshold"].get("chosen")
    at = (labels.index(metrics["threshold"]["positive"]), chosen["threshold"]) if chosen else None
    run.write_predictions(test_pred, prepared.splits.test.ids, labels, at)
    run.write_metrics(metrics)
    write_run_report(run.file("report.html"), metrics)
    frozen = trainable_state(model)
    run.write_state({"complete": True, "next_epoch": len(result.history), "step": 0, "history": result.history,
                     "best_epoch": result.best_epoch,
                     "best_val_loss": min(h["val"]["loss"] for h in result.history),
                     "label_names": labels, "head": prepared.loaded.head.to_dict(), "config": cfg.identity(),
                     "plan": {k: frozen[k] for k in ("trainable", "frozen", "total", "pinned", "bn")},
                     "metrics": {"test": {k: test[k] for k in ("loss", "accuracy")}}})
    for name in ("last.safetensors", "optimizer.pt"):
        run.file(name).unlink(missing_ok=True)
    run.log(f"done: test accuracy {test['accuracy']:.4f}, macro F1 {test['f1']['macro']:.4f}")
    return RunResult(str(strategy), run.path, run.metrics(), resume.next_epoch if resume else None)


@dataclass
class Comparison:
    """Results of :func:`compare`: the base model and one run per strategy."""

    base: dict[str, Any] | None
    runs: list[RunResult]
    out: Path


def compare(cfg: RunConfig, strategies: list[str], progress: Progress | None = None,
            echo: Callable[[str], None] = print) -> Comparison:
    """Run every strategy on the same split and starting weights; sub-folders of ``cfg.out`` per strategy."""
    if not strategies:
        raise FrostlineError("no strategies given, e.g. --strategies linear-probe,partial:2,full")
    out = Path(cfg.out)
    prepared = prepare(cfg)
    for s in strategies:  # fail on a bad name before hours of training
        parse_strategy(s, prepared.loaded.model).plan(0, model_parts(prepared.loaded.model), cfg.lr, cfg.head_lr)
    base = prepared.base_metrics(cfg.eval_batch_size)
    runs = []
    for s in strategies:
        sub = RunConfig(**{**cfg.to_dict(), "strategy": s, "out": str(out / _folder_name(s))})
        echo(f"== {s}")
        runs.append(train(sub, prepared, progress, echo))
    from . import atomic

    atomic.write_json(out / "compare.json", {
        "schema": "frostline.compare/1",
        "base": base,
        "runs": [{"strategy": r.strategy, "out": str(r.out), "metrics": r.metrics} for r in runs],
    })
    write_compare_report(out / "report.html", base, [(r.strategy, r.metrics) for r in runs])
    return Comparison(base, runs, out)


def _folder_name(strategy: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in strategy)


def evaluate(checkpoint: str | Path, data: str, text_column: str | None = None, label_column: str | None = None,
             header: bool | None = None, batch_size: int = 128, out: str | Path | None = None) -> dict[str, Any]:
    """Score a finished run's best checkpoint on ``data``; optionally write predictions.csv and metrics.json."""
    run = RunFolder(checkpoint)
    if not run.exists():
        raise FrostlineError(f"{checkpoint} is not a frostline run folder (no state.json)")
    state = run.state()
    cfg = RunConfig(**{**state["config"], "out": str(checkpoint)})
    cfg.text_column = text_column or cfg.text_column
    cfg.label_column = label_column or cfg.label_column
    cfg.header = cfg.header if header is None else header
    labels = state["label_names"]
    loaded = load_model(cfg.model)
    head = state["head"]
    replace_head(loaded.model, len(labels), labels=labels, dropout=head.get("dropout"))
    run.load_weights(loaded.model)
    ds = read_data(data, cfg, labels)
    enc = Encoded(ds, loaded.tokenizer, cfg.max_length)
    pred = predict(loaded.model, enc, batch_size)
    metrics = split_metrics(pred, labels)
    if out is not None:
        dest = RunFolder(out)
        dest.write_predictions(pred, ds.ids, labels)
        dest.write_metrics({"checkpoint": str(checkpoint), "data": str(data), "labels": labels, "test": metrics})
    return metrics
