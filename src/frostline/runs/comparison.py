"""Several strategies on the same split and starting weights, each with a budget that lets it finish.

A strategy may carry its own budget after ``@``: ``full@lr=3e-5@epochs=4`` (CLI), or in YAML::

    strategies:
      - linear-probe
      - {strategy: full, lr: 3.0e-5, epochs: 4}

Keys: ``epochs``, ``lr``, ``head_lr``, ``batch_size``, ``weight_decay``, ``warmup``, ``schedule``, ``patience``,
``optimizer``, ``probe``. What each strategy ran with is recorded in its ``metrics.json`` (``run.budget``) and
shown in the comparison table. A linear probe on cached features is fit to convergence whatever its epochs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import atomic
from ..core.errors import FrostlineError, did_you_mean
from ..core.lock import folder_lock
from ..evaluation.comparing import evidence
from ..reporting.html import write_compare_report
from .config import RunConfig
from .folder import RunFolder, check_out, check_run_out
from .preparation import Progress, Status, no_status, prepare
from .sources import start_processes
from .training import RunResult, train

BUDGET_KEYS: dict[str, type] = {"epochs": int, "lr": float, "head_lr": float, "batch_size": int,
                                "weight_decay": float, "warmup": float, "schedule": str, "patience": int,
                                "optimizer": str, "probe": str}


@dataclass(frozen=True)
class StrategyRun:
    """One strategy of a comparison and the options it overrides."""

    spec: str
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The strategy as typed, with its overrides (``full@lr=3e-05``)."""
        return self.spec + "".join(f"@{k}={v}" for k, v in self.overrides.items())


def _value(key: str, text: Any, where: str) -> Any:
    kind = BUDGET_KEYS[key]
    if not isinstance(text, str):
        return text
    try:
        return kind(text) if kind is not float else float(text)
    except ValueError:
        raise FrostlineError(f"{where}: {key} must be {'an integer' if kind is int else 'a number'}, got "
                             f"{text!r}") from None


