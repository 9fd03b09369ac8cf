"""Labelled data: text tables (CSV/TSV/JSONL), image folders (PIL only), in-memory tensors; stratified splits."""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..core.errors import FrostlineError, did_you_mean
from .unlabelled import column_index, json_lines, read_rows

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


def read_table(
    path: str | os.PathLike[str],
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    header: bool | None = None,
    label_names: list[str] | None = None,
) -> Dataset:
    """Read a labelled text file: CSV, TSV (tab-separated, no quoting) or JSONL, as UTF-8 (a byte-order mark is
    dropped; other encodings, binary files and JSONL lines that are not JSON objects are errors naming the line).

    Labels are compared as text. In JSONL, a label may be a string, a number or a boolean: integers and
    integer-valued floats are the same label (``0`` and ``0.0`` are ``"0"``), booleans are ``"true"`` / ``"false"``.
    The same label written both as a number and as a string (``0`` and ``"0"``), or booleans beside other labels,
    is read this way with a warning naming the values.

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
    rows = read_rows(p)
    numeric = all(c is not None and str(c).isdigit() for c in (text_column, label_column))
    has_header = (not numeric) if header is None else header
    head = [h.strip() for h in rows[0]] if has_header else None
    t_col = column_index(text_column, head, "text", "text", p)
    l_col = column_index(label_column, head, "label", "label", p)
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


def _label_text(value: Any, p: Path, line: int) -> str | None:
    """A JSON label as text (``None`` when missing): see :func:`read_table` for the rules."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FrostlineError(f"{p}, line {line + 1}: label {value} is not a class; expected a string or a number")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int | str):
        return str(value).strip() or None
    raise FrostlineError(f"{p}, line {line + 1}: the label is {type(value).__name__} {json.dumps(value)[:40]}; "
                         "expected a string, a number or true/false")


def _mixed_labels(p: Path, seen: dict[str, dict[str, str]]) -> None:
    """Warn when JSON labels of different types were counted as one class, or booleans sit beside other labels."""
    family = {"int": "number", "float": "number", "str": "string", "bool": "bool"}
    parts = [f"{', '.join(f'{v} ({k})' for k, v in kinds.items())} counted as one class {label!r}"
             for label, kinds in seen.items() if len({family[k] for k in kinds}) > 1]
    bools = sorted(label for label, kinds in seen.items() if "bool" in kinds)
    if bools and any(set(kinds) - {"bool"} for label, kinds in seen.items() if label not in bools):
        parts.append(f"{'/'.join(bools)} (bool) {'is a class' if len(bools) == 1 else 'are classes'} of "
                     f"{'its' if len(bools) == 1 else 'their'} own, not 1/0")
    if parts:
        warnings.warn(f"labels of mixed types in {p}: {'; '.join(parts)} (labels are compared as text)",
                      UserWarning, stacklevel=4)


def _read_jsonl(p: Path, text_key: str, label_key: str) -> tuple[list[str], list[str], list[int], int]:
    texts, raw, ids, skipped = [], [], [], 0
    keys: set[str] = set()
    seen: dict[str, dict[str, str]] = {}
    for i, obj in json_lines(p):
        keys.update(obj)
        text, value = obj.get(text_key), obj.get(label_key)
        if isinstance(text, dict | list):
            raise FrostlineError(f"{p}, line {i + 1}: {text_key!r} is a {type(text).__name__}; expected a string")
        label = _label_text(value, p, i)
        if text is None or label is None or not str(text).strip():
            skipped += 1
            continue
        shown = json.dumps(value) if isinstance(value, bool) else repr(value)
        seen.setdefault(label, {}).setdefault(type(value).__name__, shown)
        texts.append(str(text))
        raw.append(label)
        ids.append(i)
    if not texts and keys and (text_key not in keys or label_key not in keys):
        missing = text_key if text_key not in keys else label_key
        raise FrostlineError(f"{p}: no key {missing!r} in the JSON lines{did_you_mean(missing, keys)}")
    _mixed_labels(p, seen)
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


