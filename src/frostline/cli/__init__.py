"""The ``frostline`` command line: thin wrappers over the library."""

from . import importance_cmd, inspect_cmd, train_cmd, use_cmd  # noqa: F401  (importing them registers their commands on ``app``)
from .application import app, main

__all__ = ["app", "main"]
