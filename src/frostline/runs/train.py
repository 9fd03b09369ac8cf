"""Whole runs: load model and data, replace the head, fine-tune with a strategy, write the run folder.

``train`` runs one strategy; :mod:`frostline.runs.comparison` runs several on the same split and starting weights;
:mod:`frostline.runs.inference` scores a finished run on new data and predicts on unlabelled data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..core.errors import FrostlineError
from ..core.lock import folder_lock
from ..core.task import Task
from ..data import Splits, limit, split
from ..data.augment import parse_augment
from ..data.batching import Encoded
from ..data.leakage import LeakageReport, check_splits, dedup, label_conflicts
from ..data.normalise import ImageInputs
from ..evaluation.metrics import headline
from ..evaluation.threshold import choose_positive
from ..freezing.plan import trainable_state
from ..models.heads import find_head, replace_head
from ..models.load import LoadedModel
from ..models.parts import model_parts
from ..reporting.html import write_run_report
from ..training.adapters import initial_state as adapter_initial
from ..training.distributed import Dist
from ..training.engine import fit
from ..training.head_inputs import HeadInputs
from ..training.plans import Strategy
from ..training.prediction import predict
from ..training.records import EpochRecord, NonFiniteLoss
from ..training.schedule import PlanOptimizer
from ..training.strategies import parse_strategy
from . import checkpoint
from .checkpointer import Checkpointer
from .config import RunConfig
from .folder import RunFolder, check_run_out
from .identity import check_same_base, check_same_data, check_same_run, data_hashes, state_hash
from .precision import choose_precision
from .precision import describe as describe_precision
from .results import score_run, split_metrics
from .sources import (
    check_bad_rows,
    check_forward,
    load_for_run,
    misclassified_pictures,
    model_record,
    read_data,
    read_main_data,
    run_inputs,
    start_processes,
    text_length,
)
from .tracking import Tracking

Progress = Callable[[str, int], Callable[[float], None]]
Status = Callable[[str], AbstractContextManager[Any]]


def no_status(_message: str) -> AbstractContextManager[Any]:
    """The silent status (library use)."""
    return nullcontext()


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
    data_hashes: dict[str, str] = field(default_factory=dict)
    base_hash: str | None = None
    task: Task = field(default_factory=Task)
    precision: dict[str, Any] | None = None  # what the runs train in and why (:mod:`frostline.runs.precision`)
    base_val: Any = None  # the base model's validation predictions in float32 (the precision check reuses them)
    head_inputs: HeadInputs | None = field(default=None, repr=False)  # shared by the scoring passes of this data
    inputs: ImageInputs | None = None  # images: the convention applied (the run's size, the model's normalisation)
    dropped: dict[str, Any] = field(default_factory=dict)  # per data option: rows left out, why, and the warning line

    def reset(self) -> None:
        """Put the starting weights back (every strategy starts from the same model and head)."""
        self.loaded.model.load_state_dict(self.initial_state)

    def base_metrics(self, batch_size: int = 128, status: Status = no_status) -> dict[str, Any]:
        """The model before fine-tuning (pretrained body, fresh head) on validation and test, computed once."""
        if self.base is None:
            self.reset()
            labels, model = self.splits.label_names, self.loaded.model
            with status(f"scoring the base model on {len(self.val) + len(self.test)} validation and test samples"):
                reuse = self.head_inputs
                self.base_val = predict(model, self.val, batch_size, task=self.task, reuse=reuse)
                self.base = {"val": split_metrics(self.base_val, labels, self.task),
                             "test": split_metrics(predict(model, self.test, batch_size, task=self.task,
                                                           reuse=reuse), labels, self.task),
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


def prepare(cfg: RunConfig, loaded: LoadedModel | None = None, status: Status = no_status,
            echo: Callable[[str], None] = print, strategies: list[str] | None = None) -> Prepared:
    """Load the model and data, split, replace the head, and encode every split.

    Options are checked first; ``strategies`` (default ``[cfg.strategy]``) are resolved against the model as soon
    as it is loaded (``partial:9`` on a 6-block model fails before tokenising or scoring anything).
    """
    if cfg.data is None:
        raise FrostlineError("no data given: pass --data FILE (CSV/TSV/JSONL) or an image folder")
    cfg.validate()
    if loaded is None and Path(cfg.data).is_dir():  # pictures are read at the model's input size
        loaded = load_for_run(cfg, status, echo)
    inputs = run_inputs(loaded, cfg) if loaded is not None else None
    size = inputs.size if inputs else None
    with status(f"reading {cfg.data}"):
        full, given = read_main_data(cfg, size)  # given: a datasets folder's own validation / test splits
    names = full.label_names
    val = read_data(cfg.val_data, cfg, names, full.task, size) if cfg.val_data else given.get("val")
    test = read_data(cfg.test_data, cfg, names, full.task, size) if cfg.test_data else given.get("test")
    bad_rows = check_bad_rows(cfg, {"data": full, "val_data": val, "test_data": test}, echo)  # as read
    dropped, conflicts = 0, None
    if cfg.dedup:
        conflicts = label_conflicts(full)  # dedup keeps the first label: say which conflicted
        full, dropped = dedup(full)
        if dropped:
            echo(f"note: --dedup: dropped {dropped} repeated samples (the first copy of each is kept) before splitting")
    if full.task_note:
        echo(f"note: task: {full.task_note}")
    if cfg.max_samples is not None and cfg.max_samples > len(full):
        what = "training samples" if val is not None or test is not None else "samples"
        echo(f"note: --limit {cfg.max_samples} is more than the {len(full)} {what} of {cfg.data}: all of them are "
             "used")
    full = limit(full, cfg.max_samples, cfg.seed)
    splits = split(full, cfg.val_frac, cfg.test_frac, cfg.seed, val, test)
    task = Task.for_targets(full.task, splits.train.labels, cfg.loss)
    if task.kind == "classification":
        choose_positive(names, splits.train.labels, cfg.positive_label)  # a bad --positive-label fails first
    elif cfg.optimize or cfg.positive_label:
        raise FrostlineError(f"--optimize and --positive-label choose a class's threshold; a {task.kind} task has no "
                             "positive class" + (" (its per-label thresholds are chosen on validation)"
                                                  if task.kind == "multilabel" else ""))
    torch.manual_seed(cfg.seed)  # the new head's initial weights are part of the run's identity
    if loaded is None:
        loaded = load_for_run(cfg, status, echo)
    base_hash = state_hash(loaded.model)  # before the head is replaced: the base the run's changes apply to
    if full.kind == "text" and loaded.tokenizer is None:
        raise FrostlineError(f"{cfg.data} is text but model {cfg.model!r} has no tokenizer; use a text model")
    length = text_length(cfg.max_length, loaded.model, loaded.tokenizer, cfg.model, loaded.max_length)
    if full.kind != "text" and loaded.tokenizer is not None:
        raise FrostlineError(f"{cfg.data} holds images but model {cfg.model!r} is a text model; use an image model: "
                             "--model efficientnet-lite0 (bundled, pretrained on ImageNet), hf:<vision model folder> "
                             "or path/to/file.py:function")
    if full.kind == "image":
        inputs = run_inputs(loaded, cfg)
        assert inputs is not None
        for note in [*full.notes, *(val.notes if val else []), *(test.notes if test else [])]:
            echo(f"note: {note}")
        hint = ("; state yours with model.pretrained_cfg = {'input_size': (3, H, W), 'mean': ..., 'std': ...} in "
                "your factory" if inputs.assumed else "")
        echo(f"note: images: normalised {inputs.formula()} ({inputs.source}{hint})")
        own = loaded.inputs.size if loaded.inputs is not None and not loaded.inputs.assumed else None
        if own and inputs.size * 4 <= own:
            echo(f"warning: --image-size {inputs.size} is a quarter or less of the {own} px the model was "
                 f"pretrained at: a CNN that downsamples 32x leaves about {max(inputs.size // 32, 1)} feature "
                 f"position(s) per side, and its pretrained features carry little at this size; use 64 or more")
    else:
        inputs = None
    torch.manual_seed(cfg.seed)
    loaded.head = replace_head(loaded.model, task.outputs(names), labels=None if task.kind == "regression" else names,
                               dropout=cfg.dropout, problem_type=task.problem_type)
    parts = model_parts(loaded.model)
    for spec in strategies if strategies is not None else [cfg.strategy]:
        checked = parse_strategy(spec, loaded.model)
        if checked.ready:  # automatic strategies plan once they have scored the model (in train)
            checked.plan(0, parts, cfg.body_lr(), cfg.head_lr)
    augment = parse_augment(cfg.augment)
    what = "tokenising" if full.kind == "text" else "preparing"
    with status(f"{what} {len(splits.train) + len(splits.val) + len(splits.test)} samples"):
        enc = [Encoded(s, loaded.tokenizer, length, augment if s is splits.train else None, inputs)
               for s in (splits.train, splits.val, splits.test)]
    cut = sum(e.truncated for e in enc)
    if cut:
        own = " (where the model's own sentence pipeline truncates)" if loaded.max_length == length else ""
        echo(f"note: {cut} of {sum(len(e) for e in enc)} texts were cut to {length} tokens{own}; --max-length sets "
             "another length")
    check_forward(loaded.model, enc[0], cfg.model)
    state = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
    with status("checking the splits for leakage"):
        leak = check_splits(splits, source=full if val is None and test is None else None)
    if conflicts is not None and conflicts[0]:
        leak.conflicting, leak.conflict_examples, leak.conflicts_deduped = conflicts[0], conflicts[1], True
    with status("hashing the data files"):
        hashes = data_hashes(_data_paths(cfg))
    return Prepared(loaded, splits, *enc, initial_state=state, leakage=leak, dedup_dropped=dropped, dropped=bad_rows,
                    data_hashes=hashes, base_hash=base_hash, task=task,
                    head_inputs=HeadInputs(loaded.model, find_head(loaded.model).name), inputs=inputs)


def _head_record(prepared: Prepared) -> dict[str, Any]:
    loaded = prepared.loaded
    return {**loaded.head.to_dict(), "pooling": loaded.pooling.to_dict() if loaded.pooling else None}


def _identity(cfg: RunConfig, prepared: Prepared) -> dict[str, Any]:
    """What makes a run folder this run: configuration, data contents, base model."""
    return {"config": cfg.identity(), "data_sha256": prepared.data_hashes,
            "base": {"spec": cfg.model, "sha256": prepared.base_hash}}


def train(cfg: RunConfig, prepared: Prepared | None = None, progress: Progress | None = None,
          echo: Callable[[str], None] = print, status: Status = no_status) -> RunResult:
    """Fine-tune with ``cfg.strategy`` and write the run folder ``cfg.out``.

    An unfinished run in ``cfg.out`` with the same configuration, data and base model resumes from its newest
    complete checkpoint; a finished one is reported (its files verified), not retrained; anything else there is
    an error (nothing is overwritten).
    """
    cfg.validate()
    dist = start_processes(cfg)
    if dist is not None and not dist.main:  # rank 0 reports
        echo, progress, status = (lambda _s: None), None, no_status
    check_run_out(cfg.out)
    # one writer per run folder (rank 0 of a distributed run): a second `train` into it stops with one line
    with folder_lock(cfg.out, "trains a run") if dist is None or dist.main else nullcontext():
        return _train(cfg, dist, prepared, progress, echo, status)


def _train(cfg: RunConfig, dist: Dist | None, prepared: Prepared | None, progress: Progress | None,
           echo: Callable[[str], None], status: Status) -> RunResult:
    """:func:`train` with the run folder held."""
    run = RunFolder(check_run_out(cfg.out))
    state = run.state() if run.exists() else None
    if dist is not None:
        dist.barrier()  # every rank has read the folder before rank 0 writes to it
    if state is not None:
        check_same_run(run.path, state, cfg)
        if state.get("complete"):
            run.verify_results(state)
            check_same_data(run.path, state, data_hashes(_data_paths(cfg)), cfg)
            checkpoint.remove_all(run.path)
            checkpoint.clean(run.path)
            echo(f"{run.path}: run already complete, reusing its results")
            return RunResult(cfg.strategy, run.path, run.metrics(), reused=True)
    prepared = prepared or prepare(cfg, status=status, echo=echo)
    model = prepared.loaded.model
    strategy = parse_strategy(cfg.strategy, model)
    if strategy.ready:
        strategy.plan(0, model_parts(model), cfg.body_lr(), cfg.head_lr)  # a bad strategy fails before any work
    identity = _identity(cfg, prepared)
    if state is not None:
        check_same_data(run.path, state, prepared.data_hashes, cfg)
        check_same_base(run.path, state, identity)
    else:
        run.write_state({"complete": False, **identity})
    base = prepared.base_metrics(cfg.eval_batch_size, status)
    if prepared.precision is None:  # once per prepared data (a comparison's runs share it)
        with status("checking reduced precision on the validation split"):
            prepared.precision = choose_precision(prepared, cfg.accelerator, cfg.precision, cfg.eval_batch_size,
                                                  check=dist is None)
        echo(describe_precision(prepared.precision))
    run.log(describe_precision(prepared.precision))
    prepared.reset()
    if strategy.needs_data:  # scored on the starting weights, also when resuming: the choice repeats exactly
        with status(f"{strategy}: scoring the model on the training data"):
            strategy.setup(model, prepared.train, cfg.seed)
    try:
        return _train_attached(cfg, prepared, strategy, run, state, identity, dist, base, progress, echo, status)
    finally:
        strategy.detach(model)  # adapters out again: a comparison's next strategy starts from the base model


def _train_attached(cfg: RunConfig, prepared: Prepared, strategy: Strategy, run: RunFolder,
                    state: dict[str, Any] | None, identity: dict[str, Any], dist: Dist | None, base: dict[str, Any],
                    progress: Progress | None, echo: Callable[[str], None], status: Status) -> RunResult:
    """The rest of :func:`train`, with the strategy's adapters (if any) in the model."""
    model, labels = prepared.loaded.model, prepared.splits.label_names
    strategy.attach(model, cfg.seed)
    adapters = strategy.adapters
    initial = adapter_initial(model, prepared.initial_state) if adapters is not None else prepared.initial_state
    run.write_config(cfg.to_dict())
    head, model_info = _head_record(prepared), model_record(prepared.loaded, prepared.inputs)
    keeper = Checkpointer(run.path, model, initial, prepared.loaded.head.name,
                          {"label_names": labels, "head": head, "task": prepared.task.to_dict()}, run.log)
    if dist is not None and not dist.main:
        dist.barrier()  # rank 0 has cleaned the folder of half-written checkpoints
    resume, notes = keeper.resume()
    if dist is not None and dist.main:
        dist.barrier()
    for note in notes:
        echo(f"note: {note}")
        run.log(note)
    if resume is not None:
        echo(f"{run.path}: resuming after epoch {resume.next_epoch} of {cfg.budget('epochs')}")
        run.log(f"resume at epoch {resume.next_epoch + 1}")
    for bad in prepared.dropped.values():
        run.log(f"warning: {bad['line']}")
    run.log(f"start strategy={strategy} model={cfg.model} data={cfg.data} sizes={prepared.splits.sizes()}")
    started, shown = time.time(), [""]
    tracking = Tracking(cfg.log if dist is None or dist.main else [], run.path, f"{strategy} ({run.path.name})")
    tracking.start(cfg.to_dict(), list(resume.history) if resume else [])

    def on_epoch_end(record: EpochRecord, is_best: bool, popt: PlanOptimizer, step: int, ending: str | None) -> None:
        keeper.on_epoch_end(record, is_best, popt, step, ending)
        tracking.epoch(record.to_dict())
        if not record.cache.startswith("cache reused") and record.cache != shown[-1]:
            echo(f"epoch {record.epoch}: {record.cache}")  # once per change: built, dropped, fell back, probe fit
            shown.append(record.cache)

    # The best epoch is checkpointed to disk as it happens and loaded back from there: no copy held in memory.
    try:
        result = fit(model, prepared.train, prepared.val, strategy,
                     replace(cfg.train_config(), restore_best=False, precision=prepared.precision["ran"]),
                     on_epoch_end=on_epoch_end, resume=resume, progress=progress, status=status, task=prepared.task)
    except NonFiniteLoss as exc:
        kept = f"the checkpoint of epoch {keeper.latest.epoch} is kept" if keeper.latest else "no epoch finished"
        run.log(f"stopped: {exc}")
        raise NonFiniteLoss(f"{exc}. In {run.path}, {kept}; a new --lr needs a new --out") from None
    except RuntimeError as exc:
        if dist is None or not any(w in str(exc) for w in ("gloo", "NCCL", "Connection", "closed by peer")):
            raise
        run.log(f"stopped: another process of the distributed run stopped ({str(exc)[:200]})")
        raise FrostlineError(f"another process of this distributed run stopped (rank {dist.rank} of {dist.world} saw: "
                             f"{str(exc).splitlines()[0][:160]}); {run.path} keeps its newest complete checkpoint: "
                             "run the same command again to resume") from None
    finally:
        strategy.teardown(model)
    if dist is not None:
        dist.barrier()  # rank 0 has written the last checkpoint
        if not dist.main:
            dist.barrier()  # ... and the results: every rank returns what it wrote
            return RunResult(str(strategy), run.path, run.metrics(), resume.next_epoch if resume else None)
    epochs = cfg.budget("epochs")
    if result.converged and len(result.history) < epochs:
        done = result.history[-1]["epoch"]
        rest = f"epoch {epochs}" if done + 1 == epochs else f"epochs {done + 1}-{epochs}"
        echo(f"the linear probe converged in epoch {done}: {rest} would not change it and were skipped")
    best_tensors = keeper.load_best()
    metrics, test_pred, at, val_pred = score_run(cfg, prepared, strategy, result, resume, started, head,
                                                 model_info, base, status)
    metrics["run"]["precision_choice"] = prepared.precision
    metrics["run"]["processes"] = {"total": dist.world if dist is not None else 1, "nodes": cfg.num_nodes}
    with status("writing predictions, metrics.json and report.html"):
        run.save_model(best_tensors, prepared.base_hash)
        run.write_predictions(test_pred, prepared.splits.test.ids, labels, at)
        run.write_validation(val_pred, prepared.splits.val.ids)
        run.write_metrics(metrics)
        write_run_report(run.file("report.html"), metrics, test_pred.labels, test_pred.preds,
                         misclassified_pictures(prepared, test_pred))
    frozen = trainable_state(model)
    test, th = metrics["test"], metrics.get("threshold") or {}
    chosen = th.get("chosen")
    run.write_state({"complete": True, **identity, "epochs_run": len(result.history),
                     "best_epoch": result.best_epoch, "label_names": labels, "head": head, "model": model_info,
                     "task": prepared.task.to_dict(), "data_path": metrics["data"]["path"],
                     **({"adapters": adapters.to_dict()} if adapters is not None else {}),
                     "plan": {k: frozen[k] for k in ("trainable", "frozen", "total", "pinned", "bn")},
                     "threshold": {"positive": th.get("positive"), "chosen": chosen["threshold"] if chosen else None,
                                   "objective": chosen["objective"] if chosen else None,
                                   "labels": th.get("label_thresholds")},
                     "metrics": {"test": {"n": test["n"], **headline(test)}
                                 | ({"f1_macro": test["f1"]["macro"]} if "accuracy" in test else {})},
                     "files": run.hashes()})
    tracking.finish(metrics, [run.file(n) for n in ("report.html", "metrics.json", "predictions.csv")])
    checkpoint.remove_all(run.path)
    run.log("done: test " + ", ".join(f"{k} {v:.4f}" for k, v in headline(test).items() if v is not None))
    if dist is not None:
        dist.barrier()
    return RunResult(str(strategy), run.path, run.metrics(), resume.next_epoch if resume else None)


def _data_paths(cfg: RunConfig) -> dict[str, str | None]:
    return {"data": cfg.data, "val_data": cfg.val_data, "test_data": cfg.test_data}

