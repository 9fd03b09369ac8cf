"""Dropout masks drawn fast on a CPU, from a counter-based stream: the same Bernoulli, a third of the time.

PyTorch draws a CPU dropout mask one element at a time from its global Mersenne Twister (``bernoulli_``, pytorch
issue #138199): on this 2-core machine one ``nn.Dropout`` over a (32, 40, 384) bf16 activation took 4.5-6.7 ms, and
MiniLM's dropout modules took 1.08 s of a 1.76 s training-mode forward epoch (350 SMS messages, bf16; 0.68 s with
their ``p`` set to 0). While frostline's loop trains on a CPU, each ``nn.Dropout`` in train mode instead keeps an
element where a 16-bit lane of a PCG64 draw is at least ``round(p * 65536)`` (64 random bits give four lanes:
1.5 ms for the same activation) and scales kept ones by ``65536 / (65536 - round(p * 65536))``, so each element
is kept with probability ``1 - p`` (to 1/65536) and the expectation is unchanged, as PyTorch's dropout does.

The stream is keyed by (seed, rank, epoch, step, call within the step), not by a global generator's state: a resumed
run draws the masks it would have drawn, every rank of a distributed run draws its own, and the global generator is
left alone. A module in eval mode, on another device, with ``p`` 0 or 1, or a subclass (``Dropout2d``, ...) runs
PyTorch's own dropout. ``--dropout-masks torch`` (``dropout_masks="torch"``) keeps PyTorch's for every module.

Attention-probability dropout is not an ``nn.Dropout`` in a Hugging Face model with SDPA attention: it is
``scaled_dot_product_attention``'s ``dropout_p``, whose CPU path draws its mask with ``bernoulli_`` (7.9 ms a call
in MiniLM's trainable blocks, 11 % of a ``partial:2`` epoch). While active, such a model's attention is
``frostline_sdpa``, registered with transformers' ``AttentionInterface``: in training mode with a dropout, on a
CPU, it computes the same attention (scores, mask, softmax, dropout, values) with the mask drawn from this stream;
everywhere else it is transformers' own SDPA function. The model's setting is put back when the block ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

LANES = 65536  # a mask lane is 16 random bits
#: the attention function registered with transformers while fast masks are active (see the module notes)
ATTENTION = "frostline_sdpa"
_ACTIVE: list[FastDropout] = []  # the stream the attention function draws from (the innermost active block)


def mask(shape: torch.Size, p: float, key: list[int]) -> tuple[torch.Tensor, float]:
    """Keep (bool, ``shape``) with probability ``1 - p`` per element from the PCG64 stream ``key``, and the scale
    that keeps the expectation: ``LANES / (LANES - round(p * LANES))``."""
    n = int(np.prod(shape)) if len(shape) else 1
    drop = min(round(p * LANES), LANES - 1)
    words = np.random.Generator(np.random.PCG64(key)).bit_generator.random_raw((n + 3) // 4)
    keep = words.view(np.uint16)[:n] >= drop
    return torch.from_numpy(keep).view(shape), LANES / (LANES - drop)


class FastDropout:
    """Replaces the forward of a model's ``nn.Dropout`` modules while active (see the module notes)."""

    def __init__(self, model: nn.Module, seed: int, rank: int = 0, masks: str = "fast") -> None:
        self.modules = [m for m in model.modules() if type(m) is nn.Dropout] if masks == "fast" else []
        configs = {id(c): c for m in model.modules() if (c := getattr(m, "config", None)) is not None
                   and getattr(c, "_attn_implementation", None) == "sdpa"} if masks == "fast" else {}
        self.configs = list(configs.values()) if configs and _register() else []
        self.seed, self.rank = seed % 2**63, rank
        self.epoch, self.step, self.calls = 0, 0, 0

    def at(self, step: int) -> None:
        """Key the next masks by the optimizer step about to run."""
        self.step, self.calls = step, 0

    @contextmanager
    def active(self, epoch: int) -> Iterator[None]:
        """Draw the masks of ``epoch`` fast for the duration of the block."""
        self.epoch = epoch
        for m in self.modules:
            m.forward = self._forward_of(m)  # an instance attribute: nn.Module calls it instead of the class's
        for c in self.configs:
            c._attn_implementation = ATTENTION
        _ACTIVE.append(self)
        try:
            yield
        finally:
            _ACTIVE.remove(self)
            for c in self.configs:
                c._attn_implementation = "sdpa"
            for m in self.modules:
                m.__dict__.pop("forward", None)

    def draw(self, shape: torch.Size, p: float) -> tuple[torch.Tensor, float]:
        """The next mask of this step (and its scale), keyed like every other."""
        self.calls += 1
        return mask(shape, p, [self.seed, self.rank, self.epoch, self.step, self.calls])

    def _forward_of(self, m: nn.Dropout) -> Any:
        def forward(x: torch.Tensor) -> torch.Tensor:
            if not m.training or not 0 < m.p < 1 or x.device.type != "cpu" or not x.is_floating_point():
                return nn.functional.dropout(x, m.p, m.training, m.inplace)
            keep, scale = self.draw(x.shape, m.p)
            return torch.mul(x, keep).mul_(scale)

        return forward


def _attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
               **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, with the attention-probability dropout's mask drawn fast (module notes)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    fast = (_ACTIVE and module.training and dropout > 0 and query.device.type == "cpu"
            and not getattr(module, "is_causal", False) and key.shape[1] == query.shape[1] and query.dim() == 4
            and (attention_mask is None or attention_mask.dim() == 4))
    if not fast:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = scaling if scaling is not None else query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scale
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # SDPA's mask: True where a query may attend
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1)
    keep, rescale = _ACTIVE[-1].draw(weights.shape, dropout)
    weights = torch.mul(weights, keep).mul_(rescale)
    return torch.matmul(weights.to(value.dtype), value).transpose(1, 2).contiguous(), None


def _register() -> bool:
    """Register :data:`ATTENTION` (and SDPA's mask for it) with transformers; False where transformers lacks it."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:
        return False
    AttentionInterface.register(ATTENTION, _attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)
    return True
