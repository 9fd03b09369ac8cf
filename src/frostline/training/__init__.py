"""Stage 4, training: strategies (what trains in which epoch, at which learning rate), the schedule and the one
optimizer that grows as parts unfreeze, the frozen-prefix cache, the convex linear probe, and the engine, one
explicit loop on Lightning Fabric (:func:`fit`).

The engine knows nothing about any model family and nothing about run folders.
"""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_exports

if TYPE_CHECKING:
    from ..models.parts import model_parts
    from .cache import PrefixCache
    from .engine import fit
    from .fabric import make_fabric
    from .optim import make_optimizer, param_groups
    from .prediction import predict
    from .probe.logistic import ProbeFit, fit_probe
    from .records import EpochRecord, FitResult, NonFiniteLoss, Resume, TrainConfig
    from .schedule import LRSchedule, PlanOptimizer
    from .strategies import EpochPlan, Strategy, parse_strategy

__all__ = [
    "EpochPlan",
    "EpochRecord",
    "FitResult",
    "LRSchedule",
    "NonFiniteLoss",
    "PlanOptimizer",
    "PrefixCache",
    "ProbeFit",
    "Resume",
    "Strategy",
    "TrainConfig",
    "fit",
    "fit_probe",
    "make_fabric",
    "make_optimizer",
    "model_parts",
    "param_groups",
    "parse_strategy",
    "predict",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
