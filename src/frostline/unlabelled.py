"""Inputs without labels, for ``predict``: a table's text column, a ``.txt`` file, or a folder of images."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch

from .data import IMAGE_SUFFIXES, Dataset, _column, _delimiter, images_in
from .errors import FrostlineError


def read_unlabelled(path: str | os.PathLike[str], text_column: str | int | None = None, header: bool | None = None,
                    image_size: int = 64) -> tuple[Dataset, list[str]]:
    """Read inputs without labels, for prediction: a text table's text column, a ``.txt`` file (one text per line),
    or a folder of images (searched recursively). Returns a dataset (labels all 0, no label names) and one display
    name per sample (the text, or the image's path relative to the folder).
    """
    p = Path(path)
    if p.is_dir():
        return _read_unlabelled_images(p, image_size)
    if not p.is_file():
        raise FrostlineError(f"data {str(path)!r} does not exist")
    if p.suffix.lower() == ".txt":
        with open(p, encoding="utf-8") as fh:
            pairs = [(i, line.rstrip("\n")) for i, line in enumerate(fh) if line.strip()]
    elif p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        key = str(text_column or "text")
        pairs = []
        with open(p, encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if line.strip():
                    obj = json.loads(line)
                    if isinstance(obj, dict) and obj.get(key) is not None and str(obj[key]).strip():
                        pairs.append((i, str(obj[key])))
    else:
        pairs = _unlabelled_rows(p, text_column, header)
    if not pairs:
        raise FrostlineError(f"{p}: no texts found (column {text_column!r})")
    texts = [t for _, t in pairs]
    ds = Dataset("text", texts, np.zeros(len(texts), dtype=np.int64), [], np.array([i for i, _ in pairs]), str(p))
    return ds, texts


def _unlabelled_rows(p: Path, text_column: str | int | None, header: bool | None) -> list[tuple[int, str]]:
    with open(p, encoding="utf-8", newline="") as fh:
        first = fh.readline()
        fh.seek(0)
        delim = _delimiter(p, first)
        rows = list(csv.reader(fh, delimiter=delim, quoting=csv.QUOTE_NONE if delim == "\t" else csv.QUOTE_MINIMAL))
    if not rows:
        raise FrostlineError(f"{p}: the file is empty")
    first_row = [c.strip() for c in rows[0]]
    if text_column is not None and not str(text_column).isdigit():
        has_header = True if header is None else header
    elif text_column is not None:
        has_header = bool(header)
    else:  # one column: a list of texts (a header only if it reads "text"); else the column must be named
        if max(len(r) for r in rows) > 1:
            raise FrostlineError(f"{p} has {len(first_row)} columns; say which holds the text with --text-column "
                                 f"(a name from {first_row} or a number)")
        has_header = first_row[0].lower() == "text" if header is None else header
        text_column = 0
    head = first_row if has_header else None
    col = _column(text_column, head, "text", "text", p)
    width = max((len(r) for r in rows[:1000]), default=0)
    if col >= width:
        raise FrostlineError(f"{p}: text column {col} does not exist: the rows have {width} column(s), numbered "
                             f"0..{width - 1}")
    out = []
    for i, row in enumerate(rows[1:] if has_header else rows):
        if len(row) > col and row[col].strip():
            out.append((i, row[col]))
    return out


def _read_unlabelled_images(base: Path, image_size: int) -> tuple[Dataset, list[str]]:
    images, paths, skipped = images_in(base, image_size)
    names = [str(f.relative_to(base)) for f in paths]
    if not images:
        raise FrostlineError(f"{base}: no readable images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    ds = Dataset("image", torch.stack(images), np.zeros(len(images), dtype=np.int64), [], np.arange(len(images)),
                 str(base), skipped, [str(base / n) for n in names])
    return ds, names
