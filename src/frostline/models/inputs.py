"""What an image model expects as input: its square size and its normalisation, and where that was read from.

A pretrained CNN only transfers when it sees pictures prepared as in its own training: the same size range and the
same scaling of pixel values. :class:`ImageInputs` carries that convention; it is part of a model spec, recorded in
the run (``state.json`` ``inputs``) and applied by training, ``predict``, ``evaluate`` and ``export``.

Where it comes from, first match wins:

* a bundled model's own spec (``efficientnet-lite0``: 224 px, TF-Lite's ``(x*255 - 127) / 128``);
* a Hugging Face vision folder's ``preprocessor_config.json`` (``image_mean``, ``image_std``, ``size``), else its
  ``config.json`` ``image_size``;
* timm's convention, duck-typed: ``model.pretrained_cfg`` (or ``default_cfg``) with ``input_size``, ``mean``,
  ``std``; a user's factory may set the same dict on its model to state its convention;
* otherwise ImageNet's (224 px, mean 0.485/0.456/0.406, std 0.229/0.224/0.225), with a note saying it was assumed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from ..data.normalise import (
    DEFAULT_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    TFLITE_MEAN,
    TFLITE_STD,
    ImageInputs,
    channel_triple,
)

__all__ = ["DEFAULT_SIZE", "IMAGENET_MEAN", "IMAGENET_STD", "TFLITE_MEAN", "TFLITE_STD", "ImageInputs",
           "from_module", "from_preprocessor", "imagenet", "resolve_inputs"]

def imagenet(source: str, size: int = DEFAULT_SIZE, assumed: bool = False) -> ImageInputs:
    """ImageNet's convention (torchvision, most timm and Hugging Face CNNs)."""
    return ImageInputs(size, IMAGENET_MEAN, IMAGENET_STD, source, assumed)


def _size_of(value: Any) -> int | None:
    """A square size from the shapes configs use: ``224``, ``[224, 224]``, ``(3, 224, 224)``, ``{"height": 224}``,
    ``{"shortest_edge": 224}``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Sequence) and value and all(isinstance(v, int) for v in value):
        return int(value[-1])
    if isinstance(value, dict):
        for key in ("height", "shortest_edge", "width"):
            if isinstance(value.get(key), int):
                return int(value[key])
    return None


def from_preprocessor(folder: Path | None, config: Any = None) -> ImageInputs | None:
    """A Hugging Face vision folder's convention: ``preprocessor_config.json``, else ``config.image_size`` with
    ImageNet's normalisation (``None`` when neither says anything)."""
    path = folder / "preprocessor_config.json" if folder is not None else None
    if path is not None and path.is_file():
        try:
            pre = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pre = {}
        if isinstance(pre, dict) and ("image_mean" in pre or "size" in pre or "crop_size" in pre):
            size = _size_of(pre.get("crop_size")) if pre.get("do_center_crop") else None
            size = size or _size_of(pre.get("size")) or DEFAULT_SIZE
            if pre.get("do_normalize", True) is False:
                return ImageInputs(size, (0.0,) * 3, (1.0,) * 3, "preprocessor_config.json (no normalisation)")
            try:
                mean = channel_triple(pre.get("image_mean", IMAGENET_MEAN))
                std = channel_triple(pre.get("image_std", IMAGENET_STD))
            except (TypeError, ValueError):
                mean, std = IMAGENET_MEAN, IMAGENET_STD
            return ImageInputs(size, mean, std, "preprocessor_config.json")
    size = _size_of(getattr(config, "image_size", None))
    return imagenet("config.json image_size; ImageNet normalisation assumed", size) if size else None


def from_module(model: nn.Module) -> ImageInputs | None:
    """timm's convention (``pretrained_cfg`` / ``default_cfg``: ``input_size``, ``mean``, ``std``), duck-typed."""
    for attr in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(model, attr, None)
        if isinstance(cfg, dict) and ("input_size" in cfg or "mean" in cfg):
            size = _size_of(cfg.get("test_input_size") or cfg.get("input_size")) or DEFAULT_SIZE
            try:
                mean, std = channel_triple(cfg.get("mean", IMAGENET_MEAN)), channel_triple(cfg.get("std", IMAGENET_STD))
            except (TypeError, ValueError):
                continue
            return ImageInputs(size, mean, std, f"the model's {attr}")
    return None


def resolve_inputs(model: nn.Module, known: ImageInputs | None = None) -> ImageInputs:
    """The convention of an image model: ``known`` (a bundled spec or a folder's preprocessor), the model's own
    ``pretrained_cfg``, else ImageNet's, assumed."""
    if known is not None:
        return known
    found = from_module(model)
    if found is not None:
        return found
    return imagenet("not stated by the model: ImageNet's assumed", assumed=True)
