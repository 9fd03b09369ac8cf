"""Strategies that measure before they freeze.

==============================  ======================================================================
``surgical:auto[:K[:SCORE]]``   the K blocks (default 2) with the highest importance score (``rgn``,
                                the default, ``fisher`` or ``relevance``; :mod:`frostline.freezing.importance`),
                                measured on the training data with the new head (:func:`score_budget`
                                samples), plus the head
``mask:fisher:P``               of the blocks' weight-matrix elements, only the top P % by diagonal Fisher
                                information (one ranking over all) train (element masks), plus the head
``auto-freeze[:I]``             full fine-tuning that freezes the converged prefix as it goes (AutoFreeze,
                                Liu et al. 2021): every 1/I epoch (default 1/2), each trainable block's
                                summed gradient is compared with the previous interval's; the leading
                                blocks whose change is below the median freeze (with the stem) from the
                                next epoch on, so the frozen prefix, and with it the cache, only grows
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
    """Full fine-tuning whose frozen prefix grows once a prefix of blocks has converged (AutoFreeze, Liu et al. 2021,
    as its reference code does it).

    The steps are cut into ``intervals`` per epoch (2: at 5 epochs, the reference's 10 intervals per run). Over each
    interval every trainable block's gradient is summed; at the interval's end the L1 norm of that sum is compared
    with the previous interval's, ``|prev - now| / prev``. The first trainable block whose change is at or above the
    ``percentile`` (median) of the trainable blocks' changes becomes the first block that trains: the blocks before
    it, and the stem with them, freeze from the next epoch on (the plan, and with it the frozen-prefix cache,
    changes only between epochs). The stem is not judged on its own (its gradient is the embeddings' rows of the
    batch's tokens); the last block, the post-block modules and the head always train; nothing freezes after the
    last epoch.
    """

    watches_gradients = True

    def __init__(self, intervals: int = 2, percentile: float = 50.0) -> None:
        self.intervals, self.percentile = intervals, percentile
        self.name = "auto-freeze" if intervals == 2 else f"auto-freeze:{intervals}"
        self.frozen_from: dict[int, int] = {}  # epoch (0-based) -> number of leading body parts frozen from it on
        self.parts: list[Part] = []
        self.sums: dict[str, torch.Tensor] = {}  # this interval's summed gradient per parameter
        self.prev: dict[str, float] | None = None  # the previous interval's L1 norm per block
        self.start = 0  # the first block that trains, as decided so far
        self.decisions: list[dict[str, Any]] = []  # this epoch's interval decisions

    def frozen(self, epoch: int) -> int:
        """How many leading body parts are frozen in ``epoch``."""
        return max([k for e, k in self.frozen_from.items() if e <= epoch], default=0)

    def _block_parts(self) -> list[tuple[int, Part]]:
        return [(i, p) for i, p in enumerate(self._body(self.parts)) if p.name.startswith("block ")]

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        self.parts = parts
        body, k = self._body(parts), self.frozen(epoch)
        groups = tuple(Group(p.name, p.params, lr) for p in body[k:])
        frozen = body[0].name if k == 1 else f"{body[0].name}..{body[k - 1].name}"
        note = "everything" if k == 0 else f"auto-freeze: {frozen} frozen"
        return EpochPlan((*groups, self._head(parts, head_lr)), note)

    def observe(self, params: dict[str, nn.Parameter], index: int, steps: int) -> None:
        if index == 0:
            self.decisions, self.sums = [], {}
        blocks = self._block_parts()
        if self.start >= len(blocks) - 1:
            return  # only the last block is left, and it always trains: nothing to decide
        for _i, part in blocks[self.start:]:
            for n in part.params:
                g = params[n].grad
                if g is None:
                    continue
                if n in self.sums:
                    self.sums[n].add_(g.detach().float())
                else:
                    self.sums[n] = g.detach().float().clone()
        ends = {steps * (j + 1) // self.intervals for j in range(self.intervals)}
        if index + 1 in ends:
            self._close_interval(index + 1)

    def _close_interval(self, step: int) -> None:
        blocks = [p for _i, p in self._block_parts()]
        norms = {p.name: sum(float(self.sums[n].abs().sum()) for n in p.params if n in self.sums)
                 for p in blocks[self.start:]}
        self.sums = {}
        record: dict[str, Any] = {"step": step, "norms": norms}
        prev, self.prev = self.prev, norms
        if prev is not None:
            change = {name: abs(prev[name] - v) / prev[name] for name, v in norms.items()
                      if prev.get(name, 0.0) > 0}
            if change:
                threshold = float(np.percentile(list(change.values()), self.percentile))
                first = self.start
                while first < len(blocks) - 1 and change.get(blocks[first].name, math.inf) < threshold:
                    first += 1  # the converged prefix; the last block always trains
                self.start = first
                record.update({"change": change, "threshold": threshold, "start": blocks[first].name})
        self.decisions.append(record)

    def end_epoch(self, epoch: int, epochs: int) -> dict[str, Any] | None:
        body, k = self._body(self.parts), self.frozen(epoch)
        record: dict[str, Any] = {"frozen_before": k, "frozen_after": k, "intervals": self.decisions,
                                  "start": self.start, "last_norms": self.prev}
        self.decisions = []
        blocks = self._block_parts()
        if not blocks:
            return record | {"reason": "the model has no blocks to freeze"}
        if self.start >= len(blocks) - 1 and not record["intervals"]:
            return record | {"reason": "only the last block trains, and it always does"}
        if not record["intervals"]:  # an epoch without steps (converged probe, cache-only): nothing measured
            return record | {"reason": "no training steps this epoch"}
        j = blocks[self.start][0] if self.start > 0 else 0  # freeze the stem with the first block
        if epoch + 1 >= epochs:
            j = k  # the last epoch: nothing left to make cheaper
        j = max(j, k)
        decided = [d for d in record["intervals"] if "change" in d]
        if decided:
            record.update({"threshold": decided[-1]["threshold"], "change": decided[-1]["change"]})
        else:
            record["reason"] = "the first interval: nothing to compare with yet"
        record.update({"frozen_after": j, "froze": [p.name for p in body[k:j]]})
        if j > k:
            self.frozen_from[epoch + 1] = j
        return record

    def restore(self, history: list[dict[str, Any]]) -> None:
        for h in history:
            auto = h.get("auto") or {}
            if auto.get("frozen_after", 0) > auto.get("frozen_before", 0):
                self.frozen_from[int(h["epoch"])] = int(auto["frozen_after"])  # h["epoch"] counts from 1
        if history and history[-1].get("auto"):
            last = history[-1]["auto"]
            self.start, self.prev = int(last.get("start", 0)), last.get("last_norms")

    def choice(self) -> dict[str, Any] | None:
        body = self._body(self.parts)
        return {"strategy": self.name, "intervals_per_epoch": self.intervals, "percentile": self.percentile,
                "frozen_from_epoch": {str(e + 1): [p.name for p in body[:k]]
                                      for e, k in sorted(self.frozen_from.items())}}


def parse_auto(kind: str, arg: str, spec: str, model: nn.Module | None) -> Strategy:
    """``surgical:auto[:K[:SCORE]]``, ``mask:fisher:P`` and ``auto-freeze``."""
    if kind == "auto-freeze":
        if not arg:
            return AutoFreeze()
        if not arg.isdigit() or not 1 <= int(arg) <= 100:
            raise FrostlineError(f"bad strategy {spec!r}: expected 'auto-freeze[:I]' with I in 1..100 intervals "
                                 "per epoch (default 2), e.g. auto-freeze:4")
        return AutoFreeze(int(arg))
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
