"""Scoring passes that share an unchanged body: the head's inputs are kept per split and reused.

A run scores the same splits several times: the base model (pretrained body, new head) on validation and test, then
the kept epoch on both, and the kept epoch on train when a gap needs evidence. After a linear probe the body is the
base model's, byte for byte, so only the head changed: its inputs are captured on the first pass (a forward
pre-hook on the head) and a later pass runs the head alone on them. Kept per split and autocast dtype, and reused
only while every tensor outside the head has the same CRC-32 checksum as when they were captured (anything that
trained the body, or loaded other weights, scores in full again). A model whose output is not its head's output
(something runs after the head), a head input that is not one tensor per sample of a fixed shape, or more than
:data:`BUDGET_MB` of them, are not kept: those passes run in full, as before.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.batching import Encoded
from ..freezing.verify import checksums
from ..models.tree import is_within

#: the most head inputs kept for one split
BUDGET_MB = 512


def autocast_key() -> str:
    """The autocast dtype in effect (``"fp32"`` when none): inputs captured under one are not reused under another."""
    for device in ("cpu", "cuda"):
        if torch.is_autocast_enabled(device):
            return f"{device}:{torch.get_autocast_dtype(device)}"
    return "fp32"


@dataclass
class _Entry:
    data: weakref.ReferenceType[Encoded]
    digest: tuple[tuple[str, str], ...]
    inputs: torch.Tensor  # (samples, ...) in dataset order


class HeadInputs:
    """The head's inputs per (split, autocast dtype), reused while the body is unchanged (see the module notes)."""

    def __init__(self, model: nn.Module, head: str) -> None:
        self.model, self.head = model, head
        self.entries: dict[tuple[int, str], _Entry] = {}
        self.usable = True
        self.hits = 0
        self._digest: tuple[tuple[str, str], ...] | None = None  # the body's, taken by the last lookup

    def body_digest(self) -> tuple[tuple[str, str], ...]:
        """Checksums of every parameter and buffer outside the head."""
        tensors = {n: t for n, t in [*self.model.named_parameters(), *self.model.named_buffers()]
                   if not is_within(n, self.head)}
        return tuple(sorted(checksums(tensors).items()))

    def lookup(self, data: Encoded, count: bool = True) -> torch.Tensor | None:
        """The kept head inputs of ``data`` if the body has not changed since they were captured (``count``: a
        scoring pass that reuses them, counted in :attr:`hits`)."""
        self._digest = None
        entry = self.entries.get((id(data), autocast_key()))
        if not self.usable or entry is None or entry.data() is not data:
            return None
        self._digest = self.body_digest()  # one checksum per pass: :meth:`keep` reuses it after a miss
        if entry.digest != self._digest:
            return None
        self.hits += int(count)
        return entry.inputs

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The head alone on kept inputs."""
        return self.model.get_submodule(self.head)(inputs)  # a tensor: only such heads' inputs are kept

    def capture(self) -> Capture:
        """A context that records the head's inputs and outputs of a full pass (see :meth:`keep`)."""
        return Capture(self.model.get_submodule(self.head))

    def keep(self, data: Encoded, capture: Capture) -> None:
        """Keep a full pass's head inputs, in dataset order, if the model's logits were its head's outputs."""
        if not self.usable or not capture.inputs:
            return
        if not capture.faithful:
            self.usable = False  # something runs after the head: never reuse its inputs on this model
            return
        order = np.argsort(np.concatenate(capture.positions))
        x = torch.cat(capture.inputs)[torch.as_tensor(order)]
        self.entries = {k: e for k, e in self.entries.items() if e.data() is not None}
        digest = self._digest if self._digest is not None else self.body_digest()
        self.entries[(id(data), autocast_key())] = _Entry(weakref.ref(data), digest, x)


class Capture:
    """Forward hooks on the head for one pass: its inputs per batch, and whether the logits were its outputs."""

    def __init__(self, head: nn.Module) -> None:
        self.head = head
        self.inputs: list[torch.Tensor] | None = []
        self.positions: list[np.ndarray] = []
        self.faithful = True
        self.nbytes = 0
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None
        self._handles: list[Any] = []

    def __enter__(self) -> Capture:
        self._handles = [self.head.register_forward_hook(self._hook)]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()

    def _hook(self, _m: nn.Module, args: tuple, out: Any) -> None:
        x = args[0] if len(args) == 1 and isinstance(args[0], torch.Tensor) else None
        if x is None or not isinstance(out, torch.Tensor) or self._last is not None:
            self.inputs = None  # called with several inputs, or twice in one batch: not a head on one tensor
            return
        self._last = (x.detach(), out.detach())

    def batch(self, positions: np.ndarray, logits: torch.Tensor) -> None:
        """After a batch's forward pass: take what the head saw, check the model returned what the head gave."""
        last, self._last = self._last, None
        if self.inputs is None:
            return
        if last is None or last[0].shape[0] != len(positions) or (self.inputs and
                                                                  last[0].shape[1:] != self.inputs[0].shape[1:]):
            self.inputs = None
            return
        if not torch.equal(last[1].float(), logits.float()):
            self.faithful = False
        self.nbytes += last[0].numel() * last[0].element_size()
        if self.nbytes > BUDGET_MB * 2**20:  # too many to keep: stop holding them now, not after the pass
            self.inputs = None
            return
        self.inputs.append(last[0].cpu())
        self.positions.append(positions)
