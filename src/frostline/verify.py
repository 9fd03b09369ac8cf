"""Prove that frozen tensors did not change: checksums before and after training."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import FrozenChangedError
from .freeze import is_pinned
from .masks import element_mask


def _digest(t: torch.Tensor) -> str:
    data = t.detach().contiguous().reshape(-1)
    return hashlib.blake2b(data.view(torch.uint8).cpu().numpy().tobytes(), digest_size=16).hexdigest()


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
    return Snapshot({k: _digest(v) for k, v in tensors.items()}, sum(v.numel() for v in tensors.values()))


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
    for name, digest in snap.digests.items():
        tensor = current.get(name)
        if tensor is None and name.removesuffix("[frozen elements]") in present:
            check.unfrozen.append(name)  # unfrozen on purpose since the snapshot (gradual unfreezing)
        elif tensor is None:
            check.missing.append(name)
        elif _digest(tensor) != digest:
            check.changed.append(name)
    if strict and not check.ok:
        raise FrozenChangedError(str(check))
    return check
