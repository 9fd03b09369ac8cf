"""Typer application and the error boundary: user mistakes print one line, never a traceback."""

from __future__ import annotations

import errno
import functools
import importlib
import json
import os
import shutil
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape

from ..core.errors import FrostlineError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="frostline: transfer learning for PyTorch. Freeze exactly what you ask, replace the head, fine-tune, "
    "and judge the result honestly.",
)


def _show_version(value: bool) -> None:
    if value:
        import frostline  # the package this command line belongs to (its version is set there)

        typer.echo(f"frostline {frostline.__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                          help="Print frostline's version and exit.")) -> None:
    """frostline: transfer learning for PyTorch. Freeze exactly what you ask, replace the head, fine-tune, and judge
    the result honestly."""


def _flags_without_type(display: Callable[..., str | None]) -> Callable[..., str | None]:
    """typer (0.29) shows every option's type, ``<bool>`` beside ``--help`` and ``--cache / --no-cache`` too: a flag
    takes no value, so its type column stays empty."""

    def shown(self: Any, ctx: Any) -> str | None:
        return None if getattr(self, "is_flag", False) else display(self, ctx)

    return shown


_option = getattr(getattr(typer, "core", None), "TyperOption", None)
if _option is not None and hasattr(_option, "display_type_rich"):
    _option.display_type_rich = _flags_without_type(_option.display_type_rich)


# Piped output (logs, CI, README) is not cut to 80 columns.
def _width(stream: object) -> int | None:
    """The terminal's width; piped output takes COLUMNS when set, else 120 (not cut to 80)."""
    if getattr(stream, "isatty", lambda: False)():
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) >= 40 else 120


class LiteralSafeConsole(Console):
    """A console whose text with brackets that are not valid markup (a class named ``[/b]``) prints as written
    instead of raising :class:`~rich.errors.MarkupError`."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        """Render ``text`` as markup, or as plain text when it is not valid markup."""
        try:
            return super().render_str(text, **kwargs)
        except MarkupError:
            return super().render_str(text, **{**kwargs, "markup": False})


console = LiteralSafeConsole(width=_width(sys.stdout))
err_console = LiteralSafeConsole(stderr=True, width=_width(sys.stderr))

F = TypeVar("F", bound=Callable[..., Any])


#: What to do about an operating-system error on the user's files, by errno.
HINTS = {
    errno.ENOSPC: "disk full; free space and run the same command again to resume",
    errno.EDQUOT: "disk quota exceeded; free space and run the same command again to resume",
    errno.EROFS: "a read-only file system; choose a writable place (e.g. another --out)",
    errno.EACCES: "no permission; choose a place you can write to (e.g. another --out) or change its permissions",
    errno.EPERM: "not permitted; choose a place you can write to (e.g. another --out) or change its permissions",
    errno.EEXIST: "a file is in the way where a folder is needed; choose another --out or move that file",
    errno.ENOTDIR: "a file is in the way where a folder is needed; choose another --out or move that file",
    errno.EISDIR: "a folder where a file was expected; give a file",
}
#: Errors about the user's files (not frostline's bugs): reported in one line.
USER_FILE_ERRORS = (PermissionError, FileExistsError, NotADirectoryError, IsADirectoryError)


def os_error_line(exc: OSError) -> str | None:
    """One line for an OSError about the user's files (``None`` for any other OSError): the file, the problem,
    and what to do."""
    if not isinstance(exc, USER_FILE_ERRORS) and exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return None
    name = exc.filename or exc.filename2
    unreadable = name is not None and os.path.exists(name) and not os.access(name, os.R_OK)
    verb = "open" if isinstance(exc, IsADirectoryError) else "read" if unreadable else "write"
    what = f" {os.fsdecode(name)}" if name is not None else ""
    hint = HINTS.get(exc.errno or 0)
    return f"cannot {verb}{what}: {exc.strerror or exc}" + (f" ({hint})" if hint else "")


#: How libraries that write without an OSError (safetensors, torch.save) say the disk is full or a write failed.
WRITE_FAILURES = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122",
                  "inline_container.cc", "iostream error", "file write failed")


def write_failure_line(exc: BaseException, out: object = None) -> str | None:
    """One line for a failed write that a library reports without an OSError (``None`` if ``exc`` is not one)."""
    chain = [exc, exc.__cause__, exc.__context__]
    text = " ".join(str(e) for e in chain if e is not None)
    if isinstance(exc, OSError) or not any(marker in text for marker in WRITE_FAILURES):
        return None
    where = f" {out}" if out else ""
    full = any(marker in text for marker in WRITE_FAILURES[:4]) or (out is not None and _free_bytes(out) < 1 << 20)
    if full:
        return f"cannot write{where}: No space left on device (disk full; free space and run the same command " \
               "again to resume)"
    return f"cannot write{where}: {type(exc).__name__}: {str(exc).splitlines()[0][:120]} (the disk may be full: " \
           "free space and run the same command again to resume)"


def _free_bytes(path: object) -> int:
    """Free bytes on the file system of ``path`` (its nearest existing folder); a large number when unknown."""
    p = os.path.abspath(os.fspath(path))  # type: ignore[call-overload]
    while not os.path.exists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return 1 << 62


def _one_line(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
              line: str | None = None) -> None:
    """Show a warning as one yellow line on stderr, without the file name and source line Python adds."""
    err_console.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)


@contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Within the block, a warning prints as one line ``warning: ...`` on stderr (the filters stay as they are)."""
    with warnings.catch_warnings():
        warnings.showwarning = _one_line
        yield


