"""frostline: transfer learning for PyTorch.

Freeze exactly what you ask and make it hold, replace the classifier head of any common model family,
fine-tune with a named strategy, and judge the result with metrics that say when they mislead.
"""

from .blocks import Blocks, discover_blocks
from .check import Finding, check_model, raise_on_errors
from .errors import FrostlineError, FrozenChangedError, SelectorError
from .freeze import FreezePlan, freeze, is_pinned, trainable_state, unfreeze
from .heads import HeadInfo, find_head, replace_head
from .models import LoadedModel, load_model, minilm_dir
from .optim import make_optimizer, param_groups
from .select import Selection, resolve, resolve_params
from . import diagnose
from .summary import module_rows, summary
from .verify import FrozenCheck, Snapshot, snapshot, verify_frozen

__version__ = "0.1.0"

__all__ = [
    "Blocks",
    "Finding",
    "FreezePlan",
    "FrostlineError",
    "FrozenChangedError",
    "FrozenCheck",
    "HeadInfo",
    "LoadedModel",
    "Selection",
    "SelectorError",
    "Snapshot",
    "check_model",
    "discover_blocks",
    "find_head",
    "freeze",
    "is_pinned",
    "load_model",
    "make_optimizer",
    "minilm_dir",
    "module_rows",
    "param_groups",
    "raise_on_errors",
    "replace_head",
    "resolve",
    "resolve_params",
    "snapshot",
    "summary",
    "trainable_state",
    "unfreeze",
    "verify_frozen",
]
