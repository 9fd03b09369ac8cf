"""Small helpers over a model's module tree: dotted names, lookup, replacement, parameter counts."""

from __future__ import annotations

import torch
from torch import nn

from ..core.errors import FrostlineError, did_you_mean

#: Norm layers that keep running statistics: frozen means these stay in eval mode.
RUNNING_STAT_NORMS: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._NormBase,)
#: Layers that are stochastic in train mode.
DROPOUTS: tuple[type[nn.Module], ...] = (nn.modules.dropout._DropoutNd,)


def has_running_stats(module: nn.Module) -> bool:
    """True for BatchNorm/InstanceNorm-like layers that track running statistics."""
    return isinstance(module, RUNNING_STAT_NORMS) and bool(getattr(module, "track_running_stats", False))


def is_within(name: str, ancestor: str) -> bool:
    """True when dotted ``name`` is ``ancestor`` or lies inside it (``""`` is the root)."""
    return ancestor == "" or name == ancestor or name.startswith(ancestor + ".")


def get_module(model: nn.Module, path: str) -> nn.Module:
    """Return the sub-module at dotted ``path`` or raise a clear error with the closest names."""
    if path == "":
        return model
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        raise FrostlineError(
            f"no module named {path!r} in {type(model).__name__}{did_you_mean(path, names)}"
        ) from None


def set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    """Replace the sub-module at dotted ``path`` with ``new``."""
    if not path:
        raise FrostlineError("cannot replace the root module; give the path of a sub-module")
    parent_path, _, child = path.rpartition(".")
    parent = get_module(model, parent_path)
    get_module(model, path)  # raises a clear error if it does not exist
    setattr(parent, child, new)


def count_params(module: nn.Module, trainable: bool | None = None) -> int:
    """Number of parameter elements in ``module``; only trainable (or frozen) ones if asked."""
    total = 0
    for p in module.parameters():
        if trainable is None or p.requires_grad == trainable:
            total += p.numel()
    return total


def param_owner(name: str) -> str:
    """The module path that owns dotted parameter ``name`` (``"a.b.weight"`` -> ``"a.b"``)."""
    return name.rpartition(".")[0]


def first_param(module: nn.Module) -> torch.nn.Parameter | None:
    """The first parameter of ``module`` or ``None``."""
    return next(module.parameters(), None)
