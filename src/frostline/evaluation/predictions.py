"""What one pass over a data set gives: class probabilities, true labels, positions and per-sample losses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Predictions:
    """Class probabilities, true labels and dataset positions of one pass, with the mean loss and the loss of
    each sample (for standard errors and paired comparisons between epochs)."""

    probs: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    loss: float
    losses: np.ndarray | None = None

    @property
    def preds(self) -> np.ndarray:
        """Arg-max class per sample."""
        return self.probs.argmax(axis=1)
