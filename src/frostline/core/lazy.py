"""Packages that import a module only when one of its names is first used (PEP 562).

A package lists its public names once, as imports under ``if TYPE_CHECKING:`` (what linters, type checkers and
editors read); :func:`lazy_exports` reads that block and answers each name on first use. So ``frostline --help``
or ``from frostline.runs.config import RunConfig`` does not import torch, scikit-learn or matplotlib.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: names every lazy package's module holds that are not its surface
HIDDEN = frozenset({"TYPE_CHECKING", "lazy_exports"})


def exported_names(package: str, init_file: str) -> dict[str, str]:
    """``{name: module}`` for each ``from .module import name`` under ``if TYPE_CHECKING:`` in ``init_file``."""
    where: dict[str, str] = {}
    for node in ast.parse(Path(init_file).read_text(encoding="utf-8")).body:
        if not (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)):
            continue
        for stmt in node.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.level:
                module = importlib.util.resolve_name("." * stmt.level + (stmt.module or ""), package)
                where.update({(a.asname or a.name): module for a in stmt.names})
    return where


def lazy_exports(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose names load on first use.

    A name's module is imported the first time the name is read, and the value is then kept on the package. A
    sub-module's name (``frostline.training.engine``) imports that sub-module.

    Args:
        package: The package's ``__name__``.
        init_file: Its ``__file__`` (the ``__init__.py`` holding the ``if TYPE_CHECKING:`` imports).
    """
    where = exported_names(package, init_file)

    def __getattr__(name: str) -> Any:
        module = sys.modules[package]
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
        elif not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:  # the public names and the sub-modules, not this machinery
        return sorted((set(vars(sys.modules[package])) | set(where)) - HIDDEN)

    return __getattr__, __dir__
