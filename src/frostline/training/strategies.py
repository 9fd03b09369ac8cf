"""Fine-tuning strategies: plain objects that say, for each epoch, what trains and at which learning rate.

A model is cut into *parts* from input to output (see :func:`model_parts`): ``stem``, ``block 0`` ..
``block N-1``, ``post`` and ``head``. A strategy's :meth:`~Strategy.plan` returns the trainable
:class:`Group` s of one epoch; everything else is frozen (BatchNorm and dropout in frozen parts pinned to
eval mode). The engine adds a group to the optimizer the first epoch it appears, with its own learning rate,
and the scheduler drives it from then on.

==========================  ==========================================================================
``linear-probe``            the head only
``partial:N``               the last N blocks, ``post`` and the head; the stem (embeddings) stays frozen
``full``                    everything
``gradual``                 ULMFiT: the head first, then one more part per epoch, top down
``discriminative[:F]``      everything, learning rate times F per part below the top (default F=0.8)
``lp-ft[:K]``               linear probe for K epochs (default 1), then everything at the body rate
``surgical:SELECTOR``       only what SELECTOR matches (e.g. ``surgical:blocks:0-1``), plus the head
==========================  ==========================================================================

Parameter-efficient strategies (``lora``, ``ia3``, ``bitfit``) are in :mod:`frostline.training.adapted`.

Strategies that measure before they freeze (``surgical:auto``, ``mask:fisher``, ``auto-freeze``) are in
:mod:`frostline.training.auto`.
"""

from __future__ import annotations

from torch import nn

from ..core.errors import FrostlineError, did_you_mean
from ..freezing.importance import check_score
from ..freezing.select import resolve_params
from ..models.parts import Part
from .adapted import KINDS as ADAPTED_KINDS
from .adapted import parse_adapted
from .auto import parse_auto
from .plans import EpochPlan, Group, Strategy

STRATEGY_NAMES = ("linear-probe", "partial", "full", "gradual", "discriminative", "lp-ft", "surgical", "auto-freeze",
                  "mask", "lora", "ia3", "bitfit")


class LinearProbe(Strategy):
    """Train the head only."""

    name = "linear-probe"

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        return EpochPlan((self._head(parts, head_lr),), "head only")


class Partial(Strategy):
    """Train the last ``n`` blocks, ``post`` and the head."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.name = f"partial:{n}"

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        blocks = [p for p in parts if p.name.startswith("block ")]
        if self.n > len(blocks):
            raise FrostlineError(f"strategy {self.name!r} needs {self.n} blocks but the model has {len(blocks)}")
        chosen = blocks[len(blocks) - self.n :] + [p for p in parts if p.name == "post"]
        groups = tuple(Group(p.name, p.params, lr) for p in chosen)
        return EpochPlan((*groups, self._head(parts, head_lr)), f"last {self.n} blocks + head")


class Full(Strategy):
    """Train everything."""

    name = "full"

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        groups = tuple(Group(p.name, p.params, lr) for p in self._body(parts))
        return EpochPlan((*groups, self._head(parts, head_lr)), "everything")


class Gradual(Strategy):
    """ULMFiT gradual unfreezing: head first, then one more part per epoch from the top."""

    name = "gradual"

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        body = self._body(parts)
        # "post" (pooler, final norm) opens together with the last block.
        units: list[list[Part]] = []
        for p in reversed(body):
            if units and units[-1][-1].name == "post":
                units[-1].append(p)
            else:
                units.append([p])
        opened = [p for unit in units[:epoch] for p in unit]
        groups = tuple(Group(p.name, p.params, lr) for p in reversed(opened))
        note = "head only" if not opened else f"head + {len(opened)} part{'s' if len(opened) > 1 else ''}"
        return EpochPlan((*groups, self._head(parts, head_lr)), note)


class Discriminative(Strategy):
    """Everything trains; each part below the top gets ``factor`` times the rate of the part above."""

    def __init__(self, factor: float = 0.8) -> None:
        self.factor = factor
        self.name = f"discriminative:{factor:g}"

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        body = self._body(parts)
        groups: list[Group] = []
        depth = 0
        for p in reversed(body):
            groups.append(Group(p.name, p.params, lr * self.factor**depth))
            if p.name != "post":  # post shares the rate of the last block
                depth += 1
        return EpochPlan((*reversed(groups), self._head(parts, head_lr)), f"layer-wise decay {self.factor:g}")


class LPFT(Strategy):
    """Linear probe for ``k`` epochs, then full fine-tuning with every part (head too) at the body rate."""

    def __init__(self, k: int = 1) -> None:
        self.k = k
        self.name = f"lp-ft:{k}"

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        if epoch < self.k:
            return EpochPlan((self._head(parts, head_lr),), "linear probe")
        return EpochPlan(tuple(Group(p.name, p.params, lr) for p in parts), "full fine-tuning")


class Surgical(Strategy):
    """Only what a selector matches, plus the head."""

    def __init__(self, selector: str, model: nn.Module) -> None:
        self.selector = selector
        self.name = f"surgical:{selector}"
        self.selected = set(resolve_params(model, [selector]))

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        groups = []
        for p in self._body(parts):
            chosen = tuple(n for n in p.params if n in self.selected)
            if chosen:
                groups.append(Group(p.name, chosen, lr))
        return EpochPlan((*groups, self._head(parts, head_lr)), f"{self.selector} + head")


def _number(text: str, kind: type, spec: str, expected: str) -> float | int:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value <= 0:
        raise FrostlineError(f"bad strategy {spec!r}: expected {expected}")
    return value


def check_strategy_spec(spec: str) -> str:
    """Validate a strategy's form without a model (``surgical:`` selectors are resolved once the model loads)."""
    if isinstance(spec, str) and spec.strip().partition(":")[0] == "surgical":
        arg = spec.strip().partition(":")[2]
        if arg.partition(":")[0] == "auto":  # K is checked against the model's blocks once it loads
            k_text, _, score = arg.partition(":")[2].partition(":")
            if k_text and (not k_text.isdigit() or int(k_text) < 1):
                raise FrostlineError(f"bad strategy {spec.strip()!r}: expected 'surgical:auto[:K[:SCORE]]' with K >= 1 "
                                     "blocks, e.g. surgical:auto:2 or surgical:auto:2:fisher")
            if score:
                check_score(score)
            return spec.strip()
        if not arg:
            raise FrostlineError("strategy 'surgical' needs a selector, e.g. surgical:blocks:0-1 or surgical:stem")
        return spec.strip()
    return str(parse_strategy(spec))


