"""Labelled images from a folder per class (PIL only), and in-memory tensors.

Every picture becomes a ``(3, size, size)`` uint8 tensor: converted to RGB (a greyscale picture's grey level is
repeated in the three channels; an alpha channel is dropped) and resized to the square ``size`` (bilinear; a
picture that is not square is stretched). :class:`ImageFacts` counts what was converted so that the run can say so.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import FrostlineError
from ..core.task import check_task
from .dataset import IMAGE_SUFFIXES, Dataset, Kind, encode_labels

GREY_MODES = {"1", "L", "LA", "I", "I;16", "F", "La"}


class ImageFacts:
    """What reading a set of pictures did to them: greyscale or alpha converted, original sizes, the target size."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self.grey = 0
        self.alpha = 0
        self.sizes: set[tuple[int, int]] = set()

    def add(self, image: Any) -> None:
        """Count one PIL image before conversion."""
        self.count += 1
        mode = image.mode
        if mode == "P":
            mode = "RGBA" if "transparency" in image.info else "RGB"
        self.grey += mode in GREY_MODES
        self.alpha += mode in ("RGBA", "LA", "La", "PA")
        if len(self.sizes) < 1000:
            self.sizes.add(tuple(image.size))

    def merge(self, other: ImageFacts) -> None:
        """Add another reader's counts."""
        self.count += other.count
        self.grey += other.grey
        self.alpha += other.alpha
        self.sizes |= other.sizes

    def describe(self) -> str:
        """One line: sizes found, what was converted, the size they were resized to."""
        if not self.count:
            return "no pictures"
        ws, hs = [w for w, _ in self.sizes], [h for _, h in self.sizes]
        found = (f"{ws[0]}x{hs[0]}" if len(self.sizes) == 1
                 else f"{min(ws)}-{max(ws)} x {min(hs)}-{max(hs)} px")
        parts = [f"{self.count} pictures, {found}"]
        if self.grey:
            parts.append(("all" if self.grey == self.count else f"{self.grey}") + " greyscale: grey repeated into "
                         "3 channels (RGB)")
        if self.alpha:
            parts.append(f"{self.alpha} with transparency: alpha dropped")
        if any(w != h for w, h in self.sizes):
            parts.append("not all square: stretched to square")
        same = self.sizes == {(self.size, self.size)}
        parts.append(f"kept at {self.size}x{self.size}" if same else f"resized to {self.size}x{self.size} (bilinear)")
        return "; ".join(parts)


def image_tensor(image: Any, size: int, facts: ImageFacts | None = None) -> torch.Tensor:
    """A PIL image as a ``(3, size, size)`` uint8 tensor (RGB, bilinear resize): how every image is read."""
    from PIL import Image

    if facts is not None:
        facts.add(image)
    rgb = image.convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)


def images_in(folder: Path, size: int, facts: ImageFacts | None = None
              ) -> tuple[list[torch.Tensor], list[Path], list[Path], list[Path]]:
    """Every readable image below ``folder`` (sorted paths), their paths, the image files PIL could not read, and
    the other files (not pictures by their suffix; hidden files aside)."""
    images, paths, unreadable, others = [], [], [], []
    for f in sorted(folder.rglob("*")):
        if not f.is_file() or any(part.startswith(".") for part in f.relative_to(folder).parts):
            continue
        if f.suffix.lower() not in IMAGE_SUFFIXES:
            others.append(f)
            continue
        image = _read_image(f, size, facts)
        if image is None:
            unreadable.append(f)
            continue
        images.append(image)
        paths.append(f)
    return images, paths, unreadable, others


def skipped_notes(base: Path, unreadable: list[Path], others: list[Path]) -> list[str]:
    """What reading left out, in words: unreadable pictures by name, other files by suffix."""
    def names(paths: list[Path]) -> str:
        shown = ", ".join(str(p.relative_to(base)) for p in paths[:5])
        return shown + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")

    notes = []
    if unreadable:
        notes.append(f"{len(unreadable)} image file(s) could not be read (damaged, empty or not the format their "
                     f"suffix says) and were SKIPPED: {names(unreadable)}")
    if others:
        suffixes = sorted({p.suffix.lower() or "(no suffix)" for p in others})
        notes.append(f"{len(others)} file(s) that are not pictures ignored ({', '.join(suffixes[:6])}): "
                     f"{names(others)}")
    return notes


