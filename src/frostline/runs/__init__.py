"""Whole runs, from a spec to a run folder, and the use of a finished one.

:mod:`.config` validates every option first; :mod:`.preparation` reads and splits the data, loads the model and
replaces the head; :mod:`.training` fits (checkpointing each epoch atomically through :mod:`.checkpointer`) and
scores the best epoch (:mod:`.results`); :mod:`.folder` is what a run leaves on disk and :mod:`.identity` what it
is made of, as hashes. :mod:`.comparison` runs several strategies on one split; :mod:`.scoring` (``evaluate``),
:mod:`.inference` (``predict``) and :mod:`.export` use a finished run.
``frostline.train`` and ``frostline.runs.train`` are :func:`frostline.runs.training.train`.
"""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_exports

if TYPE_CHECKING:
    from .comparison import Comparison, compare, parse_strategies
    from .config import RunConfig
    from .export import export_run
    from .folder import RunFolder
    from .importance import score_importance, write_importance
    from .inference import PredictionSet, RunModel, load_run, predict_file
    from .preparation import Prepared, prepare
    from .scoring import evaluate
    from .training import RunResult, train

__all__ = [
    "Comparison",
    "PredictionSet",
    "Prepared",
    "RunConfig",
    "RunFolder",
    "RunModel",
    "RunResult",
    "compare",
    "evaluate",
    "export_run",
    "load_run",
    "parse_strategies",
    "predict_file",
    "prepare",
    "score_importance",
    "train",
    "write_importance",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
