"""Per-element and per-channel freezing inside one tensor.

``requires_grad`` is all-or-nothing per tensor, so a partial freeze needs two guards:

1. a gradient hook zeroes the gradient at frozen positions (so gradient clipping, Adam moments and
   momentum never see them);
2. a global optimizer step post-hook writes the frozen values back after *every* optimizer step of any
   ``torch.optim.Optimizer``: weight decay (AdamW's decoupled decay, SGD's L2 term) and momentum would
   otherwise still move them.

Together they hold under any optimizer built on ``torch.optim.Optimizer``, fused or foreach, not only plain SGD.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook

from ..core.errors import FrostlineError

_MASK = "_frostline_mask"
_VALUES = "_frostline_frozen_values"
_HOOK = "_frostline_grad_hook"

# id -> weak reference (tensors compare element-wise, so they cannot live in a WeakSet).
_masked: dict[int, weakref.ref[torch.Tensor]] = {}
_post_hook: object | None = None


def build_mask(
    param: torch.Tensor,
    *,
    rows: Sequence[int] | None = None,
    cols: Sequence[int] | None = None,
    mask: torch.Tensor | None = None,
    name: str = "parameter",
) -> torch.Tensor:
    """A boolean mask (True = frozen) over ``param`` from rows (dim 0), cols (dim 1) or an explicit mask."""
    given = [x is not None for x in (rows, cols, mask)]
    if sum(given) != 1:
        raise FrostlineError("give exactly one of rows=, cols= or mask= for an element-level freeze")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise FrostlineError(f"mask for {name} must be a torch.bool tensor, got {type(mask).__name__}")
        if mask.shape != param.shape:
            raise FrostlineError(
                f"mask shape {tuple(mask.shape)} does not match {name} of shape {tuple(param.shape)}"
            )
        return mask.to(param.device)
    out = torch.zeros(param.shape, dtype=torch.bool, device=param.device)
    dim = 0 if rows is not None else 1
    index = list(rows if rows is not None else cols)  # type: ignore[arg-type]
    if param.dim() <= dim:
        raise FrostlineError(f"cols= needs a tensor with 2 or more dimensions; {name} has shape {tuple(param.shape)}")
    size = param.shape[dim]
    bad = [i for i in index if not isinstance(i, int) or not -size <= i < size]
    if bad or not index:
        what = "rows" if dim == 0 else "cols"
        raise FrostlineError(
            f"{what}={bad or index!r} out of range for {name} with {size} {what} (valid: 0..{size - 1})"
        )
    if dim == 0:
        out[index] = True
    else:
        out[:, index] = True
    return out


def _zero_frozen_grad(mask: torch.Tensor):
    def hook(grad: torch.Tensor) -> torch.Tensor:
        m = mask if mask.device == grad.device else mask.to(grad.device)
        return grad.masked_fill(m, 0)

    return hook


@torch.no_grad()
def restore_masked(*_args: object, **_kwargs: object) -> None:
    """Write frozen element values back into every masked parameter (idempotent, cheap)."""
    for ref in list(_masked.values()):
        p = ref()
        if p is None:
            continue
        mask, values = getattr(p, _MASK), getattr(p, _VALUES)
        if mask.device != p.device:
            mask, values = mask.to(p.device), values.to(p.device)
            setattr(p, _MASK, mask)
            setattr(p, _VALUES, values)
        p.masked_scatter_(mask, values.to(p.dtype))


def _ensure_post_hook() -> None:
    global _post_hook
    if _post_hook is None:
        _post_hook = register_optimizer_step_post_hook(restore_masked)


def freeze_elements(param: nn.Parameter, mask: torch.Tensor) -> int:
    """Freeze the elements of ``param`` where ``mask`` is True; returns how many are frozen now.

    Calling it again on the same tensor widens the frozen set (masks are OR-ed).
    """
    if not param.requires_grad:
        raise FrostlineError("this tensor is already frozen as a whole; unfreeze it before an element-level freeze")
    old = getattr(param, _MASK, None)
    if old is not None:
        unfreeze_elements(param)
        mask = mask | old.to(mask.device)
    setattr(param, _MASK, mask)
    setattr(param, _VALUES, param.detach()[mask].clone())
    setattr(param, _HOOK, param.register_hook(_zero_frozen_grad(mask)))
    key = id(param)
    _masked[key] = weakref.ref(param, lambda _r, key=key: _masked.pop(key, None))
    _ensure_post_hook()
    return int(mask.sum())


def unfreeze_elements(param: torch.Tensor) -> int:
    """Remove an element-level freeze; returns how many elements were frozen."""
    mask = getattr(param, _MASK, None)
    if mask is None:
        return 0
    getattr(param, _HOOK).remove()
    for attr in (_MASK, _VALUES, _HOOK):
        delattr(param, attr)
    _masked.pop(id(param), None)
    return int(mask.sum())


def element_mask(param: torch.Tensor) -> torch.Tensor | None:
    """The frozen-element mask of ``param`` (True = frozen), or ``None``."""
    return getattr(param, _MASK, None)


def trainable_elements(param: torch.Tensor) -> int:
    """How many elements of ``param`` can train: all of them, less those an element-level freeze holds."""
    mask = element_mask(param)
    return param.numel() - (int(mask.sum()) if mask is not None else 0)


def trainable_count(model: torch.nn.Module, names: Iterable[str]) -> int:
    """Elements of the parameters ``names`` of ``model`` that can train (element-level freezes subtracted)."""
    return sum(trainable_elements(model.get_parameter(n)) for n in names)
