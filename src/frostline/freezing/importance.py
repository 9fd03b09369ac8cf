"""Which parts of a model matter for the user's task, measured on a few batches of their data with the new head.

Three scores per part (stem, each block, post, head), and optionally per tensor:

* ``rgn``: relative gradient norm ``||g|| / ||theta||`` of the part, averaged over mini-batches (Auto-RGN, as in
  surgical fine-tuning, Lee et al. 2023): how far one step would move the part relative to its size.
* ``fisher``: diagonal Fisher information, the mean squared gradient per element (as in FISH masks, Sung et al.
  2021): how much the loss curves along the part's weights.
* ``relevance``: weight x gradient relevance ``sum |theta * g|`` (first-order Taylor estimate of the loss change if
  the part's weights were removed, the input x gradient rule of relevance propagation applied to parameters), as
  a share of the model's total: how much of the prediction rests on the part.

The model is scored in eval mode (no dropout, BatchNorm statistics untouched) on batches drawn with a fixed seed,
so the scores repeat exactly; every ``requires_grad`` flag and gradient is put back as it was.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.errors import FrostlineError, did_you_mean
from ..data.batching import Encoded
from ..models.outputs import logits_of
from ..models.parts import Part, model_parts

SCORES = ("rgn", "fisher", "relevance")
SCORE_TEXT = {"rgn": "relative gradient norm ||g||/||w||", "fisher": "mean squared gradient (diagonal Fisher)",
              "relevance": "weight x gradient relevance, share of the total"}


@dataclass
class PartScore:
    """The scores of one part."""

    name: str
    params: int
    rgn: float
    fisher: float
    relevance: float

    def score(self, kind: str) -> float:
        return float(getattr(self, kind))


@dataclass
class Importance:
    """Scores per part, input to output, and what they cost."""

    parts: list[PartScore]
    batches: int
    samples: int
    seconds: float
    tensors: dict[str, dict[str, float]] = field(default_factory=dict)  # per tensor, when asked for

    def ranked(self, score: str = "rgn", *, blocks_only: bool = False) -> list[PartScore]:
        """Parts from most to least important by ``score`` (ties: the later part first)."""
        check_score(score)
        parts = [p for p in self.parts if p.name != "head" and (not blocks_only or p.name.startswith("block "))]
        order = sorted(range(len(parts)), key=lambda i: (-parts[i].score(score), -i))
        return [parts[i] for i in order]

    def top(self, k: int, score: str = "rgn", *, blocks_only: bool = False) -> list[str]:
        """The names of the ``k`` most important parts (the head excluded: it always trains)."""
        ranked = self.ranked(score, blocks_only=blocks_only)
        if not 1 <= k <= len(ranked):
            what = "blocks" if blocks_only else "parts besides the head"
            raise FrostlineError(f"cannot choose {k} of the model's {len(ranked)} {what}: K must be 1..{len(ranked)}")
        return [p.name for p in ranked[:k]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (``importance.json``)."""
        return {"scores": {k: SCORE_TEXT[k] for k in SCORES}, "batches": self.batches, "samples": self.samples,
                "seconds": round(self.seconds, 3), "parts": [p.__dict__ for p in self.parts],
                **({"tensors": self.tensors} if self.tensors else {})}


def check_score(score: str) -> str:
    """``score`` if it names a score, else one clear error."""
    if score not in SCORES:
        raise FrostlineError(f"unknown importance score {score!r}; expected one of {', '.join(SCORES)}"
                             f"{did_you_mean(str(score), SCORES)}")
    return score


