"""Targets as read from a label column: which task they are (when the user did not say) and their encoding.

* classification: class indices (int64, N), names sorted (numerically when every name is an integer);
* regression: float64 values (N), the single name is the target's;
* multilabel: a 0/1 matrix (uint8, N x L) over the label names; a cell holds a JSON list (``["a", "b"]``, also
  what a JSONL list becomes) or names joined by the separator (``a|b``); an empty list is a sample with no label.
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..core.errors import FrostlineError
from ..core.task import check_task

#: multi-label cells: names joined by this, unless the cell is a JSON list
LABEL_SEP = "|"


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _is_list(text: str) -> bool:
    return text.startswith("[") and text.endswith("]")


def detect_task(raw: list[str], sep: str = LABEL_SEP) -> tuple[str, str]:
    """The task the label texts show, and why: lists or ``sep`` -> multilabel; numbers that are not all integers
    -> regression; anything else (integers included: they may be class codes) -> classification."""
    lists = sum(1 for r in raw if _is_list(r) or sep in r)
    if lists:
        return "multilabel", (f"{lists} of {len(raw)} labels are lists (JSON or joined by {sep!r}): multilabel; "
                              "pass --task to choose otherwise")
    numbers = [_number(r) for r in raw]
    found = [v for v in numbers if v is not None]
    if raw and len(found) >= 0.9 * len(raw) and len(found) < len(raw) and \
            not all(float(v).is_integer() for v in found):
        bad = next(r for r, v in zip(raw, numbers, strict=True) if v is None)
        return "regression", (f"{len(found)} of {len(raw)} labels are numbers with fractions (one that is not: "
                              f"{bad[:30]!r}): regression; pass --task classification to treat them as classes")
    if raw and all(v is not None for v in numbers):
        distinct = len(set(raw))
        if not all(float(v).is_integer() for v in numbers if v is not None):
            return "regression", (f"the labels are numbers with fractions ({distinct} distinct values): regression; "
                                  "pass --task classification to treat them as classes")
        if distinct > 10:
            return "classification", (f"the labels are {distinct} distinct integers: read as classes; pass --task "
                                      "regression if they are scores or amounts")
    return "classification", ""


def label_list(text: str, sep: str = LABEL_SEP, where: str = "") -> list[str]:
    """The label names of one multi-label cell (a JSON list or names joined by ``sep``)."""
    if _is_list(text):
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            raise FrostlineError(f"{where}label {text[:60]!r} starts like a JSON list but is not one; write "
                                 f"[\"a\", \"b\"] or a{sep}b") from None
        if not isinstance(items, list) or any(isinstance(i, dict | list) for i in items):
            raise FrostlineError(f"{where}label {text[:60]!r}: a multi-label cell is a list of names")
        names = [("true" if i else "false") if isinstance(i, bool) else str(i).strip() for i in items]
    else:
        names = [n.strip() for n in text.split(sep)]
    return sorted({n for n in names if n})


def encode_targets(raw: list[str], task: str | None, names: list[str] | None, source: str,
                   column: str = "label", sep: str = LABEL_SEP, rows: list[int] | None = None,
                   ) -> tuple[np.ndarray, list[str], str, str]:
    """Encode label texts for ``task`` (``None``: detected). Returns targets, names, the task and a note on how
    the task was chosen ('' when the user named it or it is plain classification)."""
    from .dataset import encode_labels, label_order

    kind, note = (task, "") if check_task(task) is not None else detect_task(raw, sep)
    assert kind is not None
    if kind == "classification":
        labels, names = encode_labels(raw, names, source)
        return labels, names, kind, note
    if kind == "regression":
        values = [_number(r) for r in raw]
        bad = next((i for i, v in enumerate(values) if v is None), None)
        if bad is not None:
            row = f" (row {rows[bad] + 1})" if rows else ""
            lists = sum(_is_list(r) for r in raw)
            held = f"; {lists} of {len(raw)} cells of {column!r} are lists of labels: --task multilabel reads them" \
                if lists > len(raw) // 2 else ""
            raise FrostlineError(f"{source}{row}: target {raw[bad][:40]!r} is not a finite number; a regression needs "
                                 f"a number in every row of {column!r}{held}")
        return np.array(values, dtype=np.float64), list(names or [column]), kind, note
    if task == "multilabel" and not any(_is_list(r) or sep in r for r in raw):
        raise FrostlineError(f"{source}: --task multilabel, but no label in {column!r} is a list (a JSON list, or "
                             f"names joined by {sep!r}): every sample has one label, which is a classification"
                             + ("; these are numbers: --task regression?" if all(_number(r) is not None for r in raw)
                                else ""))
    sets = [label_list(r, sep, f"{source}: ") for r in raw]
    seen = sorted({n for s in sets for n in s})
    names = list(names) if names else label_order(seen)
    unknown = sorted(set(seen) - set(names))
    if unknown:
        raise FrostlineError(f"{source}: labels {unknown[:5]} are not among the training labels {names[:20]}")
    if not names:
        raise FrostlineError(f"{source}: no sample has a label; a multi-label task needs at least one label name")
    index = {n: i for i, n in enumerate(names)}
    matrix = np.zeros((len(sets), len(names)), dtype=np.uint8)
    for row, s in enumerate(sets):
        matrix[row, [index[n] for n in s]] = 1
    return matrix, names, kind, note
