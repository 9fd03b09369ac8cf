"""Training-time image augmentation: random flips and padded random crops, deterministic in (seed, epoch, batch).

Augmentation applies to training passes only (shuffled batches); evaluation and the frozen-prefix cache see the
images as they are. An augmented run cannot cache the frozen prefix (its input differs every epoch), so the
cache falls back to the plain loop and says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.errors import FrostlineError, did_you_mean

OPS = ("hflip", "vflip", "crop")


@dataclass(frozen=True)
class Augment:
    """Random horizontal / vertical flips (each with probability 1/2) and a crop after reflect-padding ``crop`` px."""

    hflip: bool = False
    vflip: bool = False
    crop: int = 0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a batch ``(N, C, H, W)``; each sample draws its own flips and crop offset from ``generator``."""
        n, _, h, w = x.shape
        if self.crop >= min(h, w):
            raise FrostlineError(f"augment crop:{self.crop} needs images larger than {self.crop} px; got {h}x{w}")
        if self.hflip:
            flip = torch.rand(n, generator=generator) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if self.vflip:
            flip = torch.rand(n, generator=generator) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-2), x)
        if self.crop:
            p = self.crop
            padded = torch.nn.functional.pad(x, (p, p, p, p), mode="reflect")
            dy = torch.randint(0, 2 * p + 1, (n,), generator=generator)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=generator)
            x = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
        return x

    def describe(self) -> str:
        """The spec string this augmentation parses from."""
        ops = [name for name in ("hflip", "vflip") if getattr(self, name)]
        return ",".join(ops + ([f"crop:{self.crop}"] if self.crop else []))


def parse_augment(spec: str | None) -> Augment | None:
    """Parse ``"hflip,crop:4"`` (comma-separated: ``hflip``, ``vflip``, ``crop:PIXELS``); None or "" is none."""
    if not spec or spec.strip().lower() in ("none", ""):
        return None
    hflip = vflip = False
    crop = 0
    for raw in spec.split(","):
        op, _, arg = raw.strip().partition(":")
        if op == "hflip" and not arg:
            hflip = True
        elif op == "vflip" and not arg:
            vflip = True
        elif op == "crop":
            if not arg.isdigit() or int(arg) < 1:
                raise FrostlineError(f"augment {raw.strip()!r}: crop needs a padding in pixels >= 1, e.g. crop:4")
            crop = int(arg)
        else:
            raise FrostlineError(f"unknown augmentation {raw.strip()!r}; expected hflip, vflip or crop:PIXELS"
                                 f"{did_you_mean(op, OPS)}")
    return Augment(hflip, vflip, crop)
