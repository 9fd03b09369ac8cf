"""One writer per folder: an exclusive OS lock (``flock``) on the folder itself, taken before anything is read or
written there and released when the process ends, however it ends (``kill -9`` leaves no stale lock, and no lock
file: the lock is on the folder's own descriptor). Where ``fcntl`` does not exist (Windows), nothing is locked."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import FrostlineError

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows)
    fcntl = None  # type: ignore[assignment]


def holder(path: Path) -> int | None:
    """The PID holding an ``flock`` on ``path`` (from ``/proc/locks``; ``None`` where that cannot be read)."""
    try:
        st = path.stat()
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(st.st_ino):
            with contextlib.suppress(ValueError):
                return int(fields[4])
    return None


@contextlib.contextmanager
def folder_lock(path: str | Path, doing: str) -> Iterator[None]:
    """Hold ``path`` (made if missing, and removed again if it is still empty at the end) for this process.

    Args:
        path: The folder a command writes (a run folder, a comparison, an evaluation or an export).
        doing: What the command does there, for the error (``"trains a run"``).

    Raises:
        FrostlineError: Another process holds it; the message names its PID.
    """
    folder = Path(path)
    made = not folder.exists()
    if fcntl is None or (folder.exists() and not folder.is_dir()):
        yield  # a file where the folder should be: the command's own check says so
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = holder(folder)
            who = f"process {pid}" if pid is not None else "another process"
            raise FrostlineError(f"{folder} is in use: frostline {who} {doing} there now; wait for it to finish, or "
                                 "choose another --out") from None
        try:
            yield
        finally:
            if made:
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only if still empty: nothing was written
    finally:
        os.close(fd)  # closing the descriptor releases the lock
