"""Strategies that measure before they freeze.

==============================  ======================================================================
``surgical:auto[:K[:SCORE]]``   the K blocks (default 2) with the highest importance score (``rgn``,
                                the default, ``fisher`` or ``relevance``; :mod:`frostline.freezing.importance`),
                                measured on the training data with the new head (:func:`score_budget`
                                samples), plus the head
``mask:fisher:P``               inside every weight matrix of the blocks, only the top P % of elements by
                                diagonal Fisher information train (element masks), plus the head
``auto-freeze``                 full fine-tuning that freezes the converged prefix as it goes (AutoFreeze,
                                Liu et al. 2021): after each epoch, each trainable part's gradient-norm
                                change between the epoch's two halves is compared with the median; the
                                leading parts at or below it freeze from the next epoch on, so the frozen
                                prefix, and with it the cache, only ever grows
==============================  ======================================================================
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from ..core.errors import FrostlineError
from ..data.batching import Encoded
from ..freezing.importance import Importance, check_score, fisher_elements, importance_scores, top_fraction_mask
from ..freezing.masks import element_mask, freeze_elements, unfreeze_elements
from ..models.parts import Part, model_parts
from .plans import EpochPlan, Group, Strategy

#: importance scoring: at most this many batches and samples from the training split
SCORE_BATCHES, SCORE_SAMPLES, SCORE_MIN_SAMPLES = 4, 128, 32


def score_budget(n_train: int) -> tuple[int, int]:
    """(batches, batch size) for importance scores: 1/40 of the training split, at least 32 samples and at most
    128, in 4 batches. Small batches cost more per sample than training's: on MiniLM / SMS (1,400 training
    samples) this is 4 % of one full fine-tuning epoch (``benchmarks/importance.py``)."""
    samples = min(SCORE_SAMPLES, max(SCORE_MIN_SAMPLES, n_train // 40))
    return SCORE_BATCHES, -(-samples // SCORE_BATCHES)
#: per-element Fisher for ``mask:fisher``: single samples averaged
FISHER_SAMPLES = 64


def _blocks(parts: list[Part]) -> list[Part]:
    return [p for p in parts if p.name.startswith("block ")]


class SurgicalAuto(Strategy):
    """Train the ``k`` blocks with the highest importance score, plus the head."""

    needs_data = True

    def __init__(self, k: int, score: str, model: nn.Module) -> None:
        self.k, self.score = k, check_score(score)
        self.name = f"surgical:auto:{k}" + ("" if score == "rgn" else f":{score}")
        blocks = len(_blocks(model_parts(model)))
        if not 1 <= k <= blocks:
            raise FrostlineError(f"strategy {self.name!r} needs K in 1..{blocks}: the model has {blocks} blocks")
        self.importance: Importance | None = None
        self.chosen: list[str] = []

    @property
    def ready(self) -> bool:
        return self.importance is not None

    def setup(self, model: nn.Module, train: Encoded, seed: int) -> None:
        batches, batch_size = score_budget(len(train))
        self.importance = importance_scores(model, train, batches=batches, batch_size=batch_size, seed=seed)
        self.chosen = self.importance.top(self.k, self.score, blocks_only=True)

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        if not self.ready:
            raise FrostlineError(f"strategy {self.name!r} chooses its blocks from importance scores: call "
                                 "setup(model, train_data, seed) first (fit does)")
        groups = tuple(Group(p.name, p.params, lr) for p in self._body(parts) if p.name in self.chosen)
        return EpochPlan((*groups, self._head(parts, head_lr)), f"{', '.join(self.chosen)} (top {self.k} by "
                                                               f"{self.score}) + head")

    def choice(self) -> dict[str, Any] | None:
        assert self.importance is not None
        return {"strategy": self.name, "score": self.score, "chosen": self.chosen,
                "importance": self.importance.to_dict()}


class MaskFisher(Strategy):
    """Inside each weight matrix of the blocks, only the top ``percent`` % of elements by Fisher train."""

    needs_data = True

    def __init__(self, percent: float) -> None:
        if not 0 < percent <= 100:
            raise FrostlineError(f"bad strategy 'mask:fisher:{percent:g}': expected 'mask:fisher:P' with P in "
                                 "(0, 100] percent of elements, e.g. mask:fisher:0.5")
        self.percent = percent
        self.name = f"mask:fisher:{percent:g}"
        self.masks: dict[str, torch.Tensor] | None = None
        self.tensors: list[str] = []

    @property
    def ready(self) -> bool:
        return self.masks is not None

    def setup(self, model: nn.Module, train: Encoded, seed: int) -> None:
        params = dict(model.named_parameters())
        self.tensors = [n for part in _blocks(model_parts(model)) for n in part.params if params[n].dim() >= 2]
        if not self.tensors:
            raise FrostlineError(f"strategy {self.name!r} needs weight matrices in the model's blocks; it has none")
        scores = fisher_elements(model, train, self.tensors, samples=FISHER_SAMPLES, seed=seed)
        self.masks = top_fraction_mask(scores, self.percent)
        for n, mask in self.masks.items():
            p = params[n]
            if element_mask(p) is not None:
                raise FrostlineError(f"{n} already has an element-level freeze; {self.name} sets its own")
            flag = p.requires_grad
            p.requires_grad_(True)
            freeze_elements(p, mask.to(p.device))
            p.requires_grad_(flag)

    def teardown(self, model: nn.Module) -> None:
        params = dict(model.named_parameters())
        for n in self.tensors:
            if element_mask(params[n]) is not None:
                unfreeze_elements(params[n])

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        if not self.ready:
            raise FrostlineError(f"strategy {self.name!r} chooses its elements from Fisher scores: call "
                                 "setup(model, train_data, seed) first (fit does)")
        chosen = set(self.tensors)
        groups = [Group(p.name, tuple(n for n in p.params if n in chosen), lr) for p in self._body(parts)]
        return EpochPlan((*(g for g in groups if g.params), self._head(parts, head_lr)),
                         f"top {self.percent:g}% of block weights by Fisher + head")

    def choice(self) -> dict[str, Any] | None:
        assert self.masks is not None
        trainable = sum(int((~m).sum()) for m in self.masks.values())
        total = sum(m.numel() for m in self.masks.values())
        return {"strategy": self.name, "score": "fisher", "samples": FISHER_SAMPLES, "tensors": len(self.masks),
                "trainable_elements": trainable, "elements": total}


class AutoFreeze(Strategy):
    """Full fine-tuning whose frozen prefix grows once a prefix of parts has converged (AutoFreeze)."""

    name = "auto-freeze"
    watches_gradients = True

    def __init__(self) -> None:
        self.frozen_from: dict[int, int] = {}  # epoch (0-based) -> number of leading body parts frozen from it on
        self.parts: list[Part] = []
        self.norms: list[list[float]] = []  # per step of the running epoch: gradient norm per body part

    def frozen(self, epoch: int) -> int:
        """How many leading body parts are frozen in ``epoch``."""
        return max([k for e, k in self.frozen_from.items() if e <= epoch], default=0)

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        self.parts = parts
        body, k = self._body(parts), self.frozen(epoch)
        groups = tuple(Group(p.name, p.params, lr) for p in body[k:])
        frozen = body[0].name if k == 1 else f"{body[0].name}..{body[k - 1].name}"
        note = "everything" if k == 0 else f"auto-freeze: {frozen} frozen"
        return EpochPlan((*groups, self._head(parts, head_lr)), note)

    def observe(self, params: dict[str, nn.Parameter], index: int, steps: int) -> None:
        if index == 0:
            self.norms = []
        row = []
        for part in self._body(self.parts):
            grads = [g for n in part.params if (g := params[n].grad) is not None]
            row.append(math.sqrt(sum(float(g.detach().float().pow(2).sum()) for g in grads)) if grads else 0.0)
        self.norms.append(row)

    def end_epoch(self, epoch: int, epochs: int) -> dict[str, Any] | None:
        body = self._body(self.parts)
        k = self.frozen(epoch)
        record: dict[str, Any] = {"frozen_before": k, "frozen_after": k}
        if len(self.norms) < 2:  # an epoch without steps (converged probe, cache-only): nothing to compare
            return record | {"reason": "fewer than 2 steps this epoch"}
        half = len(self.norms) // 2
        first = np.mean(np.array(self.norms[:half]), axis=0)
        second = np.mean(np.array(self.norms[half:]), axis=0)
        change = {body[i].name: float(abs(second[i] - first[i]) / first[i]) for i in range(k, len(body))
                  if first[i] > 0}
        if not change:
            return record | {"reason": "no gradients in the trainable parts"}
        threshold = float(np.median(list(change.values())))
        last = max(i for i, p in enumerate(body) if p.name.startswith("block ")) if _blocks(body) else len(body) - 1
        j = k
        while j < last and body[j].name in change and change[body[j].name] <= threshold:
            j += 1  # the converged prefix; the last block, post and head always train
        if epoch + 1 >= epochs:
            j = k  # the last epoch: nothing left to make cheaper
        record.update({"frozen_after": j, "threshold": threshold, "change": change,
                       "froze": [p.name for p in body[k:j]]})
        if j > k:
            self.frozen_from[epoch + 1] = j
        self.norms = []
        return record

    def restore(self, history: list[dict[str, Any]]) -> None:
        for h in history:
            auto = h.get("auto") or {}
            if auto.get("frozen_after", 0) > auto.get("frozen_before", 0):
                self.frozen_from[int(h["epoch"])] = int(auto["frozen_after"])  # h["epoch"] counts from 1

    def choice(self) -> dict[str, Any] | None:
        body = self._body(self.parts)
        return {"strategy": self.name, "frozen_from_epoch": {str(e + 1): [p.name for p in body[:k]]
                                                               for e, k in sorted(self.frozen_from.items())}}


def parse_auto(kind: str, arg: str, spec: str, model: nn.Module | None) -> Strategy:
    """``surgical:auto[:K[:SCORE]]``, ``mask:fisher:P`` and ``auto-freeze``."""
    if kind == "auto-freeze":
        if arg:
            raise FrostlineError(f"bad strategy {spec!r}: auto-freeze takes no argument")
        return AutoFreeze()
    if kind == "mask":
        what, _, pct = arg.partition(":")
        try:
            percent = float(pct)
        except ValueError:
            percent = math.nan
        if what != "fisher" or not math.isfinite(percent):
            raise FrostlineError(f"bad strategy {spec!r}: expected 'mask:fisher:P' with P the percent of block "
                                 "weights that train, e.g. mask:fisher:0.5")
        return MaskFisher(percent)
    _auto, _, rest = arg.partition(":")  # surgical:auto...
    k_text, _, score = rest.partition(":")
    try:
        k = int(k_text) if k_text else 2
    except ValueError:
        raise FrostlineError(f"bad strategy {spec!r}: expected 'surgical:auto[:K[:SCORE]]' with K >= 1 blocks, "
                             "e.g. surgical:auto:2 or surgical:auto:2:fisher") from None
    if model is None:
        raise FrostlineError("strategy 'surgical:auto' needs the model to count its blocks")
    return SurgicalAuto(k, score or "rgn", model)
