"""Fault injection: the training process is killed (SIGKILL, a real child process) at every write point of a run in
turn, and each rerun resumes; the finished run is bit-identical to one never interrupted. A full disk leaves no
half-run presented as complete.

Children are forked from a ``forkserver`` that has imported frostline once, so each kill costs a partial run, not a
fresh interpreter.
"""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

from frostline.core import atomic
from frostline.core.errors import FrostlineError
from frostline.runs.config import RunConfig
from frostline.runs.training import train
from tests.conftest import make_text_file, make_tiny_hf_dir

RESULTS = ("model.safetensors", "predictions.csv")
#: Imported once by the fork server: each child then costs its share of the run (~1 s), not the imports (~4 s).
PRELOAD = ["frostline.runs.training", "frostline.reporting.plots", "transformers.models.bert.modeling_bert",
           "transformers.models.bert.tokenization_bert", "lightning_fabric", "sklearn.model_selection",
           "sklearn.metrics", "scipy.optimize", "tests.test_faults"]


def _config(root: Path, out: str, strategy: str = "gradual") -> RunConfig:
    return RunConfig(model=f"hf:{root / 'hf'}", data=str(root / "d.tsv"), text_column="1", label_column="0",
                     strategy=strategy, epochs=3, batch_size=16, lr=1e-3, out=str(root / out))


def _plain(root: str, out: str, strategy: str) -> None:
    """A whole run, no fault hook (the random-instant kills come from outside)."""
    train(_config(Path(root), out, strategy), echo=lambda _s: None)


def _child(root: str, out: str, killed_file: str) -> None:
    """Run the training; die by SIGKILL at the first write point not yet killed at (recorded before dying)."""
    killed = set(json.loads(Path(killed_file).read_text()))

    def hook(name: str) -> None:
        if name not in killed:
            Path(killed_file).write_text(json.dumps(sorted(killed | {name})))
            os.kill(os.getpid(), signal.SIGKILL)

    atomic.fault_hook = hook
    train(_config(Path(root), out), echo=lambda _s: None)


def _reference(root: str, points_file: str, copies: str) -> None:
    """The uninterrupted run, recording its write points and a copy of each epoch's checkpoint."""
    seen: list[str] = []

    def hook(name: str) -> None:
        seen.append(name)
        if name.endswith(":renamed") and name.startswith("epoch-"):
            folder = name.split(":")[0]
            shutil.copytree(Path(root) / "whole" / "checkpoints" / folder, Path(copies) / folder)

    atomic.fault_hook = hook
    train(_config(Path(root), "whole"), echo=lambda _s: None)
    Path(points_file).write_text(json.dumps(seen))


@pytest.fixture(scope="module")
def ctx():
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def _spawn(ctx, target, *args) -> int:
    proc = ctx.Process(target=target, args=args)
    proc.start()
    proc.join(120)
    assert proc.exitcode is not None, "child hung"
    return proc.exitcode


def test_kill_at_every_write_point_then_resume_is_bit_identical(tmp_path, ctx):
    make_tiny_hf_dir(tmp_path / "hf")
    make_text_file(tmp_path / "d.tsv", n=60)
    points_file, copies = tmp_path / "points.json", tmp_path / "copies"
    assert _spawn(ctx, _reference, str(tmp_path), str(points_file), str(copies)) == 0
    points = json.loads(points_file.read_text())
    assert len(points) == len(set(points)) >= 30, points  # every write point has its own name
    killed_file = tmp_path / "killed.json"
    killed_file.write_text("[]")
    kills, chains = 0, 0
    while set(json.loads(killed_file.read_text())) != set(points):
        # a chain: kill, rerun (killed at the next point not yet hit), ... until a rerun finishes; a point skipped
        # by a resume (e.g. pruning after the rename it was killed at) is hit by the next chain
        chains += 1
        kills += _chain(ctx, tmp_path, f"cut{chains}", killed_file, copies)
    assert kills == len(points) and chains <= 4


@pytest.mark.parametrize("strategy", ["linear-probe", "partial:2", "gradual"])
def test_kill_at_random_instants_then_resume_is_bit_identical(tmp_path, ctx, strategy):
    """SIGKILL at 10 random instants of each strategy's run (not only at write points: inside a forward pass, a
    tokenizer, a report), each followed by the same command again; every finished rerun equals, bit for bit, the run
    never interrupted (30 kills over the three strategies)."""
    import random
    import time

    make_tiny_hf_dir(tmp_path / "hf")
    make_text_file(tmp_path / "d.tsv", n=60)
    t0 = time.perf_counter()
    assert _spawn(ctx, _plain, str(tmp_path), "whole", strategy) == 0
    duration = time.perf_counter() - t0
    rng = random.Random(f"kill-{strategy}")
    kills, chain, finished = 0, 1, 0
    while kills < 10 or (tmp_path / f"cut{chain}").exists():
        proc = ctx.Process(target=_plain, args=(str(tmp_path), f"cut{chain}", strategy))
        proc.start()
        proc.join(rng.uniform(0.02, duration) if kills < 10 else 120)
        if proc.exitcode is None:  # still running at the drawn instant: kill it there
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()
            kills += 1
            continue
        assert proc.exitcode == 0, f"a rerun failed with exit code {proc.exitcode} after {kills} kills"
        for f in RESULTS:
            assert (tmp_path / f"cut{chain}" / f).read_bytes() == (tmp_path / "whole" / f).read_bytes(), f
        assert not (tmp_path / f"cut{chain}" / "checkpoints").exists()
        finished += 1
        chain += 1
    assert kills == 10 and finished >= 1