def _forward(model: nn.Module, inputs: dict[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
    return logits_of(model(**inputs) if isinstance(inputs, dict) else model(inputs))


def score_batches(data: Encoded, batches: int, batch_size: int, seed: int) -> list[np.ndarray]:
    """The positions of the scoring batches: a seeded random draw, the same on every call (text: the drawn samples
    sorted by length before they are cut into batches, so a batch pads to similar lengths)."""
    if batches < 1 or batch_size < 1:
        raise FrostlineError(f"importance needs batches >= 1 and batch_size >= 1, got {batches} and {batch_size}")
    if len(data) == 0:
        raise FrostlineError("importance needs at least one labelled sample")
    order = np.random.default_rng([seed, 7919]).permutation(len(data))[: batches * batch_size]
    if data.lengths is not None:  # text: the drawn samples batched by length, as training does (less padding)
        order = order[np.argsort(data.lengths[order], kind="stable")]
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class _AllTrainable:
    """Every parameter requires grad inside the block; flags, gradients and train/eval mode restored after."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.flags = {n: p.requires_grad for n, p in self.model.named_parameters()}
        self.grads = {n: p.grad for n, p in self.model.named_parameters()}
        self.modes = {n: m.training for n, m in self.model.named_modules()}
        for p in self.model.parameters():
            p.requires_grad_(True)
            p.grad = None
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        for n, p in self.model.named_parameters():
            p.requires_grad_(self.flags[n])
            p.grad = self.grads[n]
        for n, m in self.model.named_modules():
            m.training = self.modes[n]


def importance_scores(model: nn.Module, data: Encoded, *, batches: int = 4, batch_size: int = 32, seed: int = 0,
               per_tensor: bool = False, device: torch.device | str | None = None) -> Importance:
    """Score every part of ``model`` (head already replaced) on ``batches`` batches of ``data``.

    Args:
        model: The model with its new head.
        data: Labelled data (the training split).
        batches: How many mini-batches to average over.
        batch_size: Samples per batch.
        seed: Which samples are drawn.
        per_tensor: Also score every parameter tensor.
        device: Where to run (default: the model's).

    Returns:
        An :class:`Importance`, parts input to output.
    """
    parts = model_parts(model)
    params = dict(model.named_parameters())
    device = device or next(model.parameters()).device
    positions = score_batches(data, batches, batch_size, seed)
    sq = {n: 0.0 for n in params}  # sum over batches of ||g||^2 per tensor
    rel = {n: 0.0 for n in params}  # sum over batches of sum |w * g|
    rgn_sum = {p.name: 0.0 for p in parts}
    w_norm = {p.name: math.sqrt(sum(float(params[n].detach().float().pow(2).sum()) for n in p.params))
              for p in parts}
    t0 = time.perf_counter()
    with _AllTrainable(model):
        for pos in positions:
            batch = data.batch(pos).to(device)
            loss = nn.functional.cross_entropy(_forward(model, batch.inputs).float(), batch.labels)
            if not math.isfinite(loss.item()):
                raise FrostlineError(f"importance: the loss is {loss.item()} on a scoring batch; the model or its "
                                     "inputs give non-finite values")
            model.zero_grad(set_to_none=True)
            loss.backward()
            batch_sq: dict[str, float] = {}
            for n, p in params.items():
                g = p.grad
                if g is None:
                    batch_sq[n] = 0.0
                    continue
                g = g.detach().float()
                batch_sq[n] = float(g.pow(2).sum())
                rel[n] += float((g * p.detach().float()).abs().sum())
                sq[n] += batch_sq[n]
            for part in parts:
                g_norm = math.sqrt(sum(batch_sq[n] for n in part.params))
                rgn_sum[part.name] += g_norm / w_norm[part.name] if w_norm[part.name] > 0 else 0.0
        model.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - t0
    k = len(positions)
    total_rel = sum(rel.values()) or 1.0
    scored = [_part_score(part, params, sq, rel, rgn_sum[part.name] / k, k, total_rel) for part in parts]
    tensors = {}
    if per_tensor:
        for n, p in params.items():
            w = float(p.detach().float().norm())
            tensors[n] = {"params": p.numel(), "rgn": math.sqrt(sq[n] / k) / w if w > 0 else 0.0,
                          "fisher": sq[n] / k / p.numel(), "relevance": rel[n] / total_rel}
    return Importance(scored, k, sum(len(p) for p in positions), seconds, tensors)


def _part_score(part: Part, params: dict[str, nn.Parameter], sq: dict[str, float], rel: dict[str, float],
                rgn: float, k: int, total_rel: float) -> PartScore:
    size = sum(params[n].numel() for n in part.params)
    return PartScore(part.name, size, rgn, sum(sq[n] for n in part.params) / k / max(size, 1),
                     sum(rel[n] for n in part.params) / total_rel)


def fisher_elements(model: nn.Module, data: Encoded, names: list[str], *, samples: int = 64, seed: int = 0,
                    device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """Per-element diagonal Fisher of the tensors ``names``: the mean over ``samples`` single samples of the
    squared gradient of each sample's loss (FISH masks' estimate, Sung et al. 2021)."""
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise FrostlineError(f"no parameter named {missing[0]!r}{did_you_mean(missing[0], list(params))}")
    device = device or next(model.parameters()).device
    out = {n: torch.zeros_like(params[n], dtype=torch.float32) for n in names}
    positions = score_batches(data, samples, 1, seed)
    with _AllTrainable(model):
        for pos in positions:
            batch = data.batch(pos).to(device)
            loss = nn.functional.cross_entropy(_forward(model, batch.inputs).float(), batch.labels)
            model.zero_grad(set_to_none=True)
            loss.backward()
            for n in names:
                g = params[n].grad
                if g is not None:
                    out[n] += g.detach().float().pow(2)
        model.zero_grad(set_to_none=True)
    return {n: v / len(positions) for n, v in out.items()}


def top_fraction_mask(scores: dict[str, torch.Tensor], percent: float) -> dict[str, torch.Tensor]:
    """Masks (True = frozen) keeping the top ``percent`` % of elements across all tensors by score trainable.

    Ties at the threshold are broken by position (earlier elements first), so exactly ``round(percent % of all)``
    elements stay trainable (at least one), the same on every call.
    """
    if not 0 < percent <= 100:
        raise FrostlineError(f"the share of elements to keep must be in (0, 100] percent, got {percent}")
    flat = torch.cat([v.flatten() for v in scores.values()])
    keep = max(1, round(flat.numel() * percent / 100))
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[torch.argsort(flat, descending=True, stable=True)[:keep]] = True
    masks, at = {}, 0
    for n, v in scores.items():
        masks[n] = ~chosen[at : at + v.numel()].view_as(v)
        at += v.numel()
    return masks
