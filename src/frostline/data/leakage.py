"""Data leakage: the same sample on both sides of a split.

Keys per sample: text as written (exact) and text after normalisation (HTML entities decoded, case folded,
punctuation and symbols dropped, whitespace collapsed: near duplicates); a content hash of the file for images
(of the pixels for in-memory images), and of the bytes for tensors.
"""

from __future__ import annotations

import hashlib
import html
import string
import unicodedata
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import Dataset, Splits

PAIRS = (("train", "val"), ("train", "test"), ("val", "test"))


def normalize_text(text: str) -> str:
    """Case, whitespace and punctuation-insensitive form of ``text`` (HTML entities decoded).

    A text that is mostly punctuation and symbols (at most half of its characters letters or digits: emoticons such
    as ``:-)`` and ``:(``, code, ``<3``) keeps them, as they are what tells it apart; only case and whitespace fold.
    """
    folded = html.unescape(text).casefold() if "&" in text else text.casefold()
    if folded.isascii():  # the common case, in C: ASCII's punctuation and symbols are exactly string.punctuation
        visible = len(folded.translate(_ASCII_SPACE))
        alnum = len(folded) - len(folded.translate(_ASCII_ALNUM))
        if 2 * alnum <= visible:
            return " ".join(folded.split())
        return " ".join(folded.translate(_ASCII_PS).split())
    chars = [ch for ch in folded if not ch.isspace()]
    if 2 * sum(ch.isalnum() for ch in chars) <= len(chars):
        return " ".join(folded.split())
    kept = "".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in folded)
    return " ".join(kept.split())


_ASCII_SPACE = dict.fromkeys(i for i in range(128) if chr(i).isspace())  # deleted: the visible ones are left
_ASCII_ALNUM = dict.fromkeys(map(ord, string.ascii_letters + string.digits))
_ASCII_PS = dict.fromkeys(map(ord, string.punctuation), " ")


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def sample_keys(ds: Dataset, near: bool = False) -> list[str]:
    """One key per sample: equal keys mean the same sample (``near`` uses normalised text)."""
    if ds.kind == "text":
        return [normalize_text(t) if near else t for t in ds.inputs]
    if ds.kind == "image" and ds.keys and all(Path(k).is_file() for k in ds.keys):
        return [_digest(Path(k).read_bytes()) for k in ds.keys]
    arr = ds.inputs.detach().cpu().contiguous()
    return [_digest(arr[i].numpy().tobytes()) for i in range(len(arr))]


