"""What one pass over a data set gives: the model's outputs as the user reads them, true targets, positions and
per-sample losses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Predictions:
    """Outputs, true targets and dataset positions of one pass, with the mean loss and the loss of each sample (for
    standard errors and paired comparisons between epochs).

    ``probs`` holds class probabilities (classification, N x K), values in the target's units (regression, N x 1)
    or one probability per label (multilabel, N x L); ``kind`` says which. ``thresholds`` (multilabel) are the
    per-label decision thresholds :attr:`preds` applies (0.5 unless chosen on validation).
    """

    probs: np.ndarray
    labels: np.ndarray
    positions: np.ndarray
    loss: float
    losses: np.ndarray | None = None
    kind: str = "classification"
    thresholds: np.ndarray | None = None

    @property
    def preds(self) -> np.ndarray:
        """Arg-max class per sample (classification), the value (regression), or the 0 / 1 label matrix."""
        if self.kind == "regression":
            return self.probs.reshape(len(self.probs), -1)[:, 0]
        if self.kind == "multilabel":
            t = self.thresholds if self.thresholds is not None else 0.5
            return (self.probs >= t).astype(np.uint8)
        return self.probs.argmax(axis=1)
