"""Atomic writes: a temporary file in the same folder, flushed to disk, then renamed over the target.

A run interrupted at any moment leaves either the old file or the new one, never a torn one. Files get the
permissions of any file the user writes (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``.

:data:`fault_hook`, when set, is called at every write point (``"<file>:written"`` once the temporary file is on
disk, ``"<file>:renamed"`` once it replaced the target): the fault-injection tests kill the process there.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

#: Called with a write point's name at every write point (tests kill the process there); ``None`` in use.
fault_hook: Callable[[str], None] | None = None


def point(name: str) -> None:
    """A write point: calls :data:`fault_hook` if one is set."""
    if fault_hook is not None:
        fault_hook(name)


def umask_mode(kind: int = 0o666) -> int:
    """``kind`` less the process umask (read without changing it for long)."""
    mask = os.umask(0)
    os.umask(mask)
    return kind & ~mask


def is_temp(p: Path) -> bool:
    """A temporary file of an interrupted atomic write: ours (``.name.XXXX.tmp``) or safetensors' own
    (``.tmpXXXXXX``: its Rust writer saves to a temporary file in the same folder and renames it)."""
    return p.name.startswith(".") and (p.name.endswith(".tmp") or (p.name.startswith(".tmp") and len(p.name) == 10))


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_WRITES = True


def set_writes(enabled: bool) -> None:
    """Turn every write of this module (and of the run folder and checkpoints) on or off for this process.

    Off on the ranks other than 0 of a distributed run: they train and read, and only rank 0 writes.
    """
    global _WRITES
    _WRITES = enabled


def writes() -> bool:
    """Whether this process writes run folders (not on a distributed run's ranks other than 0)."""
    return _WRITES


def _atomic(path: str | os.PathLike[str], write: Callable[[str], None], label: str | None = None) -> Path:
    target = Path(path)
    if not _WRITES:
        return target
    label = label or target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, umask_mode())
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        point(f"{label}:written")
        os.replace(tmp, target)
        fsync_dir(target.parent)
        point(f"{label}:renamed")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_text(path: str | os.PathLike[str], text: str, label: str | None = None) -> Path:
    """Write ``text`` (UTF-8) atomically (``label``: the write point's name, default the file name)."""
    return _atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), label)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` atomically."""
    return _atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def strict_json(data: Any) -> str:
    """Indented JSON with no ``NaN`` / ``Infinity`` tokens (non-finite numbers become ``null``)."""
    return json.dumps(_finite(data), indent=2, default=_json_default, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], data: Any, label: str | None = None) -> Path:
    """Write ``data`` as strict, indented JSON atomically (non-finite numbers as ``null``)."""
    return write_text(path, strict_json(data), label)


def save_tensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> Path:
    """Save tensors as safetensors atomically (shared storage is cloned; safetensors refuses aliases)."""
    seen: set[int] = set()
    clean: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        t = t.detach().to("cpu")
        ptr = t.untyped_storage().data_ptr()
        clean[name] = t.clone().contiguous() if ptr in seen or not t.is_contiguous() else t
        seen.add(ptr)
    return _atomic(path, lambda tmp: save_file(clean, tmp, metadata=metadata))


def save_torch(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` atomically (for optimizer state: tensors and plain Python values only)."""
    return _atomic(path, lambda tmp: torch.save(obj, tmp))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, str):
        return _finite(obj.tolist())
    return obj


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "to_dict"):
        return _finite(obj.to_dict())
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
