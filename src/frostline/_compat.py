"""Old import paths from before the sub-packages (frostline 0.1): they keep working, with a ``FutureWarning``
that names the new path, until frostline 0.3.

``frostline.engine`` and its 50 siblings are registered in ``sys.modules`` as light proxies when frostline is
imported: nothing is loaded until a name is used, and importing an old path never rebinds ``frostline.freeze``,
``frostline.summary`` or ``frostline.train`` (the functions) to a module.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from typing import Any

REMOVED_IN = "0.3"

#: old module (under ``frostline.``) -> where it lives now
MOVED: dict[str, str] = {
    "atomic": "core.atomic", "errors": "core.errors", "findings": "core.findings",
    "augment": "data.augment", "batching": "data.batching", "leakage": "data.leakage",
    "unlabelled": "data.unlabelled",
    "blocks": "models.blocks", "heads": "models.heads", "outputs": "models.outputs", "pooling": "models.pooling",
    "tree": "models.tree",
    "check": "freezing.check", "freeze": "freezing.plan", "masks": "freezing.masks", "select": "freezing.select",
    "summary": "freezing.overview", "verify": "freezing.verify",
    "audit": "evaluation.audit", "data_findings": "evaluation.data_findings", "diagnose": "evaluation.diagnose",
    "evidence": "evaluation.evidence", "metrics": "evaluation.metrics", "threshold": "evaluation.threshold",
    "bestweights": "training.bestweights", "cache": "training.cache", "engine": "training.engine",
    "optim": "training.optim", "probe": "training.probe", "probe_head": "training.probe_head",
    "schedule": "training.schedule", "strategies": "training.strategies", "surgery": "training.surgery",
    "timing": "training.timing",
    "html_report": "reporting.html", "plots": "reporting.plots", "report": "reporting.terminal",
    "checkpoint": "runs.checkpoint", "checkpointer": "runs.checkpointer", "comparison": "runs.comparison",
    "config": "runs.config", "demo": "runs.demo", "export": "runs.export", "identity": "runs.identity",
    "inference": "runs.inference", "results": "runs.results", "scoring": "runs.scoring",
    "train": "runs.train", "cli.app": "cli.application",
}
#: old modules whose path is now a package (``frostline.data``, ``frostline.models``, ``frostline.runs``) answer
#: their old names through the package's ``__getattr__`` (:func:`old_attribute`).

#: names the old ``frostline.engine`` module held that now live elsewhere in ``frostline.training``
ENGINE_NAMES = ["frostline.training.records", "frostline.training.prediction", "frostline.training.fabric",
                "frostline.evaluation.predictions"]
#: the modules whose names the old module held, when it was split
SPLIT: dict[str, list[str]] = {"engine": ENGINE_NAMES, "strategies": ["frostline.models.parts"],
                                "probe": ["frostline.training.probe_solver"],
                                # ``from frostline.train import compare / evaluate``, paths of frostline 0.0
                                "train": ["frostline.runs.sources", "frostline.runs.comparison",
                                          "frostline.runs.scoring"]}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; import it from there ({old} goes in frostline {REMOVED_IN})",
                  FutureWarning, stacklevel=4)  # the user's import line


class MovedModule(types.ModuleType):
    """Stands for an old module path: the first use of a name warns once and loads the module it moved to."""

    def __init__(self, old: str, new: str, extra: list[str]) -> None:
        super().__init__(old, f"Moved to {new}.")
        self.__dict__["_frostline_moved"] = (new, extra)

    def _target(self, name: str) -> Any:
        new, extra = self.__dict__["_frostline_moved"]
        if not self.__dict__.get("_frostline_warned"):
            self.__dict__["_frostline_warned"] = True
            _warn(self.__name__, new)
        for module_name in [new, *extra]:
            module = importlib.import_module(module_name)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} (moved to {new!r}) has no attribute {name!r}")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._target(name)

    def __dir__(self) -> list[str]:
        new, _extra = self.__dict__["_frostline_moved"]
        return dir(importlib.import_module(new))


def install() -> None:
    """Register every old path as a proxy (not as an attribute of ``frostline``: those stay the API's names)."""
    for old, new in MOVED.items():
        sys.modules.setdefault(f"frostline.{old}", MovedModule(f"frostline.{old}", f"frostline.{new}",
                                                               SPLIT.get(old, [])))


def old_module(name: str) -> types.ModuleType | None:
    """``frostline.<name>`` as an attribute, for code that did ``import frostline; frostline.engine.fit``."""
    if name in MOVED:
        return sys.modules[f"frostline.{name}"]
    return None


def old_attribute(package: str, name: str, modules: list[str]) -> Any:
    """A name an old flat module held, looked up in the modules it was split into (with a warning)."""
    if not (name.startswith("__") and name.endswith("__")):
        for module_name in modules:
            module = importlib.import_module(module_name)
            if hasattr(module, name):
                _warn(f"{package}.{name}", f"{module_name}.{name}")
                return getattr(module, name)
    raise AttributeError(f"module {package!r} has no attribute {name!r}")


def old_names(package: str, modules: list[str]) -> Any:
    """A package's ``__getattr__`` that answers the names its old flat module held (with the warning)."""

    def __getattr__(name: str) -> Any:
        return old_attribute(package, name, modules)

    __getattr__.__doc__ = f"Names of the old ``{package}`` module that are not part of this package's surface."
    return __getattr__
