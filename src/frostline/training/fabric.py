"""The device and precision a run trains on, through Lightning Fabric."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..core.errors import FrostlineError


def make_fabric(accelerator: str = "auto", precision: str | None = None, seed: int = 0) -> tuple[Any, str]:
    """A single-device Fabric and its precision: GPU with bf16-mixed when available, else CPU in 32-bit.

    In a distributed run (:func:`frostline.training.distributed.launch`) it is that run's Fabric.
    """
    from lightning_fabric import Fabric

    from .distributed import current

    dist = current()
    if dist is not None:
        dist.fabric.seed_everything(seed, verbose=False)
        return dist.fabric, dist.key[-1]

    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)
    accelerator, precision = resolve_device(accelerator, precision)
    fabric = Fabric(accelerator=accelerator, devices=1, precision=precision)  # type: ignore[arg-type]
    fabric.seed_everything(seed, verbose=False)
    return fabric, precision


def cpu_bf16() -> str | None:
    """Why this CPU runs bfloat16 fast (its AVX-512 BF16 / AMX units, detected), or ``None`` when it does not."""
    cpu = getattr(torch, "cpu", None)
    found = []
    for name, label in (("_is_amx_tile_supported", "AMX"), ("_is_avx512_bf16_supported", "AVX-512 BF16")):
        check = getattr(cpu, name, None)
        try:
            if callable(check) and check():
                found.append(label)
        except RuntimeError:  # pragma: no cover - a build without the probe
            pass
    if not found:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
                flags = set(fh.read().split())
        except OSError:
            flags = set()
        found = [label for flag, label in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16")) if flag in flags]
    return f"this CPU has {' and '.join(found)}" if found else None


def precision_reason(accelerator: str, precision: str | None) -> tuple[str, str]:
    """The precision a run gets and why: as set, or for ``None`` (auto) bf16-mixed where the device runs it fast
    (a GPU that supports it; a CPU with AVX-512 BF16 or AMX), else 32-true."""
    if precision is not None:
        return precision, "set by --precision"
    if accelerator in ("cuda", "gpu"):
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", "auto: this GPU supports bfloat16"
        return "32-true", "auto: this GPU has no bfloat16"
    if accelerator == "cpu":
        why = cpu_bf16()
        if why is not None:
            return "bf16-mixed", f"auto: {why}"
        return "32-true", "auto: this CPU has no AVX-512 BF16 or AMX (bfloat16 would be emulated, slower)"
    return "32-true", "auto"


def resolve_device(accelerator: str, precision: str | None) -> tuple[str, str]:
    """The accelerator and precision a run gets for ``auto`` / ``None`` (:func:`precision_reason`)."""
    if accelerator not in ("auto", "cpu", "cuda", "gpu", "mps"):
        raise FrostlineError(f"accelerator must be auto, cpu, cuda, gpu or mps, got {accelerator!r}")
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    check_precision(accelerator, precision)
    return accelerator, precision_reason(accelerator, precision)[0]


def check_precision(accelerator: str, precision: str | None) -> None:
    """float16 runs only on a GPU: on CPU Fabric would quietly run something else, so it is an error."""
    if accelerator == "cpu" and precision in ("16-mixed", "16-true"):
        raise FrostlineError(f"--precision {precision} needs a CUDA GPU and this run is on the CPU; use bf16-mixed "
                             "(fast on CPUs with AVX-512 BF16 / AMX) or 32-true")


def rewrap(fabric: Any, fmodel: Any, model: torch.nn.Module) -> Any:
    """Wrap ``model`` again for the parameters that train now (a plan changed in a distributed run).

    DDP registers the parameters that require a gradient when it wraps, and all-reduces only theirs; a plan that
    unfreezes more (gradual, LP-FT, auto-freeze's opposite) needs a new wrapper, not ``find_unused_parameters`` on
    every step. The old wrapper's gradient hooks are removed first.
    """
    inner = getattr(fmodel, "_forward_module", None)
    remove = getattr(inner, "_remove_autograd_hooks", None)
    if callable(remove):
        remove()
    return fabric.setup_module(model)
