"""An image model's input convention (square size and normalisation), applied when batches are made.

Models say what they expect (:mod:`frostline.models.inputs` reads it); the data stage applies it, so that training,
``predict``, ``evaluate`` and ``export`` prepare pictures the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: TF-Lite / Inception-style scaling used by the EfficientNet-Lite checkpoints: ``(x*255 - 127) / 128``.
TFLITE_MEAN = (127 / 255,) * 3
TFLITE_STD = (128 / 255,) * 3
DEFAULT_SIZE = 224


@dataclass(frozen=True)
class ImageInputs:
    """An image model's input convention: pictures become ``(x - mean) / std`` with ``x`` in [0, 1], RGB, square.

    Attributes:
        size: Side of the square input the model was trained at (pixels).
        mean: Per-channel mean subtracted (RGB, on the [0, 1] scale).
        std: Per-channel standard deviation divided by.
        source: Where the convention was read from (shown to the user and recorded in the run).
        assumed: True when the model said nothing and ImageNet's convention was assumed.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str
    assumed: bool = False

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """A uint8 batch ``(N, 3, H, W)`` as the model's float input."""
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (x.float().div_(255.0) - mean) / std

    def formula(self) -> str:
        """The normalisation in words, e.g. ``(x*255 - 127) / 128`` or ``(x - mean) / std, mean ...``."""
        if self.mean == TFLITE_MEAN and self.std == TFLITE_STD:
            return "(x*255 - 127) / 128"
        fmt = "/".join
        return (f"(x - mean) / std with x in [0, 1], mean {fmt(f'{m:.3f}' for m in self.mean)}, "
                f"std {fmt(f'{s:.3f}' for s in self.std)}")

    def describe(self, size: int | None = None) -> str:
        """One line: size, normalisation and where they come from (``size``: the run's, when it differs)."""
        shown = size or self.size
        at = f"{shown}x{shown}" + (f" (the model's own is {self.size})" if size and size != self.size else "")
        return f"{at}, normalised {self.formula()} ({self.source})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ImageInputs | None:
        """Read back :meth:`to_dict` (``None`` stays ``None``)."""
        if not d:
            return None
        return cls(int(d["size"]), channel_triple(d["mean"]), channel_triple(d["std"]), str(d.get("source", "")),
                   bool(d.get("assumed", False)))


def channel_triple(values: Any) -> tuple[float, float, float]:
    """Three per-channel values from one value or a sequence of three (``ValueError`` otherwise)."""
    vals = [float(v) for v in (values if isinstance(values, Sequence) else [values])]
    if len(vals) == 1:
        vals *= 3
    if len(vals) != 3:
        raise ValueError(f"expected 3 channel values, got {values!r}")
    return vals[0], vals[1], vals[2]


#: What a run without a stated convention uses (runs recorded before conventions were: 64 px, ImageNet's).
IMAGENET = ImageInputs(DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD, "ImageNet")
