"""frostline: transfer learning for PyTorch.

Freeze exactly what you ask and make it hold, replace the classifier head of any common model family,
fine-tune with a named strategy, and judge the result with metrics that say when they mislead.
"""

from .core.errors import FrostlineError, FrozenChangedError, SelectorError
from .core.findings import Finding
from .data.dataset import Dataset, Splits, from_tensors, read_image_folder, read_table, split
from .data.leakage import LeakageReport, check_splits, dedup
from .evaluation.diagnose import Thresholds, diagnose_run
from .evaluation.metrics import classification_metrics
from .freezing.check import check_model, raise_on_errors
from .freezing.freeze import FreezePlan, freeze, is_pinned, set_trainable, trainable_state, unfreeze
from .freezing.select import Selection, resolve, resolve_params
from .freezing.summary import module_rows, summary
from .freezing.verify import FrozenCheck, Snapshot, snapshot, verify_frozen
from .models.blocks import Blocks, discover_blocks
from .models.heads import HeadInfo, find_head, replace_head
from .models.load import LoadedModel, load_model, minilm_dir
from .models.pooling import PooledTextClassifier, Pooling
from .runs.comparison import compare, parse_strategies
from .runs.config import RunConfig
from .runs.export import export_run
from .runs.inference import PredictionSet, RunModel, load_run, predict_file
from .runs.scoring import evaluate
from .runs.train import prepare, train
from .training.engine import TrainConfig, fit, predict
from .training.optim import make_optimizer, param_groups
from .training.probe import ProbeFit, fit_probe
from .training.strategies import Strategy, parse_strategy

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
