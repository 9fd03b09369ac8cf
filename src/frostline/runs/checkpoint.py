"""Per-epoch checkpoints, each one atomic unit: a folder written in full under a temporary name, then renamed.

``checkpoints/epoch-0003/`` holds

=====================  =====================================================================================
``last.safetensors``   the tensors training changed, after the epoch (the rest is the base model)
``best.safetensors``   the same for the best epoch so far (a hard link when it is this epoch or unchanged)
``optimizer.pt``       optimizer state, RNG state, per-sample validation losses (tensors only)
``state.json``         epoch, step, history, best epoch, whether training has finished
``manifest.json``      the SHA-256 of each file above, written last
=====================  =====================================================================================

A folder without a valid manifest is not a checkpoint: resume takes the newest folder whose every file matches its
hash, falls back to the one before (the last two are kept), and removes half-written ``.tmp`` folders.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..core.atomic import fsync_dir, is_temp, point, strict_json, umask_mode, writes
from .identity import file_hash

FOLDER = "checkpoints"
FILES = ("last.safetensors", "best.safetensors", "optimizer.pt", "state.json")
KEEP = 2


@dataclass
class Checkpoint:
    """A verified checkpoint folder and its state."""

    path: Path
    state: dict[str, Any]

    @property
    def epoch(self) -> int:
        """The epoch it was written after (from 1)."""
        return int(self.state["epoch"])

    def tensors(self, name: str = "last") -> dict[str, torch.Tensor]:
        """The changed tensors of ``last`` or ``best``."""
        return load_file(str(self.path / f"{name}.safetensors"))

    def extra(self) -> dict[str, Any]:
        """Optimizer state, RNG state and per-sample validation losses."""
        return torch.load(self.path / "optimizer.pt", weights_only=True, map_location="cpu")


def _name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _sync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def write(run: Path, epoch: int, last: dict[str, torch.Tensor], best: dict[str, torch.Tensor] | None,
          extra: dict[str, Any], state: dict[str, Any], previous: Checkpoint | None) -> Checkpoint:
    """Write the checkpoint of ``epoch`` as one unit.

    Args:
        run: The run folder.
        epoch: The epoch just finished (from 1).
        last: Changed tensors after this epoch.
        best: Changed tensors of the best epoch when this epoch is the best; ``None`` keeps ``previous``'s best.
        extra: Optimizer / RNG / losses for ``optimizer.pt``.
        state: Epoch, step, history, best epoch, finished, for ``state.json``.
        previous: The checkpoint before (its best weights are linked when this epoch is not the best).
    """
    root = run / FOLDER
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{_name(epoch)}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in last.items()}, str(tmp / "last.safetensors"),
              metadata={"format": "pt"})
    point(f"{_name(epoch)}/last.safetensors:written")
    if best is None:
        if previous is None:
            raise ValueError("no best weights: the first checkpoint must be the best so far")
        _link_or_copy(previous.path / "best.safetensors", tmp / "best.safetensors")
    elif best is last:
        _link_or_copy(tmp / "last.safetensors", tmp / "best.safetensors")
    else:
        save_file({k: v.detach().to("cpu").contiguous().clone() for k, v in best.items()},
                  str(tmp / "best.safetensors"), metadata={"format": "pt"})
    point(f"{_name(epoch)}/best.safetensors:written")
    torch.save(extra, tmp / "optimizer.pt")
    point(f"{_name(epoch)}/optimizer.pt:written")
    (tmp / "state.json").write_text(strict_json({**state, "epoch": epoch}), encoding="utf-8")
    point(f"{_name(epoch)}/state.json:written")
    for name in FILES:
        _sync(tmp / name)
    manifest = {"epoch": epoch, "files": {name: file_hash(tmp / name) for name in FILES}}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    _sync(tmp / "manifest.json")
    for name in (*FILES, "manifest.json"):
        os.chmod(tmp / name, umask_mode())
    fsync_dir(tmp)
    point(f"{_name(epoch)}/manifest.json:written")
    final = root / _name(epoch)
    if final.exists():  # a damaged one of the same epoch (a valid one would have been resumed from)
        shutil.rmtree(final)
    os.rename(tmp, final)
    fsync_dir(root)
    point(f"{_name(epoch)}:renamed")
    for old in _folders(root)[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
    point(f"{_name(epoch)}:pruned")
    return Checkpoint(final, {**state, "epoch": epoch})


def _folders(root: Path) -> list[Path]:
    """Checkpoint folders, newest first."""
    found = [p for p in root.glob("epoch-*") if p.is_dir() and p.name[6:].isdigit()] if root.is_dir() else []
    return sorted(found, key=lambda p: int(p.name[6:]), reverse=True)


def verified(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``path``'s state when it is a complete checkpoint (every file matches its manifest), else why it is not."""
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, "no readable manifest.json"
    for name in FILES:
        target = path / name
        if name not in files or not target.is_file():
            return None, f"{name} is missing"
        if file_hash(target) != files[name]:
            return None, f"{name} does not match its recorded SHA-256"
    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    except ValueError:
        return None, "state.json is not valid JSON"
    if state.get("epoch") != manifest.get("epoch"):
        return None, "state.json is of another epoch"
    return state, None


def clean(run: Path) -> None:
    """Remove half-written checkpoint folders and temporary files of interrupted atomic writes."""
    if not writes():  # another rank's (rank 0's) files
        return
    root = run / FOLDER
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".") and ".tmp" in p.name:
                shutil.rmtree(p, ignore_errors=True)
    for p in run.iterdir() if run.is_dir() else []:
        if p.is_file() and is_temp(p):
            with contextlib.suppress(OSError):
                p.unlink()


def latest(run: Path) -> tuple[Checkpoint | None, list[str]]:
    """The newest complete checkpoint, and a note for each damaged one skipped (and removed)."""
    clean(run)
    notes = []
    for path in _folders(run / FOLDER):
        state, why = verified(path)
        if state is not None:
            return Checkpoint(path, state), notes
        notes.append(f"checkpoint {path.name} is damaged ({why}); falling back to the one before")
        if writes():
            shutil.rmtree(path, ignore_errors=True)
    return None, notes


def remove_all(run: Path) -> None:
    """Drop the checkpoints once the run is complete."""
    if not writes():
        return
    shutil.rmtree(run / FOLDER, ignore_errors=True)
    point("checkpoints:removed")
