"""Find and replace the classifier head of common model families.

Families are recognised by duck typing, so torchvision and timm need not be installed:

* Hugging Face ``*For{Sequence,Image}Classification``: a ``config`` with ``num_labels`` and a head attribute
  (``classifier``, ``score``, ``classification_head``, ``logits_proj``);
* timm: ``get_classifier()`` / ``reset_classifier(num_classes)``;
* torchvision: ``fc``, ``classifier`` (a Linear, or a Sequential ending in a Linear), ``heads.head``, ``head``;
* anything else: the last ``nn.Linear`` registered in the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from ..core.errors import FrostlineError
from .tree import get_module, set_module

HF_HEAD_ATTRS = ("classifier", "score", "classification_head", "logits_proj")
TORCHVISION_HEAD_PATHS = ("heads.head", "fc", "classifier", "head")
#: Attribute where :func:`replace_head` records what it built (read back by checkpoints and find_head).
HEAD_ATTR = "frostline_head"


@dataclass(frozen=True)
class HeadInfo:
    """Where a model's classifier head is.

    Attributes:
        name: Module path of the whole head (what the ``head`` selector means).
        linear: Module path of the final ``nn.Linear`` that maps features to class logits.
        in_features: Width of the features the head receives.
        num_classes: Number of outputs of the final Linear.
        family: ``"huggingface"``, ``"timm"``, ``"torchvision"`` or ``"linear"``.
        dropout: Dropout probability placed before the new Linear, if any.
        replaced: True when frostline built this head (freshly initialised).
    """

    name: str
    linear: str
    in_features: int
    num_classes: int
    family: str
    dropout: float | None = None
    replaced: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)


def _is_hf(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    return config is not None and hasattr(config, "num_labels") and hasattr(config, "to_dict")


def _is_timm(model: nn.Module) -> bool:
    return callable(getattr(model, "get_classifier", None)) and callable(getattr(model, "reset_classifier", None))


def _last_linear(model: nn.Module, within: str) -> str | None:
    prefix = within + "." if within else ""
    last = None
    for name, mod in model.named_modules():
        if (name == within or name.startswith(prefix)) and isinstance(mod, nn.Linear):
            last = name
    return last


def _name_of(model: nn.Module, target: nn.Module) -> str | None:
    for name, mod in model.named_modules():
        if mod is target:
            return name
    return None


def _info(model: nn.Module, name: str, linear: str | None, family: str) -> HeadInfo:
    if linear is None:
        raise FrostlineError(
            f"the head {name!r} of {type(model).__name__} has no nn.Linear to replace; "
            "pass head='<module path>' naming the classifier layer"
        )
    lin = get_module(model, linear)
    assert isinstance(lin, nn.Linear)
    return HeadInfo(name, linear, lin.in_features, lin.out_features, family)


def find_head(model: nn.Module, head: str | None = None) -> HeadInfo:
    """Locate the classifier head of ``model``.

    Args:
        model: Any ``nn.Module``.
        head: Explicit module path of the head, for models no convention covers.

    Returns:
        A :class:`HeadInfo`.

    Raises:
        FrostlineError: No head could be found, or ``head`` names nothing.
    """
    if head is not None:
        mod = get_module(model, head)
        linear = head if isinstance(mod, nn.Linear) else _last_linear(model, head)
        return _info(model, head, linear, "explicit")
    recorded = getattr(model, HEAD_ATTR, None)
    if isinstance(recorded, dict):
        try:
            lin = get_module(model, recorded["linear"])
        except FrostlineError:
            lin = None
        if isinstance(lin, nn.Linear):
            return HeadInfo(**{**recorded, "num_classes": lin.out_features, "in_features": lin.in_features})
    if _is_hf(model):
        for attr in HF_HEAD_ATTRS:
            mod = getattr(model, attr, None)
            if isinstance(mod, nn.Module):
                linear = attr if isinstance(mod, nn.Linear) else _last_linear(model, attr)
                return _info(model, attr, linear, "huggingface")
    if _is_timm(model):
        clf = model.get_classifier()
        clf = clf[0] if isinstance(clf, tuple) else clf
        name = _name_of(model, clf) if isinstance(clf, nn.Module) else None
        if name:
            linear = name if isinstance(clf, nn.Linear) else _last_linear(model, name)
            if linear is not None:
                return _info(model, name, linear, "timm")
    for path in TORCHVISION_HEAD_PATHS:
        try:
            mod = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(mod, nn.Linear):
            return _info(model, path, path, "torchvision")
        if isinstance(mod, nn.Sequential):
            with_params = [(i, m) for i, m in enumerate(mod) if any(True for _ in m.parameters())]
            if with_params and isinstance(with_params[-1][1], nn.Linear):
                linear = f"{path}.{with_params[-1][0]}"
                return _info(model, linear, linear, "torchvision")
    linear = _last_linear(model, "")
    if linear is None:
        raise FrostlineError(
            f"no classifier head found in {type(model).__name__}: it has no nn.Linear layer; "
            "pass head='<module path>' to name the layer that produces the logits"
        )
    return _info(model, linear, linear, "linear")


def _new_linear(old: nn.Linear, num_classes: int, family: str, model: nn.Module) -> nn.Linear:
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    if family == "huggingface":
        std = float(getattr(model.config, "initializer_range", 0.02) or 0.02)
        nn.init.normal_(new.weight, mean=0.0, std=std)
        if new.bias is not None:
            nn.init.zeros_(new.bias)
    return new


def replace_head(
    model: nn.Module,
    num_classes: int,
    *,
    dropout: float | None = None,
    labels: list[str] | None = None,
    head: str | None = None,
    problem_type: str | None = None,
) -> HeadInfo:
    """Replace the classifier head with a fresh, trainable Linear of ``num_classes`` outputs.

    The new layer keeps the old one's input width, device and dtype. With ``dropout`` it becomes
    ``nn.Sequential(nn.Dropout(p), nn.Linear(...))``. It is a named sub-module, so ``state_dict`` saves it;
    what was built is recorded on ``model.frostline_head`` for checkpoints.

    Args:
        model: The model, changed in place.
        num_classes: Number of classes (>= 1).
        dropout: Optional dropout probability in ``[0, 1)`` before the new Linear.
        labels: Optional class names; recorded in a Hugging Face config as ``id2label``.
        head: Explicit head path for models no convention covers.
        problem_type: Hugging Face ``config.problem_type`` (``single_label_classification``, ``regression``,
            ``multi_label_classification``; :attr:`frostline.core.task.Task.problem_type`); ``None`` leaves it unset
            (Hugging Face then infers it from the labels).

    Returns:
        The :class:`HeadInfo` of the new head.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise FrostlineError(f"num_classes must be a positive integer, got {num_classes!r}")
    if dropout is not None and (not isinstance(dropout, int | float) or not 0 <= dropout < 1 or math.isnan(dropout)):
        raise FrostlineError(f"dropout must be a probability in [0, 1), got {dropout!r}")
    if labels is not None and len(labels) != num_classes:
        raise FrostlineError(f"got {len(labels)} labels for num_classes={num_classes}; give one name per class")
    old = find_head(model, head)
    family = old.family
    if family == "timm" and head is None and dropout is None:
        model.reset_classifier(num_classes)
        clf = model.get_classifier()
        name = _name_of(model, clf[0] if isinstance(clf, tuple) else clf) or old.name
        linear = name if isinstance(get_module(model, name), nn.Linear) else _last_linear(model, name)
        info = _info(model, name, linear, family)
    else:
        old_linear = get_module(model, old.linear)
        assert isinstance(old_linear, nn.Linear)
        new = _new_linear(old_linear, num_classes, family, model)
        if dropout is not None:
            set_module(model, old.linear, nn.Sequential(nn.Dropout(float(dropout)), new))
            linear = f"{old.linear}.1"
        else:
            set_module(model, old.linear, new)
            linear = old.linear
        if family == "timm" and hasattr(model, "num_classes"):
            model.num_classes = num_classes
        info = HeadInfo(old.name, linear, old.in_features, num_classes, family)
    info = HeadInfo(**{**info.to_dict(), "dropout": dropout, "replaced": True})
    for p in get_module(model, info.name).parameters():
        p.requires_grad_(True)
    if family == "huggingface":
        _update_hf_config(model, num_classes, labels, problem_type)
    setattr(model, HEAD_ATTR, info.to_dict())
    return info


def _update_hf_config(model: nn.Module, num_classes: int, labels: list[str] | None,
                      problem_type: str | None = None) -> None:
    config = model.config
    names = list(labels) if labels is not None else [f"LABEL_{i}" for i in range(num_classes)]
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}
    config.num_labels = num_classes
    if hasattr(model, "num_labels"):
        model.num_labels = num_classes
    if getattr(config, "problem_type", None) == "regression" or num_classes == 1:
        config.problem_type = None
    if problem_type is not None:
        config.problem_type = problem_type