@dataclass
class LeakageReport:
    """Duplicates inside a data set and across its splits.

    Attributes:
        copies: Extra copies in the data before splitting (samples minus distinct samples), exact.
        duplicated: Distinct samples that occur more than once, exact.
        near_copies: Extra copies after normalisation (includes the exact ones).
        conflicting: Distinct samples (normalised) that carry more than one label.
        exact: ``"train-val"`` etc. -> samples of the second split whose exact key occurs in the first.
        near: Same with normalised keys (text only; equals ``exact`` for images and tensors).
        examples: A few leaked samples with their splits.
        sizes: Samples per split (``train``, ``val``, ``test``).
        kind: ``text``, ``image`` or ``tensor``: how samples were compared.
    """

    copies: int = 0
    duplicated: int = 0
    near_copies: int = 0
    conflicting: int = 0
    exact: dict[str, int] = field(default_factory=dict)
    near: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[str, list[int]] = field(default_factory=dict)
    conflict_examples: list[dict[str, Any]] = field(default_factory=list)
    conflicts_deduped: bool = False
    sizes: dict[str, int] = field(default_factory=dict)
    kind: str = "text"

    @property
    def leaked(self) -> int:
        """Validation and test samples that also occur (near-)exactly in an earlier split."""
        if self.positions:
            return sum(len(v) for v in self.positions.values())
        return sum(self.near.values())

    def leaked_by_split(self) -> dict[str, int]:
        """Distinct leaked samples per later split (``val``: seen in train; ``test``: seen in train or val)."""
        return {k: len(v) for k, v in self.positions.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (positions as counts per split)."""
        d = asdict(self)
        d["positions"] = self.leaked_by_split()
        return {**d, "leaked": self.leaked}


def within(ds: Dataset) -> tuple[int, int, int, int]:
    """(extra exact copies, distinct duplicated, extra near copies, distinct samples with conflicting labels)."""
    exact = Counter(sample_keys(ds))
    labels = _labels_by_key(ds)
    return (len(ds) - len(exact), sum(1 for c in exact.values() if c > 1), len(ds) - len(labels),
            sum(1 for s in labels.values() if len(s) > 1))


def _target_text(ds: Dataset, y: object) -> str:
    """A target as the user wrote it: a class name, a number, or the labels joined by ``|``."""
    if ds.task == "regression":
        return f"{y:g}"
    if ds.task == "multilabel":
        return "|".join(n for n, on in zip(ds.label_names, y, strict=True) if on)  # type: ignore[call-overload]
    return ds.label_names[y]  # type: ignore[index]


def _labels_by_key(ds: Dataset) -> dict[str, set[int]]:
    labels: dict[str, set[int]] = defaultdict(set)
    for key, y in zip(sample_keys(ds, near=True), ds.labels.tolist(), strict=True):
        labels[key].add(tuple(y) if isinstance(y, list) else y)
    return labels


def label_conflicts(ds: Dataset, limit: int = 5) -> tuple[int, list[dict[str, Any]]]:
    """Distinct samples (normalised) that carry more than one label, and a few of them (normalised text, or the
    content hash) with their labels."""
    conflicting = [(key, ys) for key, ys in _labels_by_key(ds).items() if len(ys) > 1]
    files: dict[str, list[str]] = defaultdict(list)
    if ds.kind != "text" and ds.keys:  # show pictures by their files, not by a hash of their content
        wanted = {key for key, _ in conflicting[:limit]}
        for key, name in zip(sample_keys(ds, near=True), ds.keys, strict=True):
            if key in wanted:
                files[key].append(name)
    examples = [{"sample": (" = ".join(files[key][:3]) if files.get(key) else key)[:300],
                 "labels": [_target_text(ds, y) for y in sorted(ys)]} for key, ys in conflicting[:limit]]
    return len(conflicting), examples


def check_splits(splits: Splits, source: Dataset | None = None, max_examples: int = 5) -> LeakageReport:
    """Count duplicates across train / validation / test (and inside ``source``, the data before splitting)."""
    report = LeakageReport(kind=splits.train.kind)
    if source is not None:
        report.copies, report.duplicated, report.near_copies, _ = within(source)
        report.conflicting, report.conflict_examples = label_conflicts(source)
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    report.sizes = {name: len(ds) for name, ds in parts.items()}
    keys = {name: sample_keys(ds) for name, ds in parts.items()}
    near = {name: sample_keys(ds, near=True) for name, ds in parts.items()}
    leaked: dict[str, set[int]] = {"val": set(), "test": set()}
    for a, b in PAIRS:
        seen_exact, seen_near = set(keys[a]), set(near[a])
        report.exact[f"{a}-{b}"] = sum(k in seen_exact for k in keys[b])
        hits = [i for i, k in enumerate(near[b]) if k in seen_near]
        report.near[f"{a}-{b}"] = len(hits)
        leaked[b].update(hits)
        for i in hits[: max(0, max_examples - len(report.examples))]:
            ds = parts[b]
            sample = ds.inputs[i] if ds.kind == "text" else (ds.keys[i] if ds.keys else f"#{int(ds.ids[i])}")
            report.examples.append({"sample": str(sample)[:160], "in": [a, b], "row": int(ds.ids[i])})
    report.positions = {k: sorted(v) for k, v in leaked.items()}
    return report


def dedup(ds: Dataset, near: bool = True) -> tuple[Dataset, int]:
    """Keep the first occurrence of every sample (normalised text when ``near``); returns it and the count dropped."""
    seen: set[str] = set()
    keep = []
    for i, key in enumerate(sample_keys(ds, near=near)):
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return ds.subset(np.array(keep, dtype=np.int64)), len(ds) - len(keep)
