"""frostline: transfer learning for PyTorch.

Freeze exactly what you ask and make it hold, replace the classifier head of any common model family,
fine-tune with a named strategy, and judge the result with metrics that say when they mislead.
"""

from .blocks import Blocks, discover_blocks
from .check import check_model, raise_on_errors
from .comparison import compare, parse_strategies
from .config import RunConfig
from .data import Dataset, Splits, from_tensors, read_image_folder, read_table, split
from .diagnose import Thresholds, diagnose_run
from .engine import TrainConfig, fit, predict
from .errors import FrostlineError, FrozenChangedError, SelectorError
from .export import export_run
from .findings import Finding
from .freeze import FreezePlan, freeze, is_pinned, set_trainable, trainable_state, unfreeze
from .heads import HeadInfo, find_head, replace_head
from .inference import PredictionSet, RunModel, load_run, predict_file
from .leakage import LeakageReport, check_splits, dedup
from .metrics import classification_metrics
from .models import LoadedModel, load_model, minilm_dir
from .optim import make_optimizer, param_groups
from .pooling import PooledTextClassifier, Pooling
from .probe import ProbeFit, fit_probe
from .scoring import evaluate
from .select import Selection, resolve, resolve_params
from .strategies import Strategy, parse_strategy
from .summary import module_rows, summary
from .train import prepare, train
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
    "PooledTextClassifier",
    "Pooling",
    "PredictionSet",
    "ProbeFit",
    "RunConfig",
    "RunModel",
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
    "export_run",
    "find_head",
    "fit",
    "fit_probe",
    "freeze",
    "from_tensors",
    "is_pinned",
    "load_model",
    "load_run",
    "make_optimizer",
    "minilm_dir",
    "module_rows",
    "param_groups",
    "parse_strategies",
    "parse_strategy",
    "predict",
    "predict_file",
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
