"""Temporary, reversible edits that make a model skip its frozen prefix and start from cached activations.

A :class:`Stub` stands where the prefix starts and returns the cached tensor of the current batch; modules of
the prefix that would still run after it become ``nn.Identity``; a ``ModuleList`` / ``Sequential`` stack is
replaced by one holding only its trainable tail. The model's own ``forward`` then runs unchanged, so masks,
pooling, dropout and the head behave exactly as in a full pass. Parameters are never copied: the tail holds the
same block objects, so the optimizer and the checkpoint see the same tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..models.tree import get_module, set_module


class Stub(nn.Module):
    """Returns ``value`` whatever it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.value: torch.Tensor | None = None

    def forward(self, *_args: Any, **_kwargs: Any) -> torch.Tensor:
        if self.value is None:
            raise RuntimeError("cache stub called without a cached batch")
        return self.value


@dataclass
class Edit:
    """One model edit: ``stub`` (a path becomes the stub), ``identity`` (paths become Identity) and ``tails``
    (container path -> index of its first child to keep)."""

    stub: str | None = None
    prepend_stub: str | None = None
    identity: list[str] = field(default_factory=list)
    tails: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for logs."""
        parts = []
        if self.stub:
            parts.append(f"{self.stub} -> cache")
        if self.prepend_stub:
            parts.append(f"cache -> {self.prepend_stub}")
        parts += [f"{c}[{i}:]" for c, i in self.tails.items()]
        if self.identity:
            parts.append(f"{len(self.identity)} prefix modules skipped")
        return ", ".join(parts)


@contextmanager
def edited(model: nn.Module, edit: Edit) -> Iterator[Stub]:
    """Apply ``edit`` to ``model`` for the duration of the block; yields the stub to fill per batch."""
    stub = Stub()
    originals: list[tuple[str, nn.Module]] = []

    def swap(path: str, new: nn.Module) -> None:
        originals.append((path, get_module(model, path)))
        set_module(model, path, new)

    try:
        for path, start in edit.tails.items():
            container = get_module(model, path)
            kept = list(container.children())[start:]
            if edit.prepend_stub == path:
                kept = [stub, *kept]
            tail = nn.Sequential(*kept) if isinstance(container, nn.Sequential) else nn.ModuleList(kept)
            swap(path, tail)  # the same block objects: no parameter is copied
        if edit.stub:
            swap(edit.stub, stub)
        for path in edit.identity:
            swap(path, nn.Identity())
        yield stub
    finally:
        for path, module in reversed(originals):
            set_module(model, path, module)