def _chain(ctx, tmp_path: Path, out: str, killed_file: Path, copies: Path) -> int:
    cut, kills = tmp_path / out, 0
    while True:
        code = _spawn(ctx, _child, str(tmp_path), out, str(killed_file))
        if code == 0:
            break
        assert code == -signal.SIGKILL, f"child failed with exit code {code}"
        kills += 1
        # after every kill: each checkpoint on disk is complete and equal, file by file, to the reference's
        for folder in (cut / "checkpoints").glob("epoch-*") if (cut / "checkpoints").is_dir() else []:
            if (folder / "manifest.json").is_file():
                for f in ("last.safetensors", "best.safetensors", "optimizer.pt", "state.json"):
                    a, b = _content(folder / f), _content(copies / folder.name / f)
                    assert _same(a, b), f"{folder.name}/{f} differs after a kill at {killed_file.read_text()}"
        state = json.loads((cut / "state.json").read_text()) if (cut / "state.json").is_file() else {}
        if state.get("complete"):  # presented as complete only with every result file written and verified
            for f in RESULTS:
                assert (cut / f).read_bytes() == (tmp_path / "whole" / f).read_bytes()
    for f in RESULTS:
        assert (cut / f).read_bytes() == (tmp_path / "whole" / f).read_bytes(), f
    assert not (cut / "checkpoints").exists()
    assert not [p.name for p in cut.iterdir() if p.name.startswith(".")]  # no temp files left
    final = json.loads((cut / "state.json").read_text())
    assert final["complete"] and final["files"]["model.safetensors"]
    return kills


def _content(path: Path) -> object:
    """What a checkpoint file holds: safetensors bytes; the optimizer state's values (torch.save's zip differs
    byte-wise between processes for equal values); state.json without wall-clock fields."""
    if path.suffix == ".pt":
        return torch.load(path, weights_only=True)
    return _without_times(path.read_bytes()) if path.suffix == ".json" else path.read_bytes()


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return isinstance(b, list | tuple) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


def _without_times(raw: bytes) -> object:
    """A checkpoint state without wall-clock fields (``seconds``, ``timing``, the ``cache`` note quoting seconds)."""
    def strip(x: object) -> object:
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in ("seconds", "timing", "cache")}
        return [strip(v) for v in x] if isinstance(x, list) else x
    return strip(json.loads(raw))


def _fail_at(tmp_path: Path, monkeypatch, point: str, exc: BaseException) -> RunConfig:
    """Start a run that raises ``exc`` at write point ``point``; returns its configuration."""
    make_tiny_hf_dir(tmp_path / "hf")
    make_text_file(tmp_path / "d.tsv", n=60)
    cfg = _config(tmp_path, "run")

    def fail(name: str) -> None:
        if name == point:
            raise exc

    monkeypatch.setattr(atomic, "fault_hook", fail)
    with pytest.raises(type(exc)):
        train(cfg, echo=lambda _s: None)
    monkeypatch.setattr(atomic, "fault_hook", None)
    return cfg


def test_full_disk_leaves_no_complete_run_and_the_rerun_finishes(tmp_path, monkeypatch):
    cfg = _fail_at(tmp_path, monkeypatch, "metrics.json:written",
                   OSError(errno.ENOSPC, "No space left on device", "metrics.json"))
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["complete"] is False and not (tmp_path / "run" / "metrics.json").exists()
    assert not [p.name for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]
    done = train(cfg, echo=lambda _s: None)  # space freed: the same command finishes from the last checkpoint
    assert done.resumed_from == 3 and done.metrics["test"]["n"] == 9


def test_data_changed_between_kill_and_rerun_is_refused(tmp_path, monkeypatch):
    cfg = _fail_at(tmp_path, monkeypatch, "epoch-0002:renamed", KeyboardInterrupt())
    make_text_file(tmp_path / "d.tsv", n=60, seed=5)  # same path, other labels
    with pytest.raises(FrostlineError, match=r"--data .*d.tsv changed since the run .* started"):
        train(cfg, echo=lambda _s: None)


def test_temporary_files_of_a_write_killed_inside_safetensors_are_cleaned(tmp_path, monkeypatch):
    """safetensors' Rust writer saves to ``.tmpXXXXXX`` and renames: a kill between leaves it beside ours."""
    cfg = _fail_at(tmp_path, monkeypatch, "model.safetensors:written", KeyboardInterrupt())
    run = tmp_path / "run"
    (run / ".tmpM3wzkZ").write_bytes(b"half a tensor file")
    (run / ".model.safetensors.f4czuzih.tmp").write_bytes(b"half a tensor file")
    done = train(cfg, echo=lambda _s: None)
    assert done.resumed_from == 3 and not [p.name for p in run.iterdir() if p.name.startswith(".")]


def test_a_resumed_runs_total_seconds_count_its_earlier_epochs(tmp_path, monkeypatch):
    cfg = _fail_at(tmp_path, monkeypatch, "epoch-0002:renamed", KeyboardInterrupt())
    done = train(cfg, echo=lambda _s: None)
    seconds = done.metrics["seconds"]
    assert done.resumed_from is not None and len(seconds["per_epoch"]) == cfg.epochs
    assert seconds["total"] >= sum(seconds["per_epoch"]) - 1e-3  # not only the resumed session's epochs
