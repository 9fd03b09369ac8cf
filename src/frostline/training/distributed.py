"""One process of a distributed run on Lightning Fabric: launch, rank, shards of a global batch, gathering.

``frostline train --devices 2`` launches the other local processes itself (Fabric's launcher runs the same
command again with a rank in its environment); ``torchrun`` or ``fabric run`` start every process of a multi-node
run, and Fabric reads the ranks from their environment. Every rank runs the same code on the same data: each
global batch is cut into one slice per rank, gradients are averaged by DDP, and validation batches are dealt out
to the ranks and their predictions gathered, so every rank holds the same predictions and metrics. Only rank 0
writes (:func:`frostline.core.atomic.set_writes`).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core.atomic import set_writes
from ..core.errors import FrostlineError
from ..data.batching import Batch

#: the strategies ``--distributed`` accepts
STRATEGIES = ("auto", "ddp", "fsdp")


@dataclass
class Dist:
    """This process's place in a distributed run."""

    fabric: Any
    rank: int
    world: int
    key: tuple[Any, ...]

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes and prints."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every rank."""
        self.fabric.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` from every rank, in rank order (any picklable value)."""
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out


_CURRENT: Dist | None = None


def current() -> Dist | None:
    """The distributed run this process belongs to, or ``None`` on one process."""
    return _CURRENT


def check(devices: int, num_nodes: int, strategy: str, accelerator: str) -> None:
    """Clear errors for settings Fabric would take badly."""
    if not isinstance(devices, int) or devices < 1:
        raise FrostlineError(f"--devices must be a whole number >= 1, got {devices!r}")
    if not isinstance(num_nodes, int) or num_nodes < 1:
        raise FrostlineError(f"--num-nodes must be a whole number >= 1, got {num_nodes!r}")
    if strategy not in STRATEGIES:
        raise FrostlineError(f"--distributed must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if strategy == "fsdp" and accelerator == "cpu":
        raise FrostlineError("--distributed fsdp needs CUDA GPUs; on CPUs use ddp (the gloo backend)")


def launch(accelerator: str, devices: int, num_nodes: int, strategy: str, precision: str) -> Dist | None:
    """Start (or join) the distributed run; ``None`` when it is one process. Idempotent within a process.

    On ranks other than 0, writes are turned off and standard output is discarded (rank 0 reports).
    """
    global _CURRENT
    check(devices, num_nodes, strategy, accelerator)
    if devices * num_nodes == 1 and strategy == "auto":
        return None
    key = (accelerator, devices, num_nodes, strategy, precision)
    if _CURRENT is not None:
        if _CURRENT.key != key:
            raise FrostlineError(f"this process already runs distributed as {_CURRENT.key}; one process group per "
                                 f"process, so {key} needs a new process")
        return _CURRENT
    from lightning_fabric import Fabric

    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)
    chosen: Any = strategy
    if strategy in ("auto", "ddp"):
        from lightning_fabric.strategies import DDPStrategy

        # buffers are not broadcast from rank 0 at every forward: frozen BatchNorm is pinned (its statistics do
        # not move), and the frozen-prefix cache takes modules out of the forward pass
        chosen = DDPStrategy(forward_sync_buffers=False)
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=chosen,
                    precision=precision)  # type: ignore[arg-type]
    fabric.launch()
    _CURRENT = Dist(fabric, fabric.global_rank, fabric.world_size, key)
    if fabric.global_rank != 0:
        set_writes(False)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    return _CURRENT


def take(batch: Batch, idx: np.ndarray) -> Batch:
    """The rows ``idx`` of ``batch``."""
    t = torch.as_tensor(idx, dtype=torch.long)
    if isinstance(batch.inputs, dict):
        inputs: Any = {k: v[t] for k, v in batch.inputs.items()}
        mask = inputs.get("attention_mask")
        if mask is not None and mask.dim() == 2 and len(idx):  # padded to the slice's longest, as if batched alone
            length = int(mask.sum(dim=1).max())
            inputs = {k: v[:, :length] if v.dim() == 2 and v.shape[1] == mask.shape[1] else v
                      for k, v in inputs.items()}
    else:
        inputs = batch.inputs[t]
    return Batch(inputs, batch.labels[t], batch.positions[idx])


def shard(batch: Batch, dist: Dist) -> tuple[Batch, float]:
    """This rank's slice of a global batch, and the factor that makes DDP's average equal the global mean.

    A rank whose slice is empty (a last batch smaller than the world) runs one sample with weight 0, so that every
    rank takes part in the gradient all-reduce.
    """
    n = len(batch.labels)
    idx = np.arange(dist.rank, n, dist.world)
    if len(idx) == 0:
        return take(batch, np.array([0])), 0.0
    return take(batch, idx), len(idx) * dist.world / n


def gather_epoch(dist: Dist, preds: np.ndarray, positions: np.ndarray, loss_sum: float, seen: int,
                 ) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Every rank's training predictions, positions, loss sum and count, put together."""
    parts = dist.gather((preds, positions, loss_sum, seen))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            float(sum(p[2] for p in parts)), int(sum(p[3] for p in parts)))
