"""The ``frostline`` command line: thin wrappers over the library."""

from . import inspect_cmd, train_cmd, use_cmd  # register their commands on ``app``
from .app import app, main

__all__ = ["app", "inspect_cmd", "main", "train_cmd", "use_cmd"]
