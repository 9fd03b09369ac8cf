"""Labelled data: text tables (CSV/TSV/JSONL), image folders (PIL only), in-memory tensors; stratified splits."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .errors import FrostlineError, did_you_mean

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


def _label_order(raw: list[str]) -> list[str]:
    unique = sorted(set(raw))
    if all(u.lstrip("-").isdigit() for u in unique):
        unique.sort(key=int)
    return unique


def _encode_labels(raw: list[str], names: list[str] | None, source: str) -> tuple[np.ndarray, list[str]]:
    names = names or _label_order(raw)
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(raw) - set(index))
    if unknown:
        raise FrostlineError(f"{source}: labels {unknown[:5]} are not among the training labels {names}")
    if len(names) < 2:
        raise FrostlineError(f"{source}: found only one class {names}; classification needs at least two")
    return np.array([index[r] for r in raw], dtype=np.int64), names


def _delimiter(path: Path, first_line: str) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    return "\t" if "\t" in first_line else ","


def _column(spec: str | int | None, header: list[str] | None, default: str, what: str, path: Path) -> int:
    spec = default if spec is None else spec
    if isinstance(spec, int) or str(spec).isdigit():
        return int(spec)
    if header is None:
        raise FrostlineError(
            f"{path}: {what} column {spec!r} is a name but the file has no header; give a column number such as 0"
        )
    if spec not in header:
        raise FrostlineError(
            f"{path}: no {what} column {spec!r}; the header has {header}{did_you_mean(str(spec), header)} "
            "(a file without a header takes column numbers, e.g. --text-column 1 --label-column 0)"
        )
    return header.index(spec)


def read_table(
    path: str | os.PathLike[str],
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    header: bool | None = None,
    label_names: list[str] | None = None,
) -> Dataset:
    """Read a labelled text file: CSV, TSV (tab-separated, no quoting) or JSONL.

    Args:
        path: The file.
        text_column: Column name or number of the text (default ``"text"``).
        label_column: Column name or number of the label (default ``"label"``).
        header: Whether the first row is a header; ``None`` guesses (a header unless both columns are numbers).
        label_names: Fix the label order (e.g. a checkpoint's); otherwise sorted.

    Returns:
        A text :class:`Dataset`.
    """
    p = Path(path)
    if not p.is_file():
        raise FrostlineError(f"data file {str(path)!r} does not exist")
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        texts, raw, ids, skipped = _read_jsonl(p, str(text_column or "text"), str(label_column or "label"))
    else:
        texts, raw, ids, skipped = _read_delimited(p, text_column, label_column, header)
    if not texts:
        raise FrostlineError(f"{p}: no usable rows (skipped {skipped})")
    labels, names = _encode_labels(raw, label_names, str(p))
    return Dataset("text", texts, labels, names, np.array(ids, dtype=np.int64), str(p), skipped)


def _read_delimited(p: Path, text_column: str | int | None, label_column: str | int | None,
                    header: bool | None) -> tuple[list[str], list[str], list[int], int]:
    with open(p, encoding="utf-8", newline="") as fh:
        first = fh.readline()
        fh.seek(0)
        delim = _delimiter(p, first)
        reader = csv.reader(fh, delimiter=delim, quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL)
        rows = list(reader)
    if not rows:
        raise FrostlineError(f"{p}: the file is empty")
    numeric = all(c is not None and str(c).isdigit() for c in (text_column, label_column))
    has_header = (not numeric) if header is None else header
    head = [h.strip() for h in rows[0]] if has_header else None
    t_col = _column(text_column, head, "text", "text", p)
    l_col = _column(label_column, head, "label", "label", p)
    width = max((len(r) for r in rows[:1000]), default=0)
    for what, col in (("text", t_col), ("label", l_col)):
        if col >= width:
            raise FrostlineError(f"{p}: {what} column {col} does not exist: the rows have {width} column(s), "
                                 f"numbered 0..{width - 1}")
    texts, raw, ids, skipped = [], [], [], 0
    for i, row in enumerate(rows[1:] if has_header else rows):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) <= max(t_col, l_col):
            skipped += 1
            continue
        text, label = row[t_col], row[l_col].strip()  # text as written: exact duplicates stay exact
        if not text.strip() or not label:
            skipped += 1
            continue
        texts.append(text)
        raw.append(label)
        ids.append(i)
    return texts, raw, ids, skipped


def _read_jsonl(p: Path, text_key: str, label_key: str) -> tuple[list[str], list[str], list[int], int]:
    texts, raw, ids, skipped = [], [], [], 0
    keys: set[str] = set()
    with open(p, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            keys.update(obj)
            text, label = obj.get(text_key), obj.get(label_key)
            if text is None or label is None or not str(text).strip():
                skipped += 1
                continue
            texts.append(str(text))
            raw.append(str(label))
            ids.append(i)
    if not texts and keys and (text_key not in keys or label_key not in keys):
        missing = text_key if text_key not in keys else label_key
        raise FrostlineError(f"{p}: no key {missing!r} in the JSON lines{did_you_mean(missing, keys)}")
    return texts, raw, ids, skipped


def image_tensor(image: Any, size: int) -> torch.Tensor:
    """A PIL image as a ``(3, size, size)`` uint8 tensor (RGB, bilinear resize): how every image is read."""
    from PIL import Image

    rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)


def images_in(folder: Path, size: int) -> tuple[list[torch.Tensor], list[Path], int]:
    """Every readable image below ``folder`` (sorted paths), the paths, and how many image files were unreadable."""
    images, paths, skipped = [], [], 0
    for f in sorted(folder.rglob("*")):
        if f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
            continue
        image = _read_image(f, size)
        if image is None:
            skipped += 1
            continue
        images.append(image)
        paths.append(f)
    return images, paths, skipped


def _read_image(path: Path, size: int) -> torch.Tensor | None:
    """The image at ``path`` (``None`` when PIL cannot read it)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return image_tensor(im, size)
    except (UnidentifiedImageError, OSError):
        return None


def read_image_folder(root: str | os.PathLike[str], image_size: int = 64,
                      label_names: list[str] | None = None) -> Dataset:
    """Read ``root/<class>/<image>`` files with PIL, resized to ``image_size`` square, as uint8 tensors."""
    base = Path(root)
    if not base.is_dir():
        raise FrostlineError(f"image folder {str(root)!r} does not exist")
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if len(classes) < 2:
        raise FrostlineError(f"{base}: expected one sub-folder per class (at least two), found {classes}")
    images, raw, keys, skipped = [], [], [], 0
    for cls in classes:
        found, files, bad = images_in(base / cls, image_size)
        images += found
        raw += [cls] * len(found)
        keys += [str(f) for f in files]
        skipped += bad
    if not images:
        raise FrostlineError(f"{base}: no readable images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    labels, names = _encode_labels(raw, label_names, str(base))
    return Dataset("image", torch.stack(images), labels, names, np.arange(len(raw)), str(base), skipped, keys)


def from_tensors(x: torch.Tensor, y: torch.Tensor | np.ndarray | list[int],
                 label_names: list[str] | None = None) -> Dataset:
    """Wrap in-memory tensors: ``x`` of shape (N, ...) and integer labels ``y``."""
    labels = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y, dtype=np.int64)
    if len(labels) != len(x):
        raise FrostlineError(f"x has {len(x)} samples but y has {len(labels)} labels")
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    names = label_names or [str(i) for i in range(n_classes)]
    if labels.min(initial=0) < 0 or n_classes > len(names):
        raise FrostlineError(f"labels must be in 0..{len(names) - 1}, got range {labels.min()}..{labels.max()}")
    return Dataset("tensor", x, labels, list(names), np.arange(len(labels)), "tensors")


def _stratified(labels: np.ndarray, size: int | float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split positions into (taken, rest), taking ``size`` (count or fraction) stratified by label."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(labels))
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    try:
        taken, rest = train_test_split(positions, train_size=size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise FrostlineError(f"cannot split {len(labels)} samples ({size=}): {exc}") from None
    return np.sort(taken), np.sort(rest)


def limit(ds: Dataset, max_samples: int | None, seed: int = 0) -> Dataset:
    """A stratified sample of at most ``max_samples`` (the whole set when it is smaller or ``None``)."""
    if max_samples is None or max_samples >= len(ds):
        return ds
    if max_samples < 2 * len(ds.label_names):
        raise FrostlineError(f"--limit {max_samples} is too small for {len(ds.label_names)} classes: a stratified "
                             f"sample needs at least {2 * len(ds.label_names)}")
    taken, _ = _stratified(ds.labels, max_samples, seed)
    return ds.subset(taken)


def split(ds: Dataset, val: float = 0.15, test: float = 0.15, seed: int = 0,
          val_ds: Dataset | None = None, test_ds: Dataset | None = None) -> Splits:
    """Stratified train / validation / test split with a fixed seed; given splits are used as they are."""
    for name, frac in (("val", val), ("test", test)):
        if not 0 < frac < 1:
            raise FrostlineError(f"{name} fraction must be in (0, 1), got {frac!r}")
    rest = ds
    if test_ds is None:
        test_pos, rest_pos = _stratified(rest.labels, test, seed)
        test_ds, rest = rest.subset(test_pos), rest.subset(rest_pos)
    if val_ds is None:
        frac = val / (1 - test) if test_ds is not None and len(rest) < len(ds) else val
        val_pos, train_pos = _stratified(rest.labels, frac, seed + 1)
        val_ds, rest = rest.subset(val_pos), rest.subset(train_pos)
    return Splits(rest, val_ds, test_ds)


def fingerprint(path: str | os.PathLike[str]) -> str | None:
    """A content hash of a data file (a folder: its file names and sizes), to tell whether it changed."""
    import hashlib

    p = Path(path)
    h = hashlib.blake2b(digest_size=16)
    if p.is_file():
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file():
                h.update(f"{f.relative_to(p)}\0{f.stat().st_size}\n".encode())
        return h.hexdigest()
    return None
