"""A labelled data set (:class:`Dataset`) and its train / validation / test split (:class:`Splits`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from ..core.errors import FrostlineError
from .normalise import IMAGENET_MEAN, IMAGENET_STD  # noqa: F401  (their old home, for the 0.1 names)

Kind = Literal["text", "image", "tensor"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class Dataset:
    """Inputs with their targets.

    Attributes:
        kind: ``"text"`` (list of strings), ``"image"`` (uint8 tensor N x 3 x H x W) or ``"tensor"``.
        inputs: The inputs.
        labels: The targets (:mod:`frostline.data.targets`): class indices (int64, N) for classification, values
            (float64, N) for regression, a 0/1 matrix (uint8, N x L) for multilabel.
        label_names: Class names (index i is class i), the label names (column i) or the target's name.
        ids: Row index of each sample in its source (kept through splits, written to predictions.csv).
        source: Where the data came from.
        skipped: Rows of the source that could not be used (malformed or empty).
        dropped: Why they could not be used: reason -> where (``"row 12"`` counted as ``ids`` are, or a file name).
        keys: For images, the file path of each sample (for content hashes).
        task: ``classification``, ``regression`` or ``multilabel``.
        task_note: How the task was decided, when it was detected.
        notes: What reading did to the inputs, for the user (pictures converted to RGB, resized).
    """

    kind: Kind
    inputs: Any
    labels: np.ndarray
    label_names: list[str]
    ids: np.ndarray
    source: str = ""
    skipped: int = 0
    keys: list[str] = field(default_factory=list)
    task: str = "classification"
    task_note: str = ""
    notes: list[str] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=dict)

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
        """Samples per class name (multilabel: samples holding each label; regression: none)."""
        if self.task == "regression":
            return {}
        if self.task == "multilabel":
            counts = self.labels.sum(axis=0) if len(self) else np.zeros(len(self.label_names))
        else:
            counts = np.bincount(self.labels, minlength=len(self.label_names))
        return {name: int(c) for name, c in zip(self.label_names, counts, strict=True)}

    def strata(self) -> np.ndarray | None:
        """What a split is stratified on: the class (classification), the quintile of the target (regression), or
        nothing (multilabel: a split keeps samples whole)."""
        if self.task == "classification":
            return self.labels
        if self.task == "regression" and len(self) >= 10:
            edges = np.quantile(self.labels, [0.2, 0.4, 0.6, 0.8])
            return np.searchsorted(edges, self.labels, side="right").astype(np.int64)
        return None


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

    @property
    def task(self) -> str:
        """``classification``, ``regression`` or ``multilabel``."""
        return self.train.task

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


def dropped_summary(ds: Dataset, shown: int = 5) -> str | None:
    """One line saying which rows of ``ds``'s source were left out and why (``None`` when none were)."""
    if not ds.dropped:
        return None
    total = sum(len(v) for v in ds.dropped.values())
    parts = []
    for reason, where in ds.dropped.items():
        first = ", ".join(w.removeprefix("row ") if i else w for i, w in enumerate(where[:shown]))
        if where[0].startswith("row ") and len(where) > 1:
            first = "rows " + first.removeprefix("row ")
        parts.append(f"{len(where)} {reason} ({first}{', ...' if len(where) > shown else ''})")
    if ds.kind == "image":
        return f"{total} of {len(ds) + total} pictures in {ds.source} were dropped: {'; '.join(parts)}"
    return (f"{total} of {len(ds) + total} rows of {ds.source} were dropped: {'; '.join(parts)} (rows counted from 0 "
            "after any header, as predictions.csv's index)")
