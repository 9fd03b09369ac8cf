"""Status lines for slow steps: a spinner while a step runs (on a terminal), one line once it took 2 s or more."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from rich.console import Console

from .application import console, err_console

#: Steps at least this long get a line once done (piped output included), so no minute passes in silence.
SLOW_SECONDS = 2.0


def status_on(target: Console) -> Callable[[str], AbstractContextManager[Any]]:
    """A status factory that writes to ``target`` (standard error when standard output carries data)."""

    @contextmanager
    def status(message: str) -> Iterator[None]:
        """Show ``message`` while the block runs; print how long it took when it was slow."""
        t0 = time.perf_counter()
        if target.is_terminal:
            with target.status(message):
                yield
        else:
            yield
        seconds = time.perf_counter() - t0
        if seconds >= SLOW_SECONDS and not message.startswith("epoch "):  # an epoch's steps get their own line
            target.print(f"[dim]{message}: {seconds:.1f}s[/]", highlight=False)

    return status


status = status_on(console)
#: For commands whose standard output is data (``predict --out -``).
status_stderr = status_on(err_console)
