"""Parameter-efficient strategies: the base model stays frozen (and checksummed); small added or chosen tensors train.

==========================================  ==========================================================================
``lora[:r=R][:alpha=A][:dropout=P]``        PEFT's LoRA (Hu et al. 2021): rank-R updates scaled by A/R beside the
``[:blocks=SEL][:targets=NAMES]``           adapted layers. Defaults: r=8, alpha=16, dropout 0.1 (PEFT's sequence-
                                            classification example), the attention query and value projections
                                            (the paper's W_q, W_v) of every block; in a CNN the Linear and ungrouped
                                            convolution layers of the blocks. ``blocks=last:2`` (or ``0-3``,
                                            ``first:2``, ``4,5``) adapts only those blocks: everything below them is
                                            a frozen prefix, computed once (the cache). ``targets=query,key,value``
                                            names the layers (a path or its last part(s))
``lora:auto[:K]``                           LoRA in the K blocks (default 2) that ``frostline importance`` ranks
                                            highest (gradient-norm score, measured on the training data)
``ia3[:blocks=SEL][:targets=NAMES]``        PEFT's (IA)3 (Liu et al. 2022): learned vectors rescale keys, values and
                                            the feed-forward layers' inputs
``bitfit``                                  BitFit (Ben Zaken et al. 2022): every bias of the body, plus the head
==========================================  ==========================================================================

The new head always trains, at ``--head-lr``. Without ``--lr`` each strategy takes the rate its paper used
(:data:`DEFAULTS`): LoRA 5e-4 (RoBERTa-base on GLUE), (IA)3 3e-3 (T-Few), BitFit 1e-3 (the top of its grid); without
``--epochs``, 10.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..core.errors import FrostlineError
from ..freezing.select import SelectorError, resolve
from ..models.blocks import discover_blocks
from ..models.heads import find_head
from ..models.parts import Part
from .adapters import (
    AdapterSpec,
    Attached,
    adapter_param,
    attach,
    default_targets,
    named_targets,
    unrebuildable,
)
from .plans import EpochPlan, Group, Strategy

#: the budget of each strategy kind when ``--lr`` / ``--epochs`` are not given: the learning rate its paper used, and
#: 10 epochs (the papers trained longer: LoRA 30-80 epochs on GLUE, PEFT's example 20; with 3, LoRA in the last two
#: blocks of MiniLM had not learned the minority class of SMS spam)
DEFAULTS = {"lora": {"lr": 5e-4, "epochs": 10}, "ia3": {"lr": 3e-3, "epochs": 10}, "bitfit": {"lr": 1e-3, "epochs": 10}}
KINDS = ("lora", "ia3", "bitfit")
_KEYS = {"lora": ("r", "alpha", "dropout", "blocks", "targets"), "ia3": ("blocks", "targets")}


def strategy_default(spec: str, key: str, general: Any) -> Any:
    """The ``key`` (``lr``, ``epochs``) strategy ``spec`` takes when it is not given (``general``: the others')."""
    kind = str(spec).strip().partition(":")[0] if isinstance(spec, str) else ""
    return DEFAULTS.get(kind, {}).get(key, general)


def _options(kind: str, arg: str, spec: str) -> dict[str, str]:
    """``r=8:blocks=last:2:targets=query,value`` -> options (a part without ``=`` continues the one before)."""
    out: dict[str, str] = {}
    last = None
    for piece in arg.split(":") if arg else []:
        key, eq, value = piece.partition("=")
        if not eq:
            if last is None or not piece:
                raise FrostlineError(f"bad strategy {spec!r}: expected {kind}[:key=value...] with keys "
                                     f"{', '.join(_KEYS[kind])}, e.g. {kind}:blocks=last:2")
            out[last] += ":" + piece
            continue
        key = key.strip()
        if key not in _KEYS[kind]:
            from ..core.errors import did_you_mean

            raise FrostlineError(f"bad strategy {spec!r}: unknown key {key!r}; {kind} takes "
                                 f"{', '.join(_KEYS[kind])}{did_you_mean(key, _KEYS[kind])}")
        if key in out:
            raise FrostlineError(f"bad strategy {spec!r}: {key!r} is given twice")
        out[key], last = value.strip(), key
    return out


def _number(options: dict[str, str], key: str, kind: type, default: float, ok: Any, expected: str,
            spec: str) -> Any:
    if key not in options:
        return default
    try:
        value = kind(options[key])
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise FrostlineError(f"bad strategy {spec!r}: {key} must be {expected}, got {options[key]!r}")
    return value


def _blocks(model: nn.Module, selector: str | None, spec: str) -> list[str]:
    layout = discover_blocks(model, find_head(model).name)
    if not layout.blocks:
        raise FrostlineError(f"strategy {spec!r} adapts a model's blocks, and {type(model).__name__} has no stack "
                             "of blocks; use linear-probe or full")
    if selector is None or selector == "all":
        return list(layout.blocks)
    sel = selector if selector.partition(":")[0] in ("last", "first", "blocks", "depth") else f"blocks:{selector}"
    try:
        return list(resolve(model, sel, blocks=layout).modules)
    except SelectorError as exc:
        said = str(exc).replace(repr(sel), f"blocks={selector}").replace(sel, f"blocks={selector}")
        raise FrostlineError(f"bad strategy {spec!r}: {said}") from None


class Adapted(Strategy):
    """LoRA or (IA)3 adapters (PEFT) in chosen blocks; the head trains too."""

    def __init__(self, kind: str, spec: str, options: dict[str, str], model: nn.Module | None,
                 auto: int | None = None) -> None:
        self.kind, self.name, self.auto = kind, spec, auto
        self.needs_data = auto is not None
        self.r = _number(options, "r", int, 8, lambda v: v >= 1, "an integer >= 1", spec)
        self.alpha = _number(options, "alpha", float, 16.0, lambda v: v > 0, "a number > 0", spec)
        self.dropout = _number(options, "dropout", float, 0.1 if kind == "lora" else 0.0, lambda v: 0 <= v < 1,
                               "a probability in [0, 1)", spec)
        names = options.get("targets")
        self.names = [n.strip() for n in names.split(",")] if names is not None else None
        if self.names is not None and not all(self.names):
            raise FrostlineError(f"bad strategy {spec!r}: targets must be layer names separated by commas, e.g. "
                                 "targets=query,value")
        self.selector = options.get("blocks")
        self.spec: AdapterSpec | None = None
        self.attached: Attached | None = None
        self.importance: Any = None
        self.chosen: list[str] = []
        if model is not None and auto is None:
            self.spec = self._resolve(model, _blocks(model, self.selector, spec))
        elif model is not None:
            n = len(discover_blocks(model, find_head(model).name).blocks)
            if not 1 <= auto <= n:
                raise FrostlineError(f"strategy {spec!r} needs K in 1..{n}: the model has {n} blocks")

    def _resolve(self, model: nn.Module, blocks: list[str]) -> AdapterSpec:
        if self.names is not None:
            targets, ff = named_targets(model, self.names, blocks, self.name, self.kind), []
            if self.kind == "ia3":
                ff = default_targets(model, "ia3", blocks)[1]
                ff = [t for t in ff if t in set(targets)]
        else:
            targets, ff = default_targets(model, self.kind, blocks)
        if not targets:
            odd = unrebuildable(model, blocks) if self.kind == "lora" else []
            if odd:
                raise FrostlineError(f"strategy {self.name!r}: the chosen blocks' convolutions are {', '.join(odd)}, "
                                     "which PEFT's LoRA cannot rebuild (it makes lora_A with nn.Conv2d's own "
                                     "arguments, and this class takes others); ia3, bitfit or partial:N train them")
            raise FrostlineError(f"strategy {self.name!r}: the chosen blocks hold no layer PEFT can adapt (Linear or "
                                 "ungrouped convolution); use partial:N or full")
        return AdapterSpec(self.kind, tuple(targets), self.r, self.alpha, self.dropout, tuple(ff))

    @property
    def ready(self) -> bool:
        return self.attached is not None

    def setup(self, model: nn.Module, train: Any, seed: int) -> None:
        """``lora:auto``: rank the blocks by importance on the training data, adapt the top K."""
        from ..freezing.importance import importance_scores
        from .auto import score_budget

        assert self.auto is not None
        batches, batch_size = score_budget(len(train))
        self.importance = importance_scores(model, train, batches=batches, batch_size=batch_size, seed=seed)
        self.chosen = self.importance.top(self.auto, "rgn", blocks_only=True)
        layout = discover_blocks(model, find_head(model).name)
        blocks = [layout.blocks[int(name.split()[-1])] for name in self.chosen]
        self.spec = self._resolve(model, blocks)

    def attach(self, model: nn.Module, seed: int) -> None:
        if self.attached is not None:
            return
        if self.spec is None:
            if self.auto is not None:
                raise FrostlineError(f"strategy {self.name!r} chooses its blocks from importance scores: call "
                                     "setup(model, train_data, seed) first (fit does)")
            self.spec = self._resolve(model, _blocks(model, self.selector, self.name))
        self.attached = attach(model, self.spec, seed)

    def detach(self, model: nn.Module) -> None:
        if self.attached is not None:
            self.attached.detach()
            self.attached = None

    @property
    def adapters(self) -> AdapterSpec | None:
        return self.spec

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        if self.attached is None:
            raise FrostlineError(f"strategy {self.name!r} trains PEFT adapters: attach them first (fit does)")
        groups = []
        for p in self._body(parts):
            chosen = tuple(n for n in p.params if adapter_param(n))
            if chosen:
                groups.append(Group(p.name, chosen, lr))
        assert self.spec is not None
        what = "LoRA" if self.kind == "lora" else "(IA)3"
        return EpochPlan((*groups, self._head(parts, head_lr)),
                         f"{what} in {len(groups)} block{'s' if len(groups) != 1 else ''} + head")

    def choice(self) -> dict[str, Any] | None:
        if self.spec is None:
            return None
        out: dict[str, Any] = {"strategy": self.name, "adapters": self.spec.to_dict()}
        if self.importance is not None:
            out.update(importance=self.importance.to_dict(), score="rgn", chosen=self.chosen)
        return out


class BitFit(Strategy):
    """Every bias of the body, plus the head."""

    name = "bitfit"

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        groups = []
        for p in self._body(parts):
            chosen = tuple(n for n in p.params if n.rsplit(".", 1)[-1] == "bias")
            if chosen:
                groups.append(Group(p.name, chosen, lr))
        if not groups:
            raise FrostlineError("strategy 'bitfit' trains the model's biases, and this model has none outside its "
                                 "head; use linear-probe or partial:N")
        return EpochPlan((*groups, self._head(parts, head_lr)), "biases + head")


def parse_adapted(kind: str, arg: str, spec: str, model: nn.Module | None) -> Strategy:
    """``lora...``, ``lora:auto[:K]``, ``ia3...`` and ``bitfit``."""
    if spec.endswith(":"):
        raise FrostlineError(f"bad strategy {spec!r}: nothing after the last ':'; write {spec.rstrip(':')!r} "
                             f"alone or add options, e.g. {kind}:blocks=last:2")
    if kind == "bitfit":
        if arg:
            raise FrostlineError(f"bad strategy {spec!r}: bitfit takes no options")
        return BitFit()
    if kind == "lora" and arg.partition(":")[0] == "auto":
        k_text = arg.partition(":")[2]
        if k_text and (not k_text.isdigit() or int(k_text) < 1):
            raise FrostlineError(f"bad strategy {spec!r}: expected 'lora:auto[:K]' with K >= 1 blocks, e.g. "
                                 "lora:auto:2")
        return Adapted(kind, spec, {}, model, auto=int(k_text) if k_text else 2)
    return Adapted(kind, spec, _options(kind, arg, spec), model)
