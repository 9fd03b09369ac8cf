"""Stratified train / validation / test splits, and a stratified sample of a data set."""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..core.errors import FrostlineError
from .dataset import Dataset, Splits


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


def _random(n: int, size: int | float, seed: int, what: str) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """Split positions ``0..n-1`` at random (no strata: multi-label samples are kept whole)."""
    n_taken = math.floor(size * n) if isinstance(size, float) else int(size)
    if not 0 < n_taken < n:
        raise FrostlineError(f"cannot split: {what} is {n_taken} of {n} samples, which leaves one side empty; use "
                             f"more data or change {what.split()[0]}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:n_taken]), np.sort(order[n_taken:]), set()


def _take(ds: Dataset, size: int | float, seed: int, what: str,
          rare_taken: bool = False) -> tuple[np.ndarray, np.ndarray, set[int]]:
    strata = ds.strata()
    if strata is None:
        return _random(len(ds), size, seed, what)
    return _stratified(strata, size, seed, what, rare_taken)


def limit(ds: Dataset, max_samples: int | None, seed: int = 0) -> Dataset:
    """A sample of at most ``max_samples`` (the whole set when it is smaller or ``None``), stratified by class
    (classification) or by target quintile (regression)."""
    if max_samples is None or max_samples >= len(ds):
        return ds
    if ds.task != "classification":
        taken, _, _ = _take(ds, max_samples, seed, f"--limit {max_samples}", rare_taken=True)
        return ds.subset(taken)
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
        test_pos, rest_pos, rare = _take(rest, test, seed, f"--test-frac {test}")
        test_ds, rest = rest.subset(test_pos), rest.subset(rest_pos)
    if val_ds is None:
        frac = val / (1 - test) if test_ds is not None and len(rest) < len(ds) else val
        val_pos, train_pos, more = _take(rest, frac, seed + 1, f"--val-frac {val}")
        val_ds, rest, rare = rest.subset(val_pos), rest.subset(train_pos), rare | more
    splits = Splits(rest, val_ds, test_ds)
    if ds.task == "classification":
        _warn_thin(splits, rare)
    elif ds.task == "multilabel":
        empty = [n for n, c in splits.train.class_counts().items() if not c]
        if empty:
            warnings.warn(f"no training sample has label(s) {empty[:10]}: the model cannot learn them; add samples "
                          "or leave them out", UserWarning, stacklevel=2)
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
