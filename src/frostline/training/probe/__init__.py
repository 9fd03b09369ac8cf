"""The linear probe as the convex problem it is: the frozen features computed once, then a head fit to convergence
with its L2 strength chosen by cross-validation.

:mod:`.logistic` chooses C and fits softmax regression (single-label classification) on :mod:`.solver`'s L-BFGS;
:mod:`.multilabel` fits one binary probe per label, :mod:`.ridge` a regression; :mod:`.head` runs a probe epoch of
the training loop on the frozen-prefix cache's features.
"""

from typing import TYPE_CHECKING

from ...core.lazy import lazy_exports

if TYPE_CHECKING:
    from .head import probe_epoch, probe_target
    from .logistic import DEFAULT_CS, ProbeFit, fit_probe
    from .multilabel import fit_multilabel_probe
    from .ridge import fit_ridge_probe
    from .solver import fit_logistic

__all__ = [
    "DEFAULT_CS",
    "ProbeFit",
    "fit_logistic",
    "fit_multilabel_probe",
    "fit_probe",
    "fit_ridge_probe",
    "probe_epoch",
    "probe_target",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
