"""Labelled text tables: CSV / TSV with a header or without, and JSON lines."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.errors import FrostlineError, did_you_mean
from .dataset import Dataset
from .targets import detect_task, encode_targets
from .unlabelled import column_index, json_lines, read_rows


def read_table(
    path: str | os.PathLike[str],
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    header: bool | None = None,
    label_names: list[str] | None = None,
    task: str | None = None,
    delimiter: str | None = None,
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
        task: ``classification``, ``regression`` or ``multilabel``; ``None`` detects it from the labels
            (:func:`frostline.data.targets.detect_task`; the dataset's ``task_note`` says why).
        delimiter: The separator of a CSV-like file (default: tab for .tsv or a first line with a tab, else comma).

    Returns:
        A text :class:`Dataset`.
    """
    p = Path(path)
    if p.is_dir():
        raise FrostlineError(f"{str(path)!r} is a folder; read_table reads one CSV, TSV or JSONL file (a folder of "
                             "pictures, one sub-folder per class, is read by read_image_folder, or --data FOLDER)")
    if not p.is_file():
        raise FrostlineError(f"data file {str(path)!r} does not exist")
    dropped: dict[str, list[str]] = {}
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        texts, raw, ids = _read_jsonl(p, str(text_column or "text"), str(label_column or "label"), dropped)
    else:
        texts, raw, ids = _read_delimited(p, text_column, label_column, header, dropped, delimiter)
    column = str(label_column if label_column is not None else "label")
    return rows_to_dataset(p, texts, raw, ids, dropped, task, label_names, column)


def rows_to_dataset(p: Path, inputs: list[Any], raw: list[str], ids: list[int], dropped: dict[str, list[str]],
                    task: str | None, label_names: list[str] | None, column: str, kind: str = "text") -> Dataset:
    """Rows read from a file as a :class:`Dataset`: rows without a target dropped (and said, in ``dropped``), the
    task detected unless given, the targets encoded. ``inputs``: texts, or ``(3, H, W)`` uint8 pictures."""
    texts = inputs
    missing = [i for i, r in enumerate(raw) if _missing(r)]
    task_kind = task or detect_task([r for r in raw if not _missing(r)])[0]
    if missing and task_kind != "multilabel":  # the same for an empty cell and a NaN (pandas writes either)
        what = "with an empty or non-finite (NaN, inf) target" if task_kind == "regression" else \
            "with an empty label"
        dropped.setdefault(what, []).extend(f"row {ids[i]}" for i in missing)
        keep = [i for i, r in enumerate(raw) if not _missing(r)]
        texts, raw, ids = [texts[i] for i in keep], [raw[i] for i in keep], [ids[i] for i in keep]
    elif missing:
        raw = [r if r else "[]" for r in raw]  # an empty multi-label cell: the sample has no label
    skipped = sum(len(v) for v in dropped.values())
    if not texts:
        raise FrostlineError(f"{p}: no usable rows (skipped {skipped}: "
                             f"{'; '.join(f'{len(v)} {k}' for k, v in dropped.items()) or 'the file is empty'})")
    labels, names, found, note = encode_targets(raw, task, label_names, str(p), column, rows=ids)
    data: Any = texts if kind == "text" else torch.stack(texts)
    return Dataset(kind, data, labels, names, np.array(ids, dtype=np.int64), str(p), skipped,  # type: ignore[arg-type]
                   task=found, task_note=note, dropped=dropped)


def _missing(label: str) -> bool:
    """An empty cell, or a number that is not finite (``NaN``, ``inf``): no target."""
    if not label:
        return True
    try:
        return not math.isfinite(float(label))
    except ValueError:
        return False


def _read_delimited(p: Path, text_column: str | int | None, label_column: str | int | None,
                    header: bool | None, dropped: dict[str, list[str]], delimiter: str | None = None,
                    ) -> tuple[list[str], list[str], list[int]]:
    rows = read_rows(p, delimiter)
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
    texts, raw, ids = [], [], []
    for i, row in enumerate(rows[1:] if has_header else rows):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) <= max(t_col, l_col):
            dropped.setdefault(f"with fewer than {max(t_col, l_col) + 1} columns", []).append(f"row {i}")
            continue
        text, label = row[t_col], row[l_col].strip()  # text as written: exact duplicates stay exact
        if not text.strip():
            dropped.setdefault("with an empty text", []).append(f"row {i}")
            continue  # an empty label stays for now: a multi-label sample with no label (else dropped above)
        texts.append(text)
        raw.append(label)
        ids.append(i)
    return texts, raw, ids


def _label_text(value: Any, p: Path, line: int) -> str | None:
    """A JSON label as text (``None`` when missing): see :func:`read_table` for the rules."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan"  # NaN / Infinity: no target (dropped, or an error with --on-bad-rows error)
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int | str):
        return str(value).strip() or None
    if isinstance(value, list) and not any(isinstance(v, dict | list) for v in value):
        return json.dumps(value)  # a multi-label cell (an empty list is a sample with no label)
    raise FrostlineError(f"{p}, line {line + 1}: the label is {type(value).__name__} {json.dumps(value)[:40]}; "
                         "expected a string, a number, true/false or a list of names (multilabel)")


def _mixed_labels(p: Path, seen: dict[str, dict[str, str]]) -> None:
    """Warn when JSON labels of different types were counted as one class, or booleans sit beside other labels."""
    family = {"int": "number", "float": "number", "str": "string", "bool": "bool"}
    parts = [f"{', '.join(f'{v} ({k})' for k, v in kinds.items())} counted as one class {label!r}"
             for label, kinds in seen.items() if len({family.get(k, k) for k in kinds}) > 1]
    bools = sorted(label for label, kinds in seen.items() if "bool" in kinds)
    if bools and any(set(kinds) - {"bool"} for label, kinds in seen.items() if label not in bools):
        parts.append(f"{'/'.join(bools)} (bool) {'is a class' if len(bools) == 1 else 'are classes'} of "
                     f"{'its' if len(bools) == 1 else 'their'} own, not 1/0")
    if parts:
        warnings.warn(f"labels of mixed types in {p}: {'; '.join(parts)} (labels are compared as text)",
                      UserWarning, stacklevel=4)


def _read_jsonl(p: Path, text_key: str, label_key: str,
                dropped: dict[str, list[str]]) -> tuple[list[str], list[str], list[int]]:
    texts, raw, ids = [], [], []
    keys: set[str] = set()
    seen: dict[str, dict[str, str]] = {}
    for i, obj in json_lines(p):
        keys.update(obj)
        text, value = obj.get(text_key), obj.get(label_key)
        if isinstance(text, dict | list):
            raise FrostlineError(f"{p}, line {i + 1}: {text_key!r} is a {type(text).__name__}; expected a string")
        label = _label_text(value, p, i)
        if text is None or not str(text).strip():
            dropped.setdefault("with an empty or missing text", []).append(f"row {i}")
            continue
        if label is None:
            label = ""  # missing: dropped with the empty labels (a multi-label sample with none keeps it)
        if label and label != "nan":
            shown = json.dumps(value) if isinstance(value, bool) else repr(value)
            seen.setdefault(label, {}).setdefault(type(value).__name__, shown)
        texts.append(str(text))
        raw.append(label)
        ids.append(i)
    if not texts and keys and (text_key not in keys or label_key not in keys):
        missing = text_key if text_key not in keys else label_key
        raise FrostlineError(f"{p}: no key {missing!r} in the JSON lines{did_you_mean(missing, keys)}")
    _mixed_labels(p, seen)
    return texts, raw, ids
