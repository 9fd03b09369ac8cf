"""Freeze and unfreeze by selector, and make it hold.

Frozen means unchanged after training, by every route:

* no gradient: ``requires_grad_(False)``, and any stale ``.grad`` is dropped (an optimizer would still apply
  weight decay and momentum to a tensor that keeps an old gradient);
* eval mode: every module whose parameters are all frozen (BatchNorm, dropout, attention with its own dropout
  probability) is pinned to eval mode by a forward pre-hook, so ``model.train()`` cannot switch it back and
  running statistics never drift. ``bn="train"`` keeps BatchNorm layers trainable instead (fastai's
  ``train_bn``);
* inside one tensor: ``rows=``, ``cols=`` or ``mask=`` freezes single elements (see :mod:`frostline.freezing.masks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from ..core.errors import FrostlineError
from ..models.heads import find_head
from ..models.tree import has_running_stats, is_within
from .masks import build_mask, element_mask, freeze_elements, unfreeze_elements
from .select import resolve, resolve_params

BnMode = Literal["eval", "train"]
_BN_ATTR = "frostline_bn"
_STATS_ATTR = "frostline_bn_stats"


def set_norm_statistics(model: nn.Module, mode: str) -> None:
    """How the BatchNorm layers of the *trainable* part behave from now on (frozen ones are always in eval mode).

    ``"eval"``: in eval mode too (they normalise with their pretrained running statistics, which never change and
    are checksummed with the frozen tensors; their weight and bias still train), as Keras advises for fine-tuning.
    ``"train"``: PyTorch's default (batch statistics in training, running statistics updated). Pins follow at once.
    """
    if mode not in ("eval", "train"):
        raise FrostlineError(f"BatchNorm statistics mode must be 'eval' or 'train', got {mode!r}")
    setattr(model, _STATS_ATTR, mode)
    refresh_pins(model)


@dataclass
class FreezePlan:
    """What one :func:`freeze` or :func:`unfreeze` call did, and the state it left.

    Attributes:
        action: ``"freeze"`` or ``"unfreeze"``.
        selectors: Selectors applied.
        except_: Selectors kept trainable.
        changed: Parameter names whose ``requires_grad`` changed in this call.
        masked: Parameter name -> number of elements frozen inside it.
        pinned: Module paths pinned to eval mode after this call (whole model).
        trainable: Trainable parameter elements after this call (masked elements count as frozen).
        frozen: Frozen parameter elements after this call.
        bn: BatchNorm policy used.
    """

    action: str
    selectors: list[str]
    except_: list[str]
    changed: list[str] = field(default_factory=list)
    masked: dict[str, int] = field(default_factory=dict)
    pinned: list[str] = field(default_factory=list)
    trainable: int = 0
    frozen: int = 0
    bn: str = "eval"
    head_kept: str | None = None

    @property
    def total(self) -> int:
        """All parameter elements."""
        return self.trainable + self.frozen

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {**asdict(self), "total": self.total}

    def __str__(self) -> str:
        pct = 100.0 * self.trainable / self.total if self.total else 0.0
        what = ", ".join(self.selectors) + (f" except {', '.join(self.except_)}" if self.except_ else "")
        lines = [
            f"{self.action} {what}: {len(self.changed)} tensors changed",
            f"trainable {self.trainable:,} / {self.total:,} ({pct:.2f}%), frozen {self.frozen:,}",
        ]
        if self.head_kept:
            lines.append(f"head {self.head_kept!r} kept trainable (name it, or keep_head=False, to freeze it)")
        if self.masked:
            lines.append("element-level: " + ", ".join(f"{k} ({v:,} frozen)" for k, v in self.masked.items()))
        if self.pinned:
            lines.append(f"pinned to eval mode: {len(self.pinned)} modules")
        return "\n".join(lines)


def _as_list(x: str | Iterable[str] | None) -> list[str]:
    if x is None:
        return []
    return [x] if isinstance(x, str) else list(x)


def _pin_eval_hook(module: nn.Module, _args: tuple) -> None:
    module.training = False


def is_pinned(module: nn.Module) -> bool:
    """True when ``module`` is held in eval mode by frostline."""
    return any(h is _pin_eval_hook for h in module._forward_pre_hooks.values())


def _set_pinned(module: nn.Module, pinned: bool, root_training: bool) -> None:
    if pinned and not is_pinned(module):
        module.register_forward_pre_hook(_pin_eval_hook)
        module.training = False
    elif not pinned and is_pinned(module):
        for key in [k for k, h in module._forward_pre_hooks.items() if h is _pin_eval_hook]:
            del module._forward_pre_hooks[key]
        module.training = root_training


def _fully_frozen(module: nn.Module) -> bool:
    params = list(module.parameters())
    return bool(params) and all(not p.requires_grad and element_mask(p) is None for p in params)


def refresh_pins(model: nn.Module) -> list[str]:
    """Pin to eval mode every module of the frozen part, and unpin the rest, to match ``requires_grad`` now.

    A module is pinned when the parameters of its *scope* are all frozen: its own subtree if that holds
    parameters, else (dropout, activations) the nearest ancestor that does. Pinning whole frozen modules, not
    only Dropout and BatchNorm layers, also stops stochasticity that hangs on a module's ``training`` flag, such
    as the attention-probability dropout of Hugging Face attention layers. With ``bn="train"``, running-stat
    norms are never pinned; with :func:`set_norm_statistics` ``"eval"``, they always are. Returns the pinned module
    paths.
    """
    bn_mode = getattr(model, _BN_ATTR, "eval")
    stats_eval = getattr(model, _STATS_ATTR, "train") == "eval"
    modules = dict(model.named_modules())
    frozen_scope: dict[str, bool] = {}
    for name, module in modules.items():
        if next(module.parameters(), None) is not None:
            frozen_scope[name] = _fully_frozen(module)
    pinned: list[str] = []
    for name, module in modules.items():
        path = name
        while path not in frozen_scope and path:
            path = path.rpartition(".")[0]
        norm = has_running_stats(module)
        should = (frozen_scope.get(path, False) and not (norm and bn_mode == "train")) or (norm and stats_eval)
        _set_pinned(module, should, model.training)
        if should:
            pinned.append(name)
    return pinned


def _counts(model: nn.Module) -> tuple[int, int]:
    trainable = frozen = 0
    for p in model.parameters():
        mask = element_mask(p)
        if not p.requires_grad:
            frozen += p.numel()
        elif mask is not None:
            n = int(mask.sum())
            frozen += n
            trainable += p.numel() - n
        else:
            trainable += p.numel()
    return trainable, frozen


def _finish(model: nn.Module, plan: FreezePlan) -> FreezePlan:
    plan.pinned = refresh_pins(model)
    plan.trainable, plan.frozen = _counts(model)
    return plan


def freeze(
    model: nn.Module,
    *selectors: str,
    except_: str | Sequence[str] | None = None,
    bn: BnMode = "eval",
    keep_head: bool = True,
    rows: Sequence[int] | None = None,
    cols: Sequence[int] | None = None,
    mask: torch.Tensor | None = None,
) -> FreezePlan:
    """Freeze what ``selectors`` match, leaving ``except_`` trainable.

    The classifier head stays trainable unless a selector names it (``"head"``, its path or a pattern that
    matches it) or ``keep_head=False``: ``freeze(model, "all")`` is a linear probe, not a dead model.

    Args:
        model: The model, changed in place.
        *selectors: One or more selectors (see :mod:`frostline.freezing.select`), e.g. ``"all"``, ``"blocks:0-3"``.
        except_: Selectors that stay (or become) trainable, e.g. ``["head", "last:2"]``.
        bn: ``"eval"`` pins frozen BatchNorm layers to eval mode; ``"train"`` keeps every BatchNorm layer in
            the selection trainable and updating its statistics (fastai's ``train_bn``).
        keep_head: Keep the head trainable when no selector names it explicitly.
        rows: Element-level freeze: rows (dim 0) of the one parameter that ``selectors`` names.
        cols: Element-level freeze: columns (dim 1) of that parameter.
        mask: Element-level freeze: a boolean mask of that parameter's shape (True = frozen).

    Returns:
        The :class:`FreezePlan`.
    """
    if not selectors:
        raise FrostlineError("freeze() needs at least one selector, e.g. freeze(model, 'all', except_='head')")
    if bn not in ("eval", "train"):
        raise FrostlineError(f"bn must be 'eval' or 'train', got {bn!r}")
    excepts = _as_list(except_)
    plan = FreezePlan("freeze", list(selectors), excepts, bn=bn)
    setattr(model, _BN_ATTR, bn)
    params = dict(model.named_parameters())
    if rows is not None or cols is not None or mask is not None:
        if len(selectors) != 1 or excepts:
            raise FrostlineError("an element-level freeze (rows=/cols=/mask=) takes exactly one parameter path")
        name = _single_param(model, selectors[0])
        param = params[name]
        plan.masked[name] = freeze_elements(param, build_mask(param, rows=rows, cols=cols, mask=mask, name=name))
        return _finish(model, plan)
    selected = resolve_params(model, selectors)
    kept = set(resolve_params(model, excepts)) if excepts else set()
    if keep_head:
        head = _implicit_head(model, selectors)
        if head is not None:
            kept |= set(resolve(model, head).params)
            plan.head_kept = head
    if bn == "train":
        kept |= _norm_params(model, selected)
    for name in selected:
        if name in kept:
            continue
        p = params[name]
        if element_mask(p) is not None:
            unfreeze_elements(p)
        if p.requires_grad:
            plan.changed.append(name)
        p.requires_grad_(False)
        p.grad = None
    for name in sorted(kept, key=list(params).index):
        if not params[name].requires_grad and params[name].is_floating_point():
            params[name].requires_grad_(True)
            plan.changed.append(name)
    return _finish(model, plan)


def unfreeze(model: nn.Module, *selectors: str) -> FreezePlan:
    """Make what ``selectors`` match trainable again, element-level freezes included.

    Args:
        model: The model, changed in place.
        *selectors: One or more selectors; ``"all"`` unfreezes everything.

    Returns:
        The :class:`FreezePlan`.
    """
    if not selectors:
        raise FrostlineError("unfreeze() needs at least one selector, e.g. unfreeze(model, 'last:2')")
    plan = FreezePlan("unfreeze", list(selectors), [], bn=getattr(model, _BN_ATTR, "eval"))
    params = dict(model.named_parameters())
    for name in resolve_params(model, selectors):
        p = params[name]
        if unfreeze_elements(p):
            plan.changed.append(name)
        if not p.requires_grad and p.is_floating_point():
            p.requires_grad_(True)
            plan.changed.append(name)
    return _finish(model, plan)


def set_trainable(model: nn.Module, names: Iterable[str]) -> FreezePlan:
    """Make exactly ``names`` trainable and everything else frozen (strategies use this each epoch).

    Element-level freezes inside trainable tensors are kept. Norm and dropout pins follow the new state.
    """
    wanted = set(names)
    params = dict(model.named_parameters())
    unknown = sorted(wanted - set(params))
    if unknown:
        raise FrostlineError(f"no parameters named {unknown[:3]} in {type(model).__name__}")
    plan = FreezePlan("set", [], [], bn=getattr(model, _BN_ATTR, "eval"))
    for name, p in params.items():
        want = name in wanted and p.is_floating_point()
        if p.requires_grad != want:
            p.requires_grad_(want)
            plan.changed.append(name)
        if not want:
            p.grad = None
    return _finish(model, plan)


def _single_param(model: nn.Module, selector: str) -> str:
    sel = resolve(model, selector)
    if len(sel.params) != 1:
        raise FrostlineError(
            f"an element-level freeze needs one parameter, but {selector!r} covers {len(sel.params)}: "
            f"{', '.join(sel.params[:4])}{', ...' if len(sel.params) > 4 else ''}; name a tensor such as "
            f"'{(sel.params or ('layer.weight',))[0]}'"
        )
    return sel.params[0]


def _implicit_head(model: nn.Module, selectors: Sequence[str]) -> str | None:
    """The head path when no selector names the head itself, else ``None`` (also when there is no head)."""
    try:
        head = find_head(model).name
    except FrostlineError:
        return None
    for sel in selectors:
        selection = resolve(model, sel)
        through_ancestor = any(m != head and is_within(head, m) for m in selection.modules)
        if any(is_within(p, head) for p in selection.params) and not through_ancestor:
            return None
    return head


def _norm_params(model: nn.Module, selected: list[str]) -> set[str]:
    norms = [n for n, m in model.named_modules() if has_running_stats(m)]
    return {p for p in selected if any(p.rpartition(".")[0] == n for n in norms)}


def trainable_state(model: nn.Module) -> dict[str, Any]:
    """The model's current freeze state: counts, frozen tensor names, masks and pinned modules."""
    trainable, frozen = _counts(model)
    return {
        "trainable": trainable,
        "frozen": frozen,
        "total": trainable + frozen,
        "frozen_tensors": [n for n, p in model.named_parameters() if not p.requires_grad],
        "masked": {n: int(m.sum()) for n, p in model.named_parameters() if (m := element_mask(p)) is not None},
        "pinned": [n for n, m in model.named_modules() if is_pinned(m)],
        "bn": getattr(model, _BN_ATTR, "eval"),
    }

