"""Parquet files (pyarrow) and Hugging Face ``datasets`` folders (``save_to_disk``): texts or encoded pictures with
their labels, read column by column in record batches (a 1 GB file is never loaded whole: only the two columns, a
batch at a time).

A label column may hold strings, integers (a ``datasets`` ``ClassLabel`` gives its names), numbers (regression),
booleans or lists (multi-label). A text column holding encoded pictures (bytes, or the ``{"bytes", "path"}`` structs
of the ``datasets`` ``Image`` feature) makes a picture data set. Both formats are optional extras:
``pip install "frostline[parquet]"`` (pyarrow) and ``"frostline[datasets]"``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import FrostlineError, did_you_mean
from .dataset import Dataset
from .images import ImageFacts, image_tensor

#: record-batch size: rows read at a time
BATCH_ROWS = 8192
#: a text column named nothing: these are tried in order (pictures: ``image`` / ``img``)
TEXT_NAMES = ("text", "sentence", "image", "img")
SPLIT_NAMES = {"train": ("train",), "val": ("validation", "valid", "val", "dev"), "test": ("test",)}


def _need(module: str, extra: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise FrostlineError(f"reading {what} needs {module.split('.')[0]}: pip install \"frostline[{extra}]\""
                             ) from None


def is_saved_dataset(path: Path) -> bool:
    """A folder written by ``datasets``' ``save_to_disk`` (one data set, or a ``DatasetDict`` of splits)."""
    return path.is_dir() and ((path / "dataset_dict.json").is_file() or
                              ((path / "dataset_info.json").is_file() and (path / "state.json").is_file()))


def _columns(names: list[str], text_column: str | None, label_column: str | None, where: str) -> tuple[str, str]:
    text = text_column or next((n for n in TEXT_NAMES if n in names), "text")
    label = label_column or "label"
    for what, name in (("text", text), ("label", label)):
        if name not in names:
            raise FrostlineError(f"{where}: no {what} column {name!r}; the columns are {names[:20]}"
                                 f"{did_you_mean(name, names)}")
    if text == label:
        raise FrostlineError(f"{where}: the text and label columns are the same ({text!r})")
    return text, label


def _label_text(value: Any) -> str:
    """A label value as read_table reads a JSONL value ('' when missing: dropped with the empty labels)."""
    from .tables import _label_text as jsonl_label

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, tuple):
        value = list(value)
    text = jsonl_label(value, Path("<column>"), 0) if value is not None else None
    return text or ""


def _gather(batches: Iterator[Any], text: str, label: str, names: list[str] | None, size: int | None,
            where: str, task: str | None = None, label_names: list[str] | None = None) -> Dataset:
    """Rows of the record batches as a :class:`Dataset` (the labelled-table rules: empty rows dropped and said)."""
    from .tables import rows_to_dataset

    inputs: list[Any] = []
    raw: list[str] = []
    ids: list[int] = []
    dropped: dict[str, list[str]] = {}
    facts = ImageFacts(size or 224)
    row, images = 0, None
    for batch in batches:
        xs, ys = batch.column(text).to_pylist(), batch.column(label).to_pylist()
        for x, y in zip(xs, ys, strict=True):
            if images is None and x is not None:
                images = isinstance(x, bytes | bytearray | dict)
            value = [names[i] if isinstance(i, int) and names and 0 <= i < len(names) else i for i in y] \
                if isinstance(y, list) else names[y] if isinstance(y, int) and names and 0 <= y < len(names) else y
            if images:
                picture = _picture(x, size or 224, facts)
                if picture is None:
                    dropped.setdefault("unreadable pictures", []).append(f"row {row}")
                else:
                    inputs.append(picture)
                    raw.append(_label_text(value))
                    ids.append(row)
            elif x is None or not str(x).strip():
                dropped.setdefault("with an empty or missing text", []).append(f"row {row}")
            else:
                inputs.append(str(x))
                raw.append(_label_text(value))
                ids.append(row)
            row += 1
    if label_names is None and names and (task or "classification") == "classification":
        present = set(raw)
        label_names = [n for n in names if n in present] or None  # a ClassLabel's own order
    ds = rows_to_dataset(Path(where), inputs, raw, ids, dropped, task, label_names, label,
                         kind="image" if images else "text")
    if images:
        ds.notes.append(f"images: {facts.describe()}")
    return ds


def _picture(value: Any, size: int, facts: ImageFacts) -> torch.Tensor | None:
    from PIL import Image, UnidentifiedImageError

    data = value.get("bytes") if isinstance(value, dict) else value
    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return image_tensor(img, size, facts)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def read_parquet(path: str | Path, text_column: str | None = None, label_column: str | None = None,
                 image_size: int | None = None, task: str | None = None,
                 label_names: list[str] | None = None) -> Dataset:
    """A labelled Parquet file: only the text (or picture) and label columns, in record batches."""
    pq = _need("pyarrow.parquet", "parquet", "Parquet files")
    p = Path(path)
    try:
        file = pq.ParquetFile(p)
    except Exception as exc:  # pyarrow raises its own error types for a damaged file
        raise FrostlineError(f"{p} is not a readable Parquet file ({type(exc).__name__}: {str(exc)[:160]})") from None
    text, label = _columns(list(file.schema_arrow.names), text_column, label_column, str(p))
    names = _class_names(file.schema_arrow.metadata, label)
    return _gather(file.iter_batches(batch_size=BATCH_ROWS, columns=[text, label]), text, label, names, image_size,
                   str(p), task, label_names)


def _class_names(metadata: dict[bytes, bytes] | None, label: str) -> list[str] | None:
    """The ``ClassLabel`` names a ``datasets``-written Parquet file records in its schema metadata."""
    try:
        info = json.loads((metadata or {}).get(b"huggingface", b"{}"))
        feature = info.get("info", {}).get("features", {}).get(label, {})
        return list(feature["names"]) if feature.get("_type") == "ClassLabel" else None
    except (ValueError, AttributeError, KeyError, TypeError):
        return None


def read_saved_splits(path: str | Path, text_column: str | None = None, label_column: str | None = None,
                      image_size: int | None = None, task: str | None = None) -> dict[str, Dataset]:
    """A ``datasets`` folder: ``{"train": ..., "val": ..., "test": ...}`` for the splits it has (a single data set
    is ``train``); splits named train, validation (or valid, val, dev) and test are used as given."""
    datasets = _need("datasets", "datasets", "a Hugging Face datasets folder")
    p = Path(path)
    try:
        loaded = datasets.load_from_disk(str(p))
    except Exception as exc:  # datasets raises FileNotFoundError / its own errors for a damaged folder
        raise FrostlineError(f"{p} is not a readable datasets folder ({type(exc).__name__}: {str(exc)[:160]})"
                             ) from None
    parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    out: dict[str, Dataset] = {}
    for key, aliases in SPLIT_NAMES.items():
        name = next((a for a in aliases if a in parts), None)
        if name is None:
            continue
        ds = parts[name]
        text, label = _columns(list(ds.column_names), text_column, label_column, f"{p} [{name}]")
        feature = ds.features[label]
        names = list(getattr(feature, "names", None) or getattr(getattr(feature, "feature", None), "names", None)
                     or []) or None
        table = ds.data.table.select([text, label])
        train = out.get("train")  # read first: the other splits take its task and label order
        out[key] = _gather(iter(table.to_batches(BATCH_ROWS)), text, label, names, image_size, f"{p} [{name}]",
                           train.task if train else task, train.label_names if train else None)
    if "train" not in out:
        raise FrostlineError(f"{p} has splits {sorted(parts)}; frostline trains on one named 'train'")
    return out
