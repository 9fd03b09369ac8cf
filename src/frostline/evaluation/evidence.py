"""The evidence findings rest on: binomial intervals, the parameters each strategy would train on a model, the loss
of a model that learned nothing, and the few number formats findings use."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def pct(x: float) -> str:
    """A fraction as a percentage with one decimal."""
    return f"{100 * x:.1f}%"


def plural(count: int, noun: str) -> str:
    """``1 sample``, ``2 samples``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def count_text(n: int) -> str:
    """A parameter count in a few characters: 770, 1.8M."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``p`` observed on ``n`` samples."""
    if n <= 0:
        return 0.0, 1.0
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def strategy_sizes(parts: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Trainable parameters of ``linear-probe``, ``partial:1..N`` and ``full`` on this model (from its parts)."""
    size = {p["name"]: int(p["params"]) for p in parts}
    blocks = [int(p["params"]) for p in parts if p["name"].startswith("block ")]
    head, post = size.get("head", 0), size.get("post", 0)
    out = [("linear-probe", head)]
    out += [(f"partial:{k}", head + post + sum(blocks[len(blocks) - k :])) for k in range(1, len(blocks) + 1)]
    out.append(("full", sum(size.values())))
    return out


def options_text(parts: list[dict[str, Any]], trainable: int, fewer: bool, total: int) -> str:
    """Up to three strategies that train clearly fewer (or more) parameters than ``trainable``, with their counts:
    at least 10 % fewer (more), so ``partial:16`` at 99.9 % is never offered as a smaller ``full``."""
    sizes = strategy_sizes(parts)
    chosen = [(n, s) for n, s in sizes if (s <= 0.9 * trainable if fewer else s >= 1.1 * trainable and s > trainable)]
    chosen = sorted(chosen, key=lambda x: -x[1] if fewer else x[1])[:3]
    return ", ".join(f"{n} [{count_text(s)}, {pct(s / total) if total else '-'}]" for n, s in chosen)


def present_macro(m: dict[str, Any]) -> dict[str, float] | None:
    """Macro precision / recall / F1 over the classes with samples in ``m`` (``None`` when every class, or none, has
    some): a class with no sample has no recall to judge, and counting it as 0 misleads."""
    present = [c for c, n in m["support"].items() if n]
    if not present or len(present) == len(m["support"]):
        return None
    return {k: sum(m[k]["per_class"][c] for c in present) / len(present) for k in ("precision", "recall", "f1")}


def prior_loss(class_counts: dict[str, int] | None) -> float | None:
    """Cross-entropy of predicting the training class frequencies: the loss of a model that learned nothing."""
    if not class_counts:
        return None
    counts = [c for c in class_counts.values() if c > 0]
    n = sum(counts)
    return float(-sum(c / n * math.log(c / n) for c in counts)) if n else None


def bootstrap_weights(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    """Multiplicity weights (``resamples`` x ``n``, float64) of ``resamples`` bootstrap resamples of ``n`` samples:
    row r says how often resample r drew each sample. Paired statistics weight both sides with the same rows."""
    import numpy as np

    return np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(resamples)]).astype(np.float64)
