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


#: A module output's structure per sample: ("tensor", shape without the batch dim, dtype), ("seq", type, items),
#: or ("none",).
Shape = tuple[Any, ...]


def shape_of(value: Any, batch: int) -> Shape:
    """The structure of a module's output with the batch dimension left out (``ValueError``: not replayable)."""
    if isinstance(value, torch.Tensor):
        if value.dim() == 0 or value.shape[0] != batch:
            raise ValueError(f"an output of shape {tuple(value.shape)} has no leading batch dimension of {batch}")
        return ("tensor", tuple(value.shape[1:]), value.dtype)
    if isinstance(value, tuple | list):
        return ("seq", type(value), tuple(shape_of(v, batch) for v in value))
    if value is None:
        return ("none",)
    raise ValueError(f"an output of type {type(value).__name__} cannot be replayed")


def _meta(shape: Shape, batch: int) -> Any:
    if shape[0] == "tensor":
        return torch.empty((batch, *shape[1]), dtype=shape[2], device="meta")
    if shape[0] == "seq":
        items = [_meta(s, batch) for s in shape[2]]
        return items if shape[1] is list else tuple(items)
    return None


def _batch_of(args: tuple, kwargs: dict) -> int:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return int(value.shape[0])
    raise RuntimeError("a replayed module was called without a batched tensor")


@dataclass
class Replay:
    """Skip a frozen prefix inside the model's own forward: each prefix module returns tensors on the ``meta``
    device, shaped as its real output (no memory, no arithmetic), so whatever the forward does between modules
    (activations, padding, residual sums, drop-connect rates from a block's index) runs on shapes alone; the
    boundary module's input is then replaced by the cached activations, and everything after it runs for real.

    For models whose forward does work between its modules (EfficientNet: ``swish(bn0(conv_stem(x)))``, blocks
    called with their index), where cutting the block stack (:class:`Edit`) would change what the blocks compute.
    """

    boundary: str
    shapes: dict[str, Shape]

    def describe(self) -> str:
        """One line for logs."""
        return f"{len(self.shapes)} prefix modules replayed on the meta device, cache -> input of {self.boundary}"


@contextmanager
def replayed(model: nn.Module, replay: Replay) -> Iterator[Stub]:
    """Apply ``replay`` for the duration of the block; yields the stub whose ``value`` feeds the boundary."""
    stub = Stub()
    patched: list[nn.Module] = []

    def fake(shape: Shape) -> Any:
        def forward(*args: Any, **kwargs: Any) -> Any:
            return _meta(shape, _batch_of(args, kwargs))

        return forward

    def feed(_m: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        if stub.value is None:
            raise RuntimeError("cache replay without a cached batch")
        if args and isinstance(args[0], torch.Tensor):
            return (stub.value, *args[1:]), kwargs
        key = next(k for k, v in kwargs.items() if isinstance(v, torch.Tensor))
        return args, {**kwargs, key: stub.value}

    handle = get_module(model, replay.boundary).register_forward_pre_hook(feed, with_kwargs=True)
    try:
        for path, shape in replay.shapes.items():
            module = get_module(model, path)
            module.forward = fake(shape)  # type: ignore[method-assign]
            patched.append(module)
        yield stub
    finally:
        handle.remove()
        for module in patched:
            del module.forward
