"""The ``frostline`` command line: thin wrappers over the library."""

from . import inspect_cmd  # registers its commands on ``app``
from .app import app, main

__all__ = ["app", "inspect_cmd", "main"]
