"""The misclassified pictures of an image run: the most confident mistakes first, each with its true and predicted
class, as one PNG grid for the report."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .plots import _literal, _png, _subplots

#: Pictures shown at most (the most confident mistakes).
LIMIT = 24


def misclassified(inputs: Any, probs: np.ndarray, labels: np.ndarray, positions: np.ndarray,
                  names: list[str], limit: int = LIMIT) -> dict[str, Any] | None:
    """Pick the test pictures the model got wrong, most confident first.

    Args:
        inputs: The split's uint8 pictures ``(N, 3, H, W)`` (dataset order).
        probs: Class probabilities per scored sample.
        labels: True class per scored sample.
        positions: Dataset position of each scored sample.
        names: Class names.
        limit: How many to keep.

    Returns:
        ``{"pictures", "true", "predicted", "confidence", "wrong", "n"}``, or ``None`` when nothing is an image.
    """
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4 or inputs.dtype != torch.uint8:
        return None
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:limit]
    return {"pictures": inputs[torch.as_tensor(positions[order], dtype=torch.long)].numpy(),
            "true": [names[i] for i in labels[order]], "predicted": [names[i] for i in pred[order]],
            "confidence": [float(probs[i, pred[i]]) for i in order], "wrong": len(wrong), "n": len(labels)}


@_literal
def grid(shown: dict[str, Any], columns: int = 8) -> bytes | None:
    """The pictures of :func:`misclassified` in a grid, each titled ``true -> predicted (confidence)``."""
    pictures = shown["pictures"]
    if not len(pictures):
        return None
    rows = -(-len(pictures) // columns)
    cols = min(columns, len(pictures))
    fig, axes = _subplots(rows, cols, figsize=(1.45 * cols, 1.65 * rows))
    axes = np.atleast_1d(axes).reshape(-1)
    for ax in axes:
        ax.axis("off")
    for ax, pic, true, pred, conf in zip(axes, pictures, shown["true"], shown["predicted"], shown["confidence"],
                                         strict=False):
        ax.imshow(np.transpose(pic, (1, 2, 0)), interpolation="nearest")
        ax.set_title(f"{true[:12]}\n-> {pred[:12]} ({conf:.2f})", fontsize=7)
    fig.tight_layout(pad=0.3)
    return _png(fig)
