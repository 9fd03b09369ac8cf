"""Frozen-prefix cache: compute the frozen part's output once, train the trainable suffix on it every epoch.

When the frozen part of the model is a prefix (stem and the first blocks, or everything but the head) and is
deterministic (its BatchNorm and dropout pinned to eval mode), the input of the first trainable module is
captured once per sample under ``torch.inference_mode`` and reused by later epochs. Three layouts are known:

* a ``ModuleList`` / ``Sequential`` stack (Hugging Face ``encoder.layer``, ``encoder.stages``, ``features``):
  the stem returns the cached hidden states (text: per token, with the real attention mask) and the stack is
  cut to its trainable tail;
* numbered stages called one by one (torchvision ResNet ``layer1..4``): the modules before the first trainable
  stage are skipped and the first returns the cache;
* everything frozen but the head: the head is trained on cached features, with the dropout Hugging Face applies
  just before it.

A model whose forward does work between its modules (EfficientNet: an activation after the stem's BatchNorm, blocks
called with their index for drop-connect) is not reproduced by cutting its stack; when the self-check shows it, the
same cache is replayed instead (:class:`~frostline.training.surgery.Replay`): the prefix modules return empty
``meta`` tensors of their real shapes, the forward's own glue runs on shapes alone, and the first trainable module
receives the cached activations.

Before a cache is used, a self-check compares the cached path with a full forward pass on a few samples (eval
mode); any difference, an unknown layout, a stochastic frozen module or a plan without a frozen prefix falls
back to the plain loop with a one-line reason. Activations are kept in memory up to ``budget_mb`` and
memory-mapped from a temporary file beyond it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.batching import Batch, Encoded
from ..freezing.plan import is_pinned
from ..models.blocks import Blocks
from ..models.outputs import logits_of
from ..models.parts import Part
from ..models.tree import DROPOUTS, has_running_stats, is_within
from .store import ActivationStore
from .surgery import Edit, Replay, Shape, Stub, edited, replayed, shape_of


class _Stop(Exception):
    """Raised by the capture hook: the rest of the forward pass is not needed."""


@dataclass(frozen=True)
class CachePlan:
    """Where the prefix ends and how the suffix runs from the cache."""

    boundary: str  # the first trainable module: its input is cached
    kind: str  # "stack" (model forward with an edit or a replay) or "head" (head on cached features)
    edit: Edit | None = None
    dropouts: tuple[str, ...] = ()
    prefix: tuple[str, ...] = ()  # the frozen modules before the boundary (stem and blocks), input to output
    replay: Replay | None = None

    def describe(self) -> str:
        """One line for logs."""
        how = (self.replay.describe() if self.replay else self.edit.describe() if self.edit
               else "head on cached features")
        return f"input of {self.boundary} cached ({how})"


def _child_paths(model: nn.Module, container: str) -> list[str]:
    module = model.get_submodule(container) if container else model
    return [f"{container}.{c}" if container else c for c, _ in module.named_children()]


def plan_cache(model: nn.Module, parts: list[Part], trainable: set[str], layout: Blocks,
               head: str) -> CachePlan | str:
    """Decide whether a frozen-prefix cache is valid for this plan; a string is the reason it is not."""
    first = next((i for i, p in enumerate(parts) if set(p.params) & trainable), None)
    if first is None:
        return "nothing trains"
    if first == 0:
        return "no frozen prefix (the first part of the model trains)"
    prefix_paths = [*layout.stem]
    block_index = {f"block {i}": i for i in range(len(layout.blocks))}
    name = parts[first].name
    if name in block_index:
        k = block_index[name]
        boundary = layout.blocks[k]
        prefix_paths += list(layout.blocks[:k])
    elif name == "post":
        boundary = layout.post[0]
        prefix_paths += list(layout.blocks)
    elif name == "head":
        boundary = head
        prefix_paths += [*layout.blocks, *layout.post]
    else:
        return f"the first trainable part {name!r} is not a block, post or head"
    if any(set(p.params) & trainable for p in parts[:first]):
        return "the frozen part is not a prefix"
    reason = _stochastic(model, prefix_paths, head if name == "head" else None)
    if reason:
        return reason
    if name == "head":
        drops = tuple(n for n, m in model.named_children() if isinstance(m, DROPOUTS) and not is_pinned(m))
        return CachePlan(boundary, "head", dropouts=drops)
    return CachePlan(boundary, "stack", edit=_stack_edit(model, layout, boundary, name == "post"),
                     prefix=tuple(prefix_paths))


def _stochastic(model: nn.Module, prefix_paths: list[str], head: str | None) -> str | None:
    for n, m in model.named_modules():
        active = (isinstance(m, DROPOUTS) and m.p > 0) or has_running_stats(m)
        if not active or is_pinned(m):
            continue
        in_prefix = any(is_within(n, p) for p in prefix_paths)
        # Before the head, only Hugging Face's root-level dropout may stay active (it is applied to the cache).
        before_head = head is not None and not is_within(n, head) and "." in n
        if in_prefix or before_head:
            return f"{type(m).__name__} {n!r} in the frozen part is stochastic (train mode): results would change"
    return None


def _stack_edit(model: nn.Module, layout: Blocks, boundary: str, after_stack: bool) -> Edit:
    container = layout.container
    module = model.get_submodule(container) if container else model
    edit = Edit()
    # a stem module registered after the stack (MPNet's shared position bias) feeds the trainable blocks too: it
    # stays live (frozen, called as before), never the stub nor skipped
    order = {n: i for i, (n, _) in enumerate(model.named_modules())}
    stem = [s for s in layout.stem if order[s] < order[layout.blocks[-1]]]
    if isinstance(module, nn.ModuleList | nn.Sequential):
        names = _child_paths(model, container)
        last_block = names.index(layout.blocks[-1])
        edit.tails[container] = last_block + 1 if after_stack else names.index(boundary)
        if stem:
            edit.stub, edit.identity = stem[0], list(stem[1:])
        else:
            edit.prepend_stub = container
        return edit
    children = _child_paths(model, container)
    cut = max(children.index(b) for b in layout.blocks) + 1 if after_stack else children.index(boundary)
    before = children[:cut]
    chain = [*[s for s in stem if s not in before], *before]
    edit.stub, edit.identity = chain[0], chain[1:]
    return edit


def _first_tensor(args: tuple, kwargs: dict) -> torch.Tensor:
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    for value in kwargs.values():
        if isinstance(value, torch.Tensor):
            return value
    raise RuntimeError("the boundary module was called without a tensor input")  # pragma: no cover


def rows_of(args: tuple) -> int:
    """The batch size of a module call: the leading dimension of its first tensor argument."""
    first = next((a for a in args if isinstance(a, torch.Tensor) and a.dim() > 0), None)
    return int(first.shape[0]) if first is not None else -1


def _lengths(batch: Batch, acts: torch.Tensor) -> np.ndarray | None:
    if isinstance(batch.inputs, dict) and "attention_mask" in batch.inputs and acts.dim() >= 3:
        mask = batch.inputs["attention_mask"]
        if acts.shape[1] == mask.shape[1]:
            return mask.sum(dim=1).cpu().numpy()
    return None


class PrefixCache:
    """Owns the cache of a run: builds it when the plan allows, rebuilds when the boundary moves, runs batches."""

    def __init__(self, model: nn.Module, parts: list[Part], layout: Blocks, head: str, budget_mb: float = 2048,
                 autocast: Callable[[], Any] = nullcontext, precision: str = "32-true") -> None:
        self.model, self.parts, self.layout, self.head = model, parts, layout, head
        self.budget = int(budget_mb * 2**20)
        self.autocast = autocast
        #: under bf16 autocast the cache holds bfloat16 (what the trainable part computes in) and its self-check
        #: allows bfloat16's rounding
        self.low = precision.startswith("bf16")
        self._stub: Stub | None = None
        self.plan: CachePlan | None = None
        self.stores: dict[str, ActivationStore] = {}
        self.status = "plain loop"
        self.build_seconds = 0.0
        self._shapes: dict[str, Shape] | str = {}  # the prefix modules' output shapes (for a replay), or why not

    def update(self, trainable: set[str], data: dict[str, Encoded], fwd: Callable[[Any], Any],
               batch_size: int | dict[str, int], device: torch.device) -> str:
        """Make the cache match the plan: keep it, rebuild it for a new boundary, or drop it (with the reason).

        ``batch_size`` may differ per split: building each split at the batch size it is used with keeps the
        cached values bit-identical to a full pass where kernels depend on the batch size.
        """
        plan = plan_cache(self.model, self.parts, trainable, self.layout, self.head)
        augment = getattr(data["train"], "augment", None)
        if augment is not None and not isinstance(plan, str):
            head_only = plan.kind == "head"
            plan = f"training images are augmented ({augment.describe()}): the frozen part sees new inputs every epoch"
            if head_only:
                plan += ("; so the head trains by gradient steps for --epochs, NOT the converged linear probe fit "
                         "(leave out --augment for the exact probe)")
        if isinstance(plan, str):
            self._drop()
            self.status = f"plain loop: {plan}"
            return self.status
        if self.plan is not None and plan.boundary == self.plan.boundary:
            self.status = f"cache reused: {plan.describe()}"
            return self.status
        self._drop()
        t0 = time.perf_counter()
        for name, enc in data.items():
            size = batch_size[name] if isinstance(batch_size, dict) else batch_size
            self.stores[name] = self._build(plan, enc, fwd, size, device)
        self.build_seconds = time.perf_counter() - t0
        self.plan = plan
        problem = self._self_check(data["train"], fwd, device)
        if problem and plan.edit is not None:  # the forward does work between modules: replay instead of cutting
            if isinstance(self._shapes, str):
                problem += f"; a replay is not possible ({self._shapes})"
            else:
                self.plan = replace(plan, edit=None, replay=Replay(plan.boundary, self._shapes))
                second = self._self_check(data["train"], fwd, device)
                problem = f"{problem}; replayed: {second}" if second else None
        if problem:
            self._drop()
            self.status = f"plain loop: {problem}"
            return self.status
        plan = self.plan
        size = sum(st.nbytes for st in self.stores.values()) / 2**20
        kind = "bf16" if any(st.dtype == torch.bfloat16 for st in self.stores.values()) else "fp32"
        where = "memory-mapped on disk" if any(s.on_disk for s in self.stores.values()) else "in memory"
        self.status = f"cache built in {self.build_seconds:.1f}s: {plan.describe()}, {size:.1f} MiB {kind} {where}"
        return self.status

    def _build(self, plan: CachePlan, enc: Encoded, fwd: Callable[[Any], Any], batch_size: int,
               device: torch.device) -> ActivationStore:
        rows = int(enc.lengths.sum()) if enc.lengths is not None else None
        store = ActivationStore(len(enc), self.budget, rows)
        boundary = self.model.get_submodule(plan.boundary)
        captured: dict[str, torch.Tensor] = {}

        def hook(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            captured["x"] = _first_tensor(args, kwargs)
            raise _Stop

        handle = boundary.register_forward_pre_hook(hook, with_kwargs=True)
        shapes: dict[str, Shape] = {}
        failed: list[str] = []

        def record(path: str) -> Callable[[nn.Module, tuple, Any], None]:
            def hook_out(_m: nn.Module, args: tuple, out: Any) -> None:
                try:
                    shapes[path] = shape_of(out, rows_of(args))
                except ValueError as exc:
                    failed.append(f"{path}: {exc}")
            return hook_out

        recorders = ([self.model.get_submodule(p).register_forward_hook(record(p)) for p in plan.prefix]
                     if plan.prefix and not self.stores else [])
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for batch in enc.batches(batch_size, snug=True):
                    batch = batch.to(device)
                    with suppress(_Stop):
                        fwd(batch.inputs)
                    for r in recorders:  # one batch tells the shapes
                        r.remove()
                    recorders = []
                    acts = captured.pop("x")
                    if self.low and acts.is_floating_point():
                        acts = acts.to(torch.bfloat16)
                    store.put(batch.positions, acts, _lengths(batch, acts))
        finally:
            handle.remove()
            for r in recorders:
                r.remove()
            self.model.train(was_training)
        if plan.prefix and not self.stores:
            missing = [p for p in plan.prefix if p not in shapes]
            self._shapes = (failed[0] if failed else f"{missing[0]} was not called before the boundary" if missing
                            else shapes)
        store.finish()
        return store

    def _self_check(self, enc: Encoded, fwd: Callable[[Any], Any], device: torch.device) -> str | None:
        positions = np.arange(min(4, len(enc)))
        batch = enc.batch(positions).to(device)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                full = logits_of(fwd(batch.inputs)).float()
                try:
                    with self.active():
                        cached = self.forward(fwd, batch, "train").float()
                except Exception as exc:  # a layout the edit does not fit: fall back, never crash the run
                    return f"the cached path fails on this model ({type(exc).__name__}: {str(exc)[:80]})"
        finally:
            self.model.train(was_training)
        if cached.shape != full.shape:
            return f"the cached path gives logits of shape {tuple(cached.shape)}, not {tuple(full.shape)}"
        err = (full - cached).abs().max().item()
        tol = (3e-2 if self.low else 1e-4) * max(1.0, full.abs().max().item())  # bf16 keeps 8 bits of mantissa
        if not err <= tol:
            return f"the cached path does not reproduce the model's output (max difference {err:.2e})"
        return None

    @contextmanager
    def active(self) -> Iterator[None]:
        """Apply the model edit or replay (if any) for the duration of the block."""
        if self.plan is None or (self.plan.edit is None and self.plan.replay is None):
            yield
            return
        change = (replayed(self.model, self.plan.replay) if self.plan.replay is not None
                  else edited(self.model, self.plan.edit))  # type: ignore[arg-type]
        with change as stub:
            self._stub = stub
            try:
                yield
            finally:
                self._stub = None

    def forward(self, fwd: Callable[[Any], Any], batch: Batch, split: str) -> torch.Tensor:
        """Logits of ``batch``: from cached activations when a cache for ``split`` exists, else a full pass."""
        store = self.stores.get(split)
        if self.plan is None or store is None:
            return logits_of(fwd(batch.inputs))
        mask = batch.inputs.get("attention_mask") if isinstance(batch.inputs, dict) else None
        width = int(mask.shape[1]) if mask is not None and mask.dim() == 2 else 0
        acts = store.gather(batch.positions, width).to(batch.labels.device, non_blocking=True)
        if self.plan.kind == "head":
            with self.autocast():
                x = acts
                for name in self.plan.dropouts:
                    x = self.model.get_submodule(name)(x)
                return logits_of(self.model.get_submodule(self.plan.boundary)(x))
        stub = self._stub
        if stub is None:
            raise RuntimeError("PrefixCache.forward needs the cache to be active (use `with cache.active():`)")
        stub.value = acts
        try:
            return logits_of(fwd(batch.inputs))
        finally:
            stub.value = None

    def features(self, split: str) -> np.ndarray:
        """Every cached input of the head for ``split``, in dataset order (head-only plans; eval-mode values)."""
        return self.feature_rows(split)[:]

    def feature_rows(self, split: str) -> FeatureRows:
        """The cached inputs of the head for ``split``, read (as float32) only for the rows asked for."""
        store = self.stores.get(split)
        if self.plan is None or self.plan.kind != "head" or store is None:
            raise RuntimeError(f"no cached head features for split {split!r}")
        return FeatureRows(store)

    def _drop(self) -> None:
        for store in self.stores.values():
            store.close()
        self.stores = {}
        self.plan = None
        self._shapes = {}

    def close(self) -> None:
        """Free the cache."""
        self._drop()


class FeatureRows:
    """A split's cached head inputs as a read-only 2-D array that reads rows on demand (``x[rows]``, ``x[a:b]``,
    ``len``, ``shape``): the probe takes them a chunk at a time, never all at once."""

    def __init__(self, store: ActivationStore) -> None:
        self.store = store
        self.shape = (store.n, int(np.prod(store.feature)) if store.feature else 1)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice | np.ndarray) -> np.ndarray:
        index = np.arange(self.shape[0])[rows]
        if not len(index):
            return np.zeros((0, self.shape[1]), np.float32)
        return self.store.gather(index).float().numpy().reshape(len(index), -1)
