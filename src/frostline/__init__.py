"""frostline: transfer learning for PyTorch.

Freeze exactly what you ask and make it hold, replace the classifier head of any common model family,
fine-tune with a named strategy, and judge the result with metrics that say when they mislead.

The sub-packages follow the path of a run (docs/architecture.md): :mod:`.data` -> :mod:`.models` ->
:mod:`.freezing` -> :mod:`.training` -> :mod:`.evaluation` -> :mod:`.reporting`, put together by :mod:`.runs`
and driven by :mod:`.cli`; :mod:`.core` holds what they all share. This module re-exports the public API.
"""

# ruff: noqa: E402 (the Ctrl-C handler below goes in first)
import os as _os
import signal as _signal
import sys as _sys
from typing import TYPE_CHECKING


def _quit_at_once(_signum: int, _frame: object) -> None:
    """Ctrl-C while the command line starts or ends (imports, parsing options, exiting): one line, status 130."""
    resumable = len(_sys.argv) > 1 and _sys.argv[1] in ("train", "compare", "demo")
    _os.write(2, b"interrupted: stopped; a run folder keeps its newest complete checkpoint, run the command again\n"
              if resumable else b"interrupted: stopped; run the command again\n")
    _os._exit(130)


if _os.path.basename(_sys.argv[0] if _sys.argv else "") == "frostline" and \
        _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:  # the console script, from its first import
    _signal.signal(_signal.SIGINT, _quit_at_once)

from .core.lazy import lazy_exports

if TYPE_CHECKING:
    from .core import Finding, FrostlineError, FrozenChangedError, SelectorError
    from .data import (
        Dataset,
        LeakageReport,
        Splits,
        check_splits,
        dedup,
        from_tensors,
        load_animal_mnist,
        read_image_folder,
        read_table,
        split,
        write_bundled,
    )
    from .evaluation import Thresholds, classification_metrics, diagnose_run
    from .freezing import (
        FreezePlan,
        FrozenCheck,
        Importance,
        Selection,
        Snapshot,
        check_model,
        freeze,
        importance_scores,
        is_pinned,
        module_rows,
        raise_on_errors,
        resolve,
        resolve_params,
        set_trainable,
        snapshot,
        summary,
        trainable_state,
        unfreeze,
        verify_frozen,
    )
    from .models import (
        Blocks,
        HeadInfo,
        LoadedModel,
        PooledTextClassifier,
        Pooling,
        discover_blocks,
        find_head,
        load_model,
        minilm_dir,
        replace_head,
    )
    from .runs import (
        PredictionSet,
        RunConfig,
        RunModel,
        compare,
        evaluate,
        export_run,
        load_run,
        parse_strategies,
        predict_file,
        prepare,
        score_importance,
    )
    from .runs.training import train
    from .training import (
        ProbeFit,
        Strategy,
        TrainConfig,
        fit,
        fit_probe,
        make_optimizer,
        param_groups,
        parse_strategy,
        predict,
    )


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
    "Importance",
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
    "importance_scores",
    "is_pinned",
    "load_animal_mnist",
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
    "score_importance",
    "set_trainable",
    "snapshot",
    "split",
    "summary",
    "train",
    "trainable_state",
    "unfreeze",
    "verify_frozen",
    "write_bundled",
]


__getattr__, __dir__ = lazy_exports(__name__, __file__)
