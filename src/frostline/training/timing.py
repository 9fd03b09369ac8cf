"""Wall time per phase of an epoch (the engine's ``history[].timing``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class Clock:
    """Wall time per phase of an epoch (synchronising CUDA so GPU work is counted where it happens)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = torch.device(device).type == "cuda"
        self.spent: dict[str, float] = {}

    def reset(self) -> None:
        """Start a new epoch."""
        self.spent = {}

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        if self.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.spent[phase] = self.spent.get(phase, 0.0) + time.perf_counter() - t0

    def totals(self) -> dict[str, float]:
        """Seconds per phase, rounded."""
        return {k: round(v, 4) for k, v in self.spent.items()}
