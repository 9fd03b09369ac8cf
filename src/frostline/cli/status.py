"""Status lines for slow steps: a spinner while a step runs (on a terminal), one line once it took 2 s or more."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from .app import console

#: Steps at least this long get a line once done (piped output included), so no minute passes in silence.
SLOW_SECONDS = 2.0


@contextmanager
def status(message: str) -> Iterator[None]:
    """Show ``message`` while the block runs; print how long it took when it was slow."""
    t0 = time.perf_counter()
    if console.is_terminal:
        with console.status(message):
            yield
    else:
        yield
    seconds = time.perf_counter() - t0
    if seconds >= SLOW_SECONDS and not message.startswith("epoch "):  # an epoch's steps get their own line
        console.print(f"[dim]{message}: {seconds:.1f}s[/]", highlight=False)