def _overrides(items: dict[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for key, value in items.items():
        key = str(key).replace("-", "_")
        if key not in BUDGET_KEYS:
            raise FrostlineError(f"{where}: unknown budget key {key!r}; expected one of {', '.join(BUDGET_KEYS)}"
                                 f"{did_you_mean(key, BUDGET_KEYS)}")
        out[key] = _value(key, value, where)
    return out


def parse_strategies(items: str | list[Any]) -> list[StrategyRun]:
    """Parse ``linear-probe,partial:2,full@lr=3e-5@epochs=4`` or a YAML list of names / mappings."""
    if isinstance(items, str):
        entries: list[Any] = [s.strip() for s in items.split(",") if s.strip()]
    elif isinstance(items, list):
        entries = items
    else:
        raise FrostlineError(f"strategies must be a comma-separated string or a list, got {type(items).__name__}")
    runs = []
    for entry in entries:
        if isinstance(entry, dict):
            spec = entry.get("strategy")
            if not isinstance(spec, str) or not spec.strip():
                raise FrostlineError(f"strategy entry {entry!r} needs a 'strategy' key, e.g. {{strategy: full, "
                                     "lr: 3.0e-5}")
            rest = {k: v for k, v in entry.items() if k != "strategy"}
            runs.append(StrategyRun(spec.strip(), _overrides(rest, spec)))
            continue
        spec, *pairs = str(entry).split("@")
        items_: dict[str, Any] = {}
        for pair in pairs:
            key, eq, value = pair.partition("=")
            if not eq or not key or not value:
                raise FrostlineError(f"strategy {entry!r}: expected STRATEGY@key=value (e.g. full@lr=3e-5@epochs=4), "
                                     f"got {pair!r}")
            if key.strip() in items_:
                raise FrostlineError(f"strategy {entry!r} sets {key.strip()!r} twice; give each budget key once")
            items_[key.strip()] = value.strip()
        runs.append(StrategyRun(spec.strip(), _overrides(items_, spec)))
    if not runs:
        raise FrostlineError("no strategies given, e.g. --strategies linear-probe,partial:2,full")
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise FrostlineError(f"a strategy is listed twice: {labels}")
    return runs


def run_config(cfg: RunConfig, item: StrategyRun, out: Path) -> RunConfig:
    """The configuration of one strategy of the comparison (checked)."""
    sub = RunConfig(**{**cfg.to_dict(), **item.overrides, "strategy": item.spec,
                       "out": str(out / folder_name(item.label))})
    return sub.validate()


@dataclass
class Comparison:
    """Results of :func:`compare`: the base model and one run per strategy."""

    base: dict[str, Any] | None
    runs: list[RunResult]
    out: Path
    evidence: dict[str, Any] = field(default_factory=dict)  # :mod:`frostline.evaluation.comparing`


def compare(cfg: RunConfig, strategies: list[str] | list[Any] | str, progress: Progress | None = None,
            echo: Callable[[str], None] = print, status: Status = no_status) -> Comparison:
    """Run every strategy on the same split and starting weights; sub-folders of ``cfg.out`` per strategy.

    Args:
        cfg: Options shared by every strategy.
        strategies: Names, ``name@key=value`` overrides, or mappings (see the module docstring).
        progress: Progress-bar factory for the engine.
        echo: Where to print one-line notes.
        status: Status-line context for slow steps.
    """
    items = parse_strategies(strategies if isinstance(strategies, str | list) else list(strategies))
    configs = [run_config(cfg, item, Path(cfg.out)) for item in items]  # every option checked before anything loads
    dist = start_processes(cfg)  # a distributed comparison: the other processes start now, not after the data is read
    out = _own_folder(cfg, configs)
    with folder_lock(out, "runs a comparison") if dist is None or dist.main else nullcontext():
        return _compare(cfg, items, configs, out, progress, echo, status)


def _compare(cfg: RunConfig, items: list[StrategyRun], configs: list[RunConfig], out: Path,
             progress: Progress | None, echo: Callable[[str], None], status: Status) -> Comparison:
    """:func:`compare` with its folder held."""
    # strategies resolve against the model as soon as it loads: a bad one fails before hours of training
    prepared = prepare(cfg, status=status, echo=echo, strategies=[item.spec for item in items])
    base = prepared.base_metrics(cfg.eval_batch_size, status)
    runs = []
    for item, sub in zip(items, configs, strict=True):
        echo(f"== {item.label}")
        result = train(sub, prepared, progress, echo, status)
        result.strategy = item.label
        runs.append(result)
    with status("weighing the evidence: validation losses paired per sample, test intervals, paired tests"):
        ev = comparison_evidence(runs, prepared.task.kind, prepared.splits.label_names, cfg.seed)
    atomic.write_json(out / "compare.json", {
        "schema": COMPARE_SCHEMA, "complete": True, "config": _identity(cfg),
        "base": base, "evidence": ev,
        "runs": [{"strategy": r.strategy, "out": str(r.out), "metrics": r.metrics} for r in runs],
    })
    with status("writing the comparison report"):
        write_compare_report(out / "report.html", base, [(r.strategy, r.metrics) for r in runs], ev)
    return Comparison(base, runs, out, ev)


def comparison_evidence(runs: list[RunResult], kind: str, labels: list[str], seed: int = 0) -> dict[str, Any]:
    """:func:`frostline.evaluation.comparing.evidence` of finished runs (their folders' predictions.csv and
    validation.csv)."""
    return evidence([{"strategy": r.strategy, "out": str(r.out), "trainable": r.metrics["params"]["trainable"],
                      "seconds": r.metrics["seconds"]["total"],
                      "val_losses": RunFolder(r.out).validation_losses()} for r in runs], kind, labels, seed)


COMPARE_SCHEMA = "frostline.compare/1"


def _identity(cfg: RunConfig) -> dict[str, Any]:
    ident = cfg.identity()
    ident.pop("strategy", None)
    return ident


def _own_folder(cfg: RunConfig, configs: list[RunConfig]) -> Path:
    """The comparison's folder: new, empty, or one this same comparison wrote (it resumes); else an error."""
    out = Path(cfg.out)
    if (out / "state.json").is_file():
        raise FrostlineError(f"--out {out} holds a single run (train's run folder); frostline does not write a "
                             "comparison over it: choose a new folder")
    mine = {Path(c.out).name for c in configs} | {"compare.json", "report.html"}
    summary = out / "compare.json"
    if summary.is_file():
        try:
            recorded = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            recorded = None
        if not isinstance(recorded, dict) or recorded.get("schema") != COMPARE_SCHEMA:
            raise FrostlineError(f"{summary} is not a frostline comparison summary; choose a new --out")
        diff = sorted(k for k, v in _identity(cfg).items() if (recorded.get("config") or {}).get(k) != v)
        started = recorded.get("complete") or recorded.get("runs") or any(p.name != summary.name
                                                                           for p in out.iterdir())
        if recorded.get("config") is not None and diff and not started:  # failed before any run began:
            atomic.write_json(summary, {"schema": COMPARE_SCHEMA, "complete": False,  # nothing to keep
                                        "config": _identity(cfg), "runs": []})
            return out
        if recorded.get("config") is not None and diff:
            raise FrostlineError(f"--out {out} holds a comparison with other settings (differs in: "
                                 f"{', '.join(diff)}); choose a new folder")
        mine |= {Path(r["out"]).name for r in recorded.get("runs", []) if isinstance(r, dict) and "out" in r}
    check_out(out, "compare", mine if summary.is_file() else None)  # no summary: a new or empty folder only
    for sub in configs:
        check_run_out(sub.out)  # each strategy's folder: new, empty, or its own run
    if not summary.is_file():
        atomic.write_json(summary, {"schema": COMPARE_SCHEMA, "complete": False, "config": _identity(cfg),
                                    "runs": []})
    return out


def folder_name(strategy: str) -> str:
    """A folder name for a strategy label (``partial:2`` -> ``partial_2``)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in strategy)
