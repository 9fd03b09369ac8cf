"""Detect freezing mistakes that PyTorch accepts silently, each with the one-line fix."""

from __future__ import annotations

import difflib

import torch
from torch import nn

from ..core.errors import FrostlineError
from ..core.findings import Finding, by_severity
from ..models.tree import has_running_stats
from .masks import element_mask
from .plan import is_pinned

_OURS = ("_frostline", "frostline_")


def _typo_of_requires_grad(key: str) -> bool:
    if key == "requires_grad" or key.startswith(_OURS):
        return False
    return difflib.SequenceMatcher(None, key.lower(), "requires_grad").ratio() >= 0.8


def _module_findings(model: nn.Module) -> list[Finding]:
    found: list[Finding] = []
    for name, module in model.named_modules():
        label = name or "<root>"
        ref = f"model.get_submodule({name!r})" if name else "model"
        for key, value in vars(module).items():
            if key == "requires_grad":
                found.append(Finding(
                    "module-requires-grad-attribute", "error",
                    f"module {label!r} has a plain attribute requires_grad = {value!r}; nn.Module ignores it, "
                    "so its parameters are still trainable",
                    f"{ref}.requires_grad_({value!r})  # or frostline.freeze(model, {name or 'all'!r})",
                ))
            elif _typo_of_requires_grad(key):
                found.append(Finding(
                    "module-attribute-typo", "error",
                    f"module {label!r} has an attribute {key!r} = {value!r}, a misspelling of requires_grad "
                    "that PyTorch ignores",
                    f"{ref}.requires_grad_({value!r})",
                ))
    for name, p in model.named_parameters():
        for key, value in vars(p).items():
            if _typo_of_requires_grad(key):
                found.append(Finding(
                    "parameter-attribute-typo", "error",
                    f"parameter {name!r} has an attribute {key!r} = {value!r}, a misspelling of requires_grad; "
                    f"the tensor is still requires_grad={p.requires_grad}",
                    f"model.get_parameter({name!r}).requires_grad_({value!r})",
                ))
        if not p.requires_grad and p.grad is not None:
            found.append(Finding(
                "stale-gradient-on-frozen", "error",
                f"frozen parameter {name!r} still holds a gradient; an optimizer that holds it will apply it, "
                "with momentum and weight decay",
                "optimizer.zero_grad(set_to_none=True)  # or frostline.freeze(...), which drops it",
            ))
    for name, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if has_running_stats(module) and own and not any(p.requires_grad for p in own) and not is_pinned(module):
            found.append(Finding(
                "frozen-batchnorm-updates-statistics", "warning",
                f"{type(module).__name__} {name!r} has frozen weights but is not held in eval mode: "
                "model.train() makes it update running_mean/running_var",
                f"frostline.freeze(model, {name!r})  # pins it to eval mode",
            ))
    return found


def _trainable_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _optimizer_findings(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[Finding]:
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen_held = [n for n, p in model.named_parameters() if id(p) in held and not p.requires_grad]
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held]
    found: list[Finding] = []
    if frozen_held:
        found.append(Finding(
            "optimizer-holds-frozen", "warning",
            f"the optimizer holds {len(frozen_held)} frozen parameters ({', '.join(sorted(frozen_held)[:3])}"
            f"{', ...' if len(frozen_held) > 3 else ''}): wasted state, and they move if a gradient reaches them",
            "optimizer = frostline.make_optimizer(model, lr=...)  # trainable parameters only",
        ))
    if missing:
        found.append(Finding(
            "optimizer-misses-trainable", "error",
            f"{len(missing)} trainable parameters are not in the optimizer and will never update "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})",
            "optimizer.add_param_group({'params': [p for p in model.parameters() if p.requires_grad "
            "and p not in already_held]})  # or rebuild with frostline.make_optimizer",
        ))
    return found


def check_model(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> list[Finding]:
    """Find freezing mistakes in ``model`` (and ``optimizer``, if given).

    Detects: a module attribute ``requires_grad = False`` (ignored by PyTorch), misspelt ``requires_grad``
    on modules and parameters, a frozen tensor with a stale gradient, a frozen BatchNorm that will still
    update its statistics, nothing trainable, and an optimizer that holds frozen parameters or misses
    trainable ones.

    Returns:
        Findings, errors first.
    """
    found = _module_findings(model)
    trainable = _trainable_names(model)
    fully_masked = all((m := element_mask(model.get_parameter(n))) is not None and bool(m.all()) for n in trainable)
    if not trainable or fully_masked:
        found.append(Finding(
            "nothing-trainable", "error",
            f"no parameter of {type(model).__name__} is trainable: the loss cannot change",
            "frostline.unfreeze(model, 'head')  # or freeze(model, 'all', except_='head')",
        ))
    if optimizer is not None:
        found.extend(_optimizer_findings(model, optimizer))
    return by_severity(found)


def raise_on_errors(findings: list[Finding]) -> None:
    """Raise one :class:`FrostlineError` listing every error-level finding."""
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise FrostlineError("; ".join(f"{f.message} (fix: {f.fix})" for f in errors))
