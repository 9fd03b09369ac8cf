"""Prove that frozen tensors did not change: CRC-32 checksums of their bytes before and after training."""

from __future__ import annotations

import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from torch import nn

from ..core.errors import FrozenChangedError
from .masks import element_mask
from .plan import is_pinned


def _digest(t: torch.Tensor) -> str:
    """CRC-32 of the tensor's bytes, with its dtype and shape (any accidental change shows; 1.4 GB/s)."""
    data = t.detach().contiguous().reshape(-1).view(torch.uint8)
    if data.device.type != "cpu":
        data = data.cpu()
    return f"{t.dtype}{tuple(t.shape)}:{zlib.crc32(data.numpy()):08x}"  # hashes the buffer in place


def _digests(tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    # zlib releases the GIL on large buffers: hash tensors on all cores.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return dict(zip(tensors, pool.map(_digest, tensors.values()), strict=True))


def checksums(tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """CRC-32 (with dtype and shape) of each tensor, by name, hashed on all cores."""
    return _digests(tensors)


def _frozen_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        mask = element_mask(p)
        if not p.requires_grad:
            out[name] = p
        elif mask is not None:
            out[f"{name}[frozen elements]"] = p.detach()[mask.to(p.device)]
    for mod_name, module in model.named_modules():
        if is_pinned(module):
            for buf_name, buf in module.named_buffers(recurse=False):
                if buf is not None:
                    out[f"{mod_name}.{buf_name}" if mod_name else buf_name] = buf
    return out


@dataclass(frozen=True)
class Snapshot:
    """Checksums of every frozen tensor: frozen parameters, frozen elements, pinned norm statistics."""

    digests: dict[str, str]
    elements: int

    def __len__(self) -> int:
        return len(self.digests)


@dataclass
class FrozenCheck:
    """Result of :func:`verify_frozen`."""

    checked: int
    elements: int
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unfrozen: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing frozen changed or disappeared."""
        return not self.changed and not self.missing

    def __str__(self) -> str:
        if self.ok:
            skipped = f" ({len(self.unfrozen)} unfrozen since, not compared)" if self.unfrozen else ""
            n = self.checked - len(self.unfrozen)
            return f"frozen tensors unchanged: {n} tensors verified by checksum{skipped}"
        parts = []
        if self.changed:
            parts.append(f"{len(self.changed)} changed: {', '.join(self.changed[:8])}")
        if self.missing:
            parts.append(f"{len(self.missing)} missing: {', '.join(self.missing[:8])}")
        return "frozen tensors changed during training; " + "; ".join(parts)


def snapshot(model: nn.Module) -> Snapshot:
    """Checksum every frozen tensor of ``model`` (call before training)."""
    tensors = _frozen_tensors(model)
    return Snapshot(_digests(tensors), sum(v.numel() for v in tensors.values()))


def verify_frozen(model: nn.Module, snap: Snapshot, *, strict: bool = True) -> FrozenCheck:
    """Check that every tensor in ``snap`` is byte-identical now.

    Args:
        model: The model after training.
        snap: The :func:`snapshot` taken before.
        strict: Raise :class:`FrozenChangedError` when anything changed.

    Returns:
        A :class:`FrozenCheck`.
    """
    current = _frozen_tensors(model)
    present = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    check = FrozenCheck(checked=len(snap.digests), elements=snap.elements)
    now = _digests({n: current[n] for n in snap.digests if n in current})
    for name, digest in snap.digests.items():
        if name not in now and name.removesuffix("[frozen elements]") in present:
            check.unfrozen.append(name)  # unfrozen on purpose since the snapshot (gradual unfreezing)
        elif name not in now:
            check.missing.append(name)
        elif now[name] != digest:
            check.changed.append(name)
    if strict and not check.ok:
        raise FrozenChangedError(str(check))
    return check
