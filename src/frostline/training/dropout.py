"""Dropout masks drawn fast on a CPU, from a counter-based stream: the same Bernoulli, a third of the time.

PyTorch draws a CPU dropout mask one element at a time from its global Mersenne Twister (``bernoulli_``, pytorch
issue #138199): on this 2-core machine one ``nn.Dropout`` over a (32, 40, 384) bf16 activation took 4.5-6.7 ms, and
MiniLM's dropout modules took 1.08 s of a 1.76 s training-mode forward epoch (350 SMS messages, bf16; 0.68 s with
their ``p`` set to 0). While frostline's loop trains on a CPU, each ``nn.Dropout`` in train mode instead keeps an
element where a 16-bit lane of a PCG64 draw is at least ``round(p * 65536)`` (64 random bits give four lanes:
1.5 ms for the same activation) and scales kept ones by ``65536 / (65536 - round(p * 65536))``, so each element
is kept with probability ``1 - p`` (to 1/65536) and the expectation is unchanged, as PyTorch's dropout does.

The stream is keyed by (seed, rank, epoch, step, call within the step), not by a global generator's state: a resumed
run draws the masks it would have drawn, every rank of a distributed run draws its own, and the global generator is
left alone. A module in eval mode, on another device, with ``p`` 0 or 1, or a subclass (``Dropout2d``, ...) runs
PyTorch's own dropout. ``--dropout-masks torch`` (``dropout_masks="torch"``) keeps PyTorch's for every module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

LANES = 65536  # a mask lane is 16 random bits


def mask(shape: torch.Size, p: float, key: list[int]) -> tuple[torch.Tensor, float]:
    """Keep (bool, ``shape``) with probability ``1 - p`` per element from the PCG64 stream ``key``, and the scale
    that keeps the expectation: ``LANES / (LANES - round(p * LANES))``."""
    n = int(np.prod(shape)) if len(shape) else 1
    drop = min(round(p * LANES), LANES - 1)
    words = np.random.Generator(np.random.PCG64(key)).bit_generator.random_raw((n + 3) // 4)
    keep = words.view(np.uint16)[:n] >= drop
    return torch.from_numpy(keep).view(shape), LANES / (LANES - drop)


class FastDropout:
    """Replaces the forward of a model's ``nn.Dropout`` modules while active (see the module notes)."""

    def __init__(self, model: nn.Module, seed: int, rank: int = 0, masks: str = "fast") -> None:
        self.modules = [m for m in model.modules() if type(m) is nn.Dropout] if masks == "fast" else []
        self.seed, self.rank = seed % 2**63, rank
        self.epoch, self.step, self.calls = 0, 0, 0

    def at(self, step: int) -> None:
        """Key the next masks by the optimizer step about to run."""
        self.step, self.calls = step, 0

    @contextmanager
    def active(self, epoch: int) -> Iterator[None]:
        """Draw the masks of ``epoch`` fast for the duration of the block."""
        self.epoch = epoch
        for m in self.modules:
            m.forward = self._forward_of(m)  # an instance attribute: nn.Module calls it instead of the class's
        try:
            yield
        finally:
            for m in self.modules:
                m.__dict__.pop("forward", None)

    def _forward_of(self, m: nn.Dropout) -> Any:
        def forward(x: torch.Tensor) -> torch.Tensor:
            if not m.training or not 0 < m.p < 1 or x.device.type != "cpu" or not x.is_floating_point():
                return nn.functional.dropout(x, m.p, m.training, m.inplace)
            self.calls += 1
            keep, scale = mask(x.shape, m.p, [self.seed, self.rank, self.epoch, self.step, self.calls])
            return torch.mul(x, keep).mul_(scale)

        return forward