def from_tensors(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray | list[int],
                 label_names: list[str] | None = None) -> Dataset:
    """Wrap in-memory tensors as a dataset.

    Args:
        x: (N, ...) float32 features; float16, bfloat16 and float64 are converted to float32. uint8 of shape
            (N, 3, H, W) is read as images (scaled and normalised like image files). Other dtypes are an error.
        y: N integer class indices in ``0..K-1`` (a tensor, an array or a list; floats are an error).
        label_names: The K class names (default ``"0"``, ``"1"``, ...).
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


def _describe(t: Any) -> str:
    return f"{t.dtype} of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__


def _stratified(labels: np.ndarray, size: int | float, seed: int, what: str,
                rare_taken: bool = False) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """Split positions into (taken, rest), taking ``size`` (count or fraction) stratified by label (``what``
    names the option that asked, for errors).

    A class with a single sample cannot be stratified: its sample goes to the rest (to ``taken`` when
    ``rare_taken``) and the other classes stay stratified. Returns taken, rest and those classes.
    """
    from sklearn.model_selection import train_test_split

    positions, counts = np.arange(len(labels)), np.bincount(labels)
    rare = {int(c) for c in np.flatnonzero(counts == 1)}
    single = counts[labels] == 1
    pool, n_taken = positions[~single], math.floor(size * len(labels)) if isinstance(size, float) else int(size)
    n_pool = n_taken - (int(single.sum()) if rare_taken else 0) if rare else size
    k, share = int((counts > 0).sum()), f"{what} is {n_taken} of {len(labels)} samples"
    try:
        if rare and not 0 < n_pool < len(pool):
            taken, rest = (pool, pool[:0]) if n_pool >= len(pool) else (pool[:0], pool)
        else:
            taken, rest = train_test_split(pool, train_size=n_pool, random_state=seed, stratify=labels[pool])
    except ValueError:
        if not (rare or rare_taken) and 0 < n_taken < len(labels):
            raise FrostlineError(f"cannot split stratified: {share}; a stratified split needs at least one sample "
                                 f"of each of the {k} classes on both sides: use more data or change "
                                 f"{what.split()[0]}") from None
        n = int(n_pool) if rare else n_taken
        if 0 < n < len(pool):  # too few to stratify: a random split
            taken, rest = train_test_split(pool, train_size=n, random_state=seed)
        else:
            taken, rest = (pool, pool[:0]) if n >= len(pool) else (pool[:0], pool)
    side = positions[single]
    taken, rest = (np.concatenate([taken, side]), rest) if rare_taken else (taken, np.concatenate([rest, side]))
    if not len(taken) or not len(rest):
        raise FrostlineError(f"cannot split: {share}, which leaves {len(taken)} on one side and {len(rest)} on the "
                             f"other (a single sample of a class stays in train); use more data or change "
                             f"{what.split()[0]}")
    return np.sort(taken), np.sort(rest), rare


def limit(ds: Dataset, max_samples: int | None, seed: int = 0) -> Dataset:
    """A stratified sample of at most ``max_samples`` (the whole set when it is smaller or ``None``)."""
    if max_samples is None or max_samples >= len(ds):
        return ds
    if max_samples < 2 * len(ds.label_names):
        raise FrostlineError(f"--limit {max_samples} is too small for {len(ds.label_names)} classes: a stratified "
                             f"sample needs at least {2 * len(ds.label_names)}")
    taken, _, _ = _stratified(ds.labels, max_samples, seed, f"--limit {max_samples}", rare_taken=True)
    return ds.subset(taken)


def split(ds: Dataset, val: float = 0.15, test: float = 0.15, seed: int = 0,
          val_ds: Dataset | None = None, test_ds: Dataset | None = None) -> Splits:
    """Stratified train / validation / test split with a fixed seed; given splits are used as they are.

    A class with a single sample left to split keeps it in train (the others stay stratified), with a warning;
    a class left without any training sample is a warning too.
    """
    for name, frac in (("val", val), ("test", test)):
        if not 0 < frac < 1:
            raise FrostlineError(f"{name} fraction must be in (0, 1), got {frac!r}")
    rest, rare = ds, set()
    if test_ds is None:
        test_pos, rest_pos, rare = _stratified(rest.labels, test, seed, f"--test-frac {test}")
        test_ds, rest = rest.subset(test_pos), rest.subset(rest_pos)
    if val_ds is None:
        frac = val / (1 - test) if test_ds is not None and len(rest) < len(ds) else val
        val_pos, train_pos, more = _stratified(rest.labels, frac, seed + 1, f"--val-frac {val}")
        val_ds, rest, rare = rest.subset(val_pos), rest.subset(train_pos), rare | more
    splits = Splits(rest, val_ds, test_ds)
    _warn_thin(splits, rare)
    return splits


def _warn_thin(splits: Splits, rare: set[int]) -> None:
    """Warn about classes too small to stratify (where their samples went) and classes without training samples."""
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    counts = {k: np.bincount(d.labels, minlength=len(splits.label_names)) for k, d in parts.items()}

    def where(c: int) -> str:
        total = sum(int(n[c]) for n in counts.values())
        placed = ", ".join(f"{counts[k][c]} in {k}" for k in parts if counts[k][c])
        return f"class {names[c]!r}: {total} sample{'s' if total != 1 else ''}" + (f", {placed}" if placed else "")

    names = splits.label_names
    if rare:
        warnings.warn("too few samples to stratify (" + "; ".join(map(where, sorted(rare))) + "): a class with a "
                      "single sample left to split keeps it in train; the other classes are split stratified",
                      UserWarning, stacklevel=3)
    empty = [c for c in range(len(names)) if not counts["train"][c]]
    if empty:
        warnings.warn("no training sample (" + "; ".join(map(where, empty)) + "): the model cannot learn "
                      f"{'it' if len(empty) == 1 else 'them'}; add samples or leave the class out", UserWarning,
                      stacklevel=3)