def _read_image(path: Path, size: int, facts: ImageFacts | None) -> torch.Tensor | None:
    """The image at ``path`` (``None`` when PIL cannot read it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return image_tensor(im, size, facts)
    except (UnidentifiedImageError, OSError):
        return None


def read_image_folder(root: str | os.PathLike[str], image_size: int = 224,
                      label_names: list[str] | None = None) -> Dataset:
    """Read ``root/<class>/<image>`` files with PIL, resized to ``image_size`` square, as uint8 tensors.

    The dataset's ``notes`` say what reading did (sizes found, greyscale converted, resized).
    """
    base = Path(root)
    if not base.is_dir():
        raise FrostlineError(f"image folder {str(root)!r} does not exist")
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise FrostlineError(f"{base}: expected one sub-folder per class (at least two), found {classes}")
    images, raw, keys, unreadable, others = [], [], [], [], []
    facts = ImageFacts(image_size)
    for cls in classes:
        found, files, bad, other = images_in(base / cls, image_size, facts)
        images += found
        raw += [cls] * len(found)
        keys += [str(f) for f in files]
        unreadable += bad
        others += other
    if not images:
        raise FrostlineError(f"{base}: no readable images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    labels, names = encode_labels(raw, label_names, str(base))
    dropped = {"unreadable pictures (damaged, empty or not the format their suffix says)":
               [str(f.relative_to(base)) for f in unreadable]} if unreadable else {}
    return Dataset("image", torch.stack(images), labels, names, np.arange(len(raw)), str(base), len(unreadable), keys,
                   notes=[f"images: {facts.describe()}", *skipped_notes(base, [], others)], dropped=dropped)


def from_tensors(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | list[int],
                 label_names: list[str] | None = None, task: str = "classification") -> Dataset:
    """Wrap in-memory tensors as a dataset.

    Args:
        x: (N, ...) float32 features; float16, bfloat16 and float64 are converted to float32. uint8 of shape
            (N, 3, H, W) is read as images (scaled and normalised like image files). Other dtypes are an error.
        y: N integer class indices in ``0..K-1`` (a tensor, an array or a list; floats are an error).
        label_names: The K class names (default ``"0"``, ``"1"``, ...).
        task: ``"regression"``: ``y`` holds N finite numbers (``label_names``: the target's name);
            ``"multilabel"``: ``y`` is an N x L matrix of 0 / 1 (``label_names``: the L label names).
    """
    x = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
    if not isinstance(x, torch.Tensor) or x.dim() == 0 or len(x) == 0:
        raise FrostlineError(f"x must be a tensor of shape (N, ...) with N >= 1 samples, got {_describe(x)}")
    kind: Kind = "tensor"
    if x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3:
        kind = "image"
    elif x.dtype in (torch.float16, torch.bfloat16, torch.float64):
        x = x.float()
    elif x.dtype != torch.float32:
        raise FrostlineError(f"x is {_describe(x)}; expected float32 features (float16, bfloat16 and float64 are "
                             "converted) or uint8 images of shape (N, 3, H, W)")
    if task != "classification":
        return _task_tensors(kind, x, y, label_names, task)
    if not isinstance(y, torch.Tensor) and np.asarray(y).dtype.kind not in "biufc":
        raise FrostlineError(f"y holds {np.asarray(y).dtype} values; expected integer class indices 0..K-1 (class "
                             "names go in label_names)")
    yt = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if yt.dim() != 1 or len(yt) != len(x):
        raise FrostlineError(f"x has {len(x)} samples but y has {len(yt) if yt.dim() else 0} labels ({_describe(yt)});"
                             " expected one class index per sample (for one-hot labels: y.argmax(1))")
    if yt.dtype.is_floating_point or yt.dtype.is_complex or yt.dtype == torch.bool:
        raise FrostlineError(f"y is {_describe(yt)}; expected integer class indices 0..K-1 (e.g. y.long())")
    labels = yt.detach().cpu().numpy().astype(np.int64)
    names = list(label_names) if label_names else [str(i) for i in range(int(labels.max()) + 1)]
    if labels.min() < 0 or labels.max() >= len(names):
        raise FrostlineError(f"y must hold class indices in 0..{len(names) - 1} ({len(names)} classes), got "
                             f"{labels.min()}..{labels.max()}")
    return Dataset(kind, x, labels, names, np.arange(len(labels)), "tensors")


def _task_tensors(kind: Kind, x: torch.Tensor, y: Any, label_names: list[str] | None, task: str) -> Dataset:
    check_task(task, "task")
    arr = (y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)).astype(np.float64)
    if task == "regression":
        if arr.ndim != 1 or len(arr) != len(x):
            raise FrostlineError(f"x has {len(x)} samples but y has shape {arr.shape}; a regression needs one number "
                                 "per sample")
        if not np.isfinite(arr).all():
            raise FrostlineError(f"y holds {int((~np.isfinite(arr)).sum())} values that are not finite numbers")
        return Dataset(kind, x, arr, list(label_names or ["target"]), np.arange(len(arr)), "tensors",
                       task="regression")
    if arr.ndim != 2 or len(arr) != len(x) or not np.isin(arr, (0, 1)).all():
        raise FrostlineError(f"y has shape {arr.shape}; a multi-label task needs an N x L matrix of 0 / 1 with "
                             f"N = {len(x)} samples")
    names = list(label_names) if label_names else [str(i) for i in range(arr.shape[1])]
    if len(names) != arr.shape[1]:
        raise FrostlineError(f"got {len(names)} label names for {arr.shape[1]} label columns")
    return Dataset(kind, x, arr.astype(np.uint8), names, np.arange(len(arr)), "tensors", task="multilabel")


def _describe(t: Any) -> str:
    return f"{t.dtype} of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