def parse_strategy(spec: str, model: nn.Module | None = None) -> Strategy:
    """Build a strategy from its name, e.g. ``"partial:2"``, ``"discriminative:0.7"``, ``"surgical:blocks:0"``.

    Args:
        spec: The strategy as typed.
        model: Needed by ``surgical:`` to resolve its selector.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise FrostlineError(f"a strategy must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if kind == "linear-probe" and not arg:
        return LinearProbe()
    if kind == "full" and not arg:
        return Full()
    if kind == "gradual" and not arg:
        return Gradual()
    if kind == "partial":
        return Partial(int(_number(arg, int, spec, "'partial:N' with N >= 1 blocks, e.g. partial:2")))
    if kind == "discriminative":
        factor = _number(arg, float, spec, "'discriminative:F' with 0 < F <= 1") if arg else 0.8
        if factor > 1:
            raise FrostlineError(f"bad strategy {spec!r}: the decay factor must be in (0, 1], got {factor}")
        return Discriminative(float(factor))
    if kind == "lp-ft":
        return LPFT(int(_number(arg, int, spec, "'lp-ft:K' with K >= 1 linear-probe epochs")) if arg else 1)
    if kind in ("auto-freeze", "mask") or (kind == "surgical" and arg.partition(":")[0] == "auto"):
        return parse_auto(kind, arg, spec, model)
    if kind in ADAPTED_KINDS:
        return parse_adapted(kind, arg, spec, model)
    if kind == "surgical":
        if not arg:
            raise FrostlineError("strategy 'surgical' needs a selector, e.g. surgical:blocks:0-1 or surgical:stem")
        if model is None:
            raise FrostlineError("strategy 'surgical' needs the model to resolve its selector")
        return Surgical(arg, model)
    raise FrostlineError(
        f"unknown strategy {spec!r}; expected one of linear-probe, partial:N, full, gradual, discriminative[:F], "
        f"lp-ft[:K], surgical:SELECTOR, surgical:auto[:K[:SCORE]], auto-freeze[:I], mask:fisher:P, "
        f"lora[:r=R][:alpha=A][:dropout=P][:blocks=SEL][:targets=NAMES], lora:auto[:K], ia3[:blocks=SEL], bitfit"
        f"{did_you_mean(kind, STRATEGY_NAMES)}"
    )
