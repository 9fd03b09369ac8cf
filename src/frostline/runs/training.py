"""Whole runs: load model and data, replace the head, fine-tune with a strategy, write the run folder.

``train`` runs one strategy; :mod:`frostline.runs.comparison` runs several on the same split and starting weights;
:mod:`frostline.runs.inference` scores a finished run on new data and predicts on unlabelled data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core.errors import FrostlineError
from ..core.lock import folder_lock
from ..evaluation.metrics import headline
from ..freezing.plan import trainable_state
from ..models.parts import model_parts
from ..reporting.html import write_run_report
from ..training.adapters import initial_state as adapter_initial
from ..training.distributed import Dist
from ..training.engine import fit
from ..training.plans import Strategy
from ..training.records import EpochRecord, NonFiniteLoss
from ..training.schedule import PlanOptimizer
from ..training.strategies import parse_strategy
from . import checkpoint
from .checkpointer import Checkpointer
from .config import RunConfig
from .folder import RunFolder, check_run_out
from .identity import check_same_base, check_same_data, check_same_run, data_hashes
from .precision import choose_precision
from .precision import describe as describe_precision
from .preparation import Prepared, Progress, Status, data_paths, no_status, prepare
from .results import score_run
from .sources import (
    misclassified_pictures,
    model_record,
    start_processes,
)
from .tracking import Tracking


@dataclass
class RunResult:
    """A finished run."""

    strategy: str
    out: Path
    metrics: dict[str, Any]
    resumed_from: int | None = None
    reused: bool = False


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
            check_same_data(run.path, state, data_hashes(data_paths(cfg)), cfg)
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
        one = done + 1 == epochs
        rest = f"epoch {epochs} would not change it and was" if one else \
            f"epochs {done + 1}-{epochs} would not change it and were"
        echo(f"the linear probe converged in epoch {done}: {rest} skipped")
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
