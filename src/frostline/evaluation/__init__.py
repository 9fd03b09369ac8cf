"""Stage 5, judging the result: metrics from predictions, the precision / recall trade-off and an operating
threshold chosen on validation, and diagnoses (accuracy paradox, overfitting, leakage, nothing trainable) that
carry their evidence.

Works on predictions and labels only: knows nothing about models, freezing or the loop.
"""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_exports

if TYPE_CHECKING:
    from .audit import audit_run
    from .diagnose import Thresholds, diagnose_run
    from .metrics import classification_metrics
    from .predictions import Predictions
    from .threshold import choose_threshold, curves, predict_at

__all__ = [
    "Predictions",
    "Thresholds",
    "audit_run",
    "choose_threshold",
    "classification_metrics",
    "curves",
    "diagnose_run",
    "predict_at",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
