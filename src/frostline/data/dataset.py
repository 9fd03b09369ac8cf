"""A labelled data set (:class:`Dataset`) and its train / validation / test split (:class:`Splits`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from ..core.errors import FrostlineError

Kind = Literal["text", "image", "tensor"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Dataset:
    """Inputs with integer labels.

    Attributes:
        kind: ``"text"`` (list of strings), ``"image"`` (uint8 tensor N x 3 x H x W) or ``"tensor"``.
        inputs: The inputs.
        labels: Class indices, int64.
        label_names: Class names; index i is class i.
        ids: Row index of each sample in its source (kept through splits, written to predictions.csv).
        source: Where the data came from.
        skipped: Rows of the source that could not be used (malformed or empty).
        keys: For images, the file path of each sample (for content hashes).
    """

    kind: Kind
    inputs: Any
    labels: np.ndarray
    label_names: list[str]
    ids: np.ndarray
    source: str = ""
    skipped: int = 0
    keys: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: np.ndarray | list[int]) -> Dataset:
        """The samples at ``indices`` (positions, not ids)."""
        idx = np.asarray(indices, dtype=np.int64)
        if self.kind == "text":
            inputs: Any = [self.inputs[i] for i in idx]
        else:
            inputs = self.inputs[torch.as_tensor(idx)]
        keys = [self.keys[i] for i in idx] if self.keys else []
        return replace(self, inputs=inputs, labels=self.labels[idx], ids=self.ids[idx], keys=keys)

    def class_counts(self) -> dict[str, int]:
        """Samples per class name."""
        counts = np.bincount(self.labels, minlength=len(self.label_names))
        return {name: int(c) for name, c in zip(self.label_names, counts, strict=True)}


@dataclass
class Splits:
    """Train / validation / test datasets sharing one label order."""

    train: Dataset
    val: Dataset
    test: Dataset

    @property
    def label_names(self) -> list[str]:
        """Class names, in index order."""
        return self.train.label_names

    def sizes(self) -> dict[str, int]:
        """Samples per split."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def label_order(raw: list[str]) -> list[str]:
    unique = sorted(set(raw))
    if all(u.lstrip("-").isdigit() for u in unique):
        unique.sort(key=int)
    return unique


def encode_labels(raw: list[str], names: list[str] | None, source: str) -> tuple[np.ndarray, list[str]]:
    names = names or label_order(raw)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(raw) - set(index))
    if unknown:
        raise FrostlineError(f"{source}: labels {unknown[:5]} are not among the training labels {names}")
    if len(names) < 2:
        raise FrostlineError(f"{source}: found only one class {names}; classification needs at least two")
    return np.array([index[r] for r in raw], dtype=np.int64), names
