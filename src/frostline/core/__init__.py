"""The vocabulary every stage shares: user errors (one clear line each), findings (graded claims with their
evidence), and atomic file writes.

Imports nothing else from frostline.
"""

from .errors import FrostlineError, FrozenChangedError, SelectorError, did_you_mean
from .findings import Finding, by_severity

__all__ = ["Finding", "FrostlineError", "FrozenChangedError", "SelectorError", "by_severity", "did_you_mean"]