#: commands whose run folders keep a checkpoint per epoch: an interrupted one resumes when run again
RESUMABLE = ("train_command", "compare_command", "demo_command")
#: what each command's work imports first (torch and the stage of a run it drives; a command that writes a report,
#: its plots), loaded before the command runs while a Ctrl-C still ends the process at once: a KeyboardInterrupt
#: raised inside a C extension's import (torch's) is a SystemError with a traceback, not an interruption. A command
#: loads only what it uses (predict: no matplotlib), and ``--help`` never gets here.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "train_command": ("frostline.runs.training", "frostline.reporting.plots"),
    "compare_command": ("frostline.runs.comparison", "frostline.reporting.plots"),
    "demo_command": ("frostline.runs.comparison", "frostline.reporting.plots"),
    "evaluate_command": ("frostline.runs.scoring", "frostline.reporting.plots"),
    "predict_command": ("frostline.runs.inference",),
    "export_command": ("frostline.runs.export",),
    "importance": ("frostline.runs.importance", "frostline.reporting.plots"),
    "inspect": ("frostline.models.load", "frostline.freezing.overview"),
    "check": ("frostline.models.load", "frostline.freezing.check"),
}


def resume_line(out: str | None) -> str:
    """What an interrupted ``train`` / ``compare`` / ``demo`` leaves: a checkpoint to resume from, or nothing yet."""
    from pathlib import Path

    from ..runs.checkpoint import FOLDER

    folder = Path(out) if out else None
    if folder is not None and (any(folder.glob(f"**/{FOLDER}/epoch-*")) or any(folder.glob("**/metrics.json"))):
        return f"{out} keeps its newest complete checkpoint (writes are atomic): run the same command again to resume"
    if folder is not None and folder.exists():
        return f"{out} holds no complete epoch yet: run the same command again to start it"
    return "stopped before anything was written: run the same command again to start"


def friendly(fn: F) -> F:
    """Turn :class:`FrostlineError` and errors about the user's files (no permission, a file where a folder is
    needed, disk full, read-only file system) into one red line on stderr and exit status 2; any other exception
    is a bug and keeps its traceback. Warnings print as one line each."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        quick = signal.getsignal(signal.SIGINT)  # frostline's at-once handler while starting (frostline/__init__)
        for module in ("torch", *COMMAND_MODULES.get(fn.__name__, ())):
            importlib.import_module(module)
        try:
            if quick not in (signal.default_int_handler, signal.SIG_IGN):  # an ignored Ctrl-C stays ignored
                signal.signal(signal.SIGINT, signal.default_int_handler)  # the command itself: KeyboardInterrupt
            with warnings_as_lines():
                result = fn(*args, **kwargs)
            _at_once(quick)  # exiting: a Ctrl-C now stops at once, in one line
            return result
        except FrostlineError as exc:
            message: str | None = str(exc)
        except KeyboardInterrupt:
            _at_once(quick)
            out = kwargs.get("out") or getattr(kwargs.get("cfg"), "out", None)
            if fn.__name__ in RESUMABLE:
                line = resume_line(out)
            else:  # evaluate, predict, export, importance: nothing to resume, and no half-written file
                line = (f"{out} holds no half-written file (writes are atomic); run the command again"
                        if out and out != "-" else "stopped; run the command again")
            from ..training.distributed import current

            if current() is None or current().main:  # type: ignore[union-attr]
                err_console.print(f"[bold yellow]interrupted:[/] {escape(line)}", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            out = kwargs.get("out") or getattr(kwargs.get("cfg"), "out", None)
            message = (os_error_line(exc) if isinstance(exc, OSError) else None) or write_failure_line(exc, out)
            if message is None:
                raise
        from ..training.distributed import current

        dist = current()
        if dist is None or dist.main:  # a distributed run's other ranks fail the same way: rank 0 says it once
            err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (machine-readable output)."""
    typer.echo(json.dumps(data, indent=2, default=str))


class PipeSafe:
    """Standard output that goes quiet when its reader closes the pipe (``frostline train ... | head -3``): the run
    finishes and writes its folder instead of stopping at the next progress line (click exits 1, silently, on a
    broken pipe)."""

    def __init__(self, stream: Any) -> None:
        self._stream, self._closed = stream, False

    def write(self, text: str) -> int:
        if not self._closed:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._quiet()
        return len(text)

    def flush(self) -> None:
        if not self._closed:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._quiet()

    def _quiet(self) -> None:
        self._closed = True
        with suppress(Exception):  # what is still buffered goes to /dev/null, so no later flush fails
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _at_once(handler: Any) -> None:
    """Put the at-once Ctrl-C handler back (a second Ctrl-C while reporting the first must not print a trace)."""
    if callable(handler) and handler is not signal.default_int_handler:
        signal.signal(signal.SIGINT, handler)


def main() -> None:
    """Console-script entry point: run the command, then end the process at once (see :func:`end_process`)."""
    sys.stdout = PipeSafe(sys.stdout)  # type: ignore[assignment]
    try:
        app()
        code: Any = 0
    except SystemExit as done:
        code = done.code
    end_process(code)


def end_process(code: Any) -> None:
    """Exit with ``code`` without tearing down the interpreter's modules: after torch, transformers and Fabric that
    teardown took 1.2-1.6 s of a 16 s linear-probe run, with every result written and closed already.

    The exit handlers still run (logs flushed and closed, temporary files removed) and the output streams are
    flushed; a distributed process, a live non-daemon thread or a non-integer code exits the ordinary way.
    """
    import atexit
    import threading

    # a command that never loaded the training modules (``--help``) is in no distributed run
    distributed = sys.modules.get("frostline.training.distributed")
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not isinstance(code, int) or (distributed is not None and distributed.current() is not None) or others:
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    os._exit(code)
