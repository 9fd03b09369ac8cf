"""Typer application and the error boundary: user mistakes print one line, never a traceback."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from ..errors import FrostlineError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="frostline: transfer learning for PyTorch. Freeze exactly what you ask, replace the head, fine-tune, "
    "and judge the result honestly.",
)
# Piped output (logs, CI, README) is not cut to 80 columns.
def _width(stream: object) -> int | None:
    """The terminal's width; piped output takes COLUMNS when set, else 120 (not cut to 80)."""
    if getattr(stream, "isatty", lambda: False)():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) >= 40 else 120


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))

F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn :class:`FrostlineError` into one red line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FrostlineError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (machine-readable output)."""
    typer.echo(json.dumps(data, indent=2, default=str))


def main() -> None:
    """Console-script entry point."""
    app()
