"""Stage 3, what stays frozen: selectors (path, glob, regex, type, depth, head, all) resolved to parameters, freeze
plans that hold (requires_grad, pinned BatchNorm and dropout, element masks), checksums that prove frozen tensors
did not change, checks for freezing mistakes PyTorch accepts silently, importance scores that say which parts
matter, and the module-tree overview.

Knows nothing about training loops.
"""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_exports

if TYPE_CHECKING:
    from .check import check_model, raise_on_errors
    from .importance import Importance, importance_scores
    from .masks import element_mask, freeze_elements, unfreeze_elements
    from .overview import module_rows, summary, summary_table
    from .plan import FreezePlan, freeze, is_pinned, set_trainable, trainable_state, unfreeze
    from .select import Selection, resolve, resolve_params
    from .verify import FrozenCheck, Snapshot, snapshot, verify_frozen

__all__ = [
    "FreezePlan",
    "FrozenCheck",
    "Importance",
    "Selection",
    "Snapshot",
    "check_model",
    "element_mask",
    "freeze",
    "freeze_elements",
    "importance_scores",
    "is_pinned",
    "module_rows",
    "raise_on_errors",
    "resolve",
    "resolve_params",
    "set_trainable",
    "snapshot",
    "summary",
    "summary_table",
    "trainable_state",
    "unfreeze",
    "unfreeze_elements",
    "verify_frozen",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
