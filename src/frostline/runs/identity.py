"""What a run is made of, as hashes: the data files' contents, the base model's weights, each file of a checkpoint.

A run folder stores only the tensors training changed (:func:`changed_tensors`) with the hash of the base model
they apply to (:func:`state_hash`); loading it rebuilds the base, checks the hash, and applies the change.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..core.errors import FrostlineError
from ..training.adapters import adapter_param

if TYPE_CHECKING:
    from .config import RunConfig


def file_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a data file's bytes, or of every file of a folder (relative names and contents, sorted)."""
    p = Path(path)
    if p.is_file():
        return file_hash(p)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(p.rglob("*")):
            if f.is_file():
                h.update(f"{f.relative_to(p).as_posix()}\0{file_hash(f)}\n".encode())
        return h.hexdigest()
    raise FrostlineError(f"{path} does not exist")


def data_hashes(paths: dict[str, str | None]) -> dict[str, str]:
    """Content hash of each data file a run reads (``{"data": ..., "val_data": ...}``; unset ones left out)."""
    return {k: content_hash(v) for k, v in paths.items() if v is not None}


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes() if t.numel() else b""


def state_hash(model: nn.Module | dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor of a state dict: names, dtypes, shapes and values (the base model's identity)."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def changed_tensors(model: nn.Module, initial: dict[str, torch.Tensor], always: str | None = None
                    ) -> dict[str, torch.Tensor]:
    """Tensors of ``model`` that differ from ``initial`` (bit for bit), and every tensor under ``always.``
    (the new head, whose initial values are random) and every PEFT adapter tensor."""
    prefix = f"{always}." if always else None
    out = {}
    for name, t in model.state_dict().items():
        base = initial.get(name)
        if (prefix is not None and name.startswith(prefix)) or adapter_param(name) or base is None \
                or base.shape != t.shape or base.dtype != t.dtype or not torch.equal(base, t.detach().to(base.device)):
            out[name] = t
    return out


def apply_tensors(model: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Load a run's changed tensors into ``model`` (the rest stays as the base model has it)."""
    state = model.state_dict()
    unknown = sorted(set(tensors) - set(state))
    if unknown:
        raise FrostlineError(f"{where} does not fit the model: it holds {unknown[:3]} which the model has not")
    bad = [k for k, v in tensors.items() if tuple(v.shape) != tuple(state[k].shape)]
    if bad:
        raise FrostlineError(f"{where} does not fit the model: {bad[0]} has shape {tuple(tensors[bad[0]].shape)}, "
                             f"the model's is {tuple(state[bad[0]].shape)}")
    model.load_state_dict(tensors, strict=False)


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def check_same_run(run: Path, state: dict[str, Any], cfg: RunConfig) -> None:
    """The run folder ``run`` holds this configuration (lr and epochs as resolved for its strategy)."""
    from .config import RunConfig

    recorded = {**RunConfig().identity(), **state.get("config", {})}  # options added since: their defaults
    diff = _differences(recorded, cfg.identity())
    if diff:
        raise FrostlineError(f"{run} holds a different run (differs in: {', '.join(diff)}); "
                             "choose another --out or delete that folder")


def check_same_data(run: Path, state: dict[str, Any], hashes: dict[str, str], cfg: RunConfig) -> None:
    """The data files are the ones the run started with (``hashes``: their content hashes now)."""
    from .config import flag

    for key, digest in (state.get("data_sha256") or {}).items():
        if hashes.get(key) != digest:
            raise FrostlineError(f"{flag(key)} {getattr(cfg, key)} changed since the run in {run} started (its "
                                 "content hash differs); resuming would train on two different data sets, reusing "
                                 "would report results of other data: restore the file, or start a new run with "
                                 "another --out")


def check_same_base(run: Path, state: dict[str, Any], identity: dict[str, Any]) -> None:
    """The base model is the one the run started with."""
    recorded = (state.get("base") or {}).get("sha256")
    if recorded and recorded != identity["base"]["sha256"]:
        raise FrostlineError(f"the base model {identity['config']['model']!r} changed since the run in {run} "
                             "started (its weights hash differs); restore it, or start a new run with another --out")
