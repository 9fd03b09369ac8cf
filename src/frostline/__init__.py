"""frostline: transfer learning for PyTorch.

Freeze exactly what you ask and make it hold, replace the classifier head of any common model family,
fine-tune with a named strategy, and judge the result with metrics that say when they mislead.
"""

from .blocks import Blocks, discover_blocks
from .check import check_model, raise_on_errors
from .config import RunConfig
from .data import Dataset, Splits, from_tensors, read_image_folder, read_table, split
from .diagnose import Thresholds, diagnose_run
from .engine import TrainConfig, fit, predict
from .errors import FrostlineError, FrozenChangedError, SelectorError
from .findings import Finding
from .freeze import FreezePlan, freeze, is_pinned, set_trainable, trainable_state, unfreeze
from .heads import HeadInfo, find_head, replace_head
from .leakage import LeakageReport, check_splits, dedup
from .metrics import classification_metrics
from .models import LoadedModel, load_model, minilm_dir
from .optim import make_optimizer, param_groups
from .select import Selection, resolve, resolve_params
from .strategies import Strategy, parse_strategy
from .summary import module_rows, summary
from .train import compare, evaluate, prepare, train
from .verify import FrozenCheck, Snapshot, snapshot, verify_frozen

__version__ = "0.1.0"

__all__ = [
    "Blocks",
    "Dataset",
    "Finding",
    "FreezePlan",
    "FrostlineError",
    "FrozenChangedError",
    "FrozenCheck",
    "HeadInfo",
    "LeakageReport",
    "LoadedModel",
    "RunConfig",
    "Selection",
    "SelectorError",
    "Snapshot",
    "Splits",
    "Strategy",
    "Thresholds",
    "TrainConfig",
    "check_model",
    "check_splits",
    "classification_metrics",
    "compare",
    "dedup",
    "diagnose_run",
    "discover_blocks",
    "evaluate",
    "find_head",
    "fit",
    "freeze",
    "from_tensors",
    "is_pinned",
    "load_model",
    "make_optimizer",
    "minilm_dir",
    "module_rows",
    "param_groups",
    "parse_strategy",
    "predict",
    "prepare",
    "raise_on_errors",
    "read_image_folder",
    "read_table",
    "replace_head",
    "resolve",
    "resolve_params",
    "set_trainable",
    "snapshot",
    "split",
    "summary",
    "train",
    "trainable_state",
    "unfreeze",
    "verify_frozen",
]
