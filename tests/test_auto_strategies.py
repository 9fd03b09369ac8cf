"""Strategies that measure before they freeze: surgical:auto trains the blocks that score highest, mask:fisher's
element masks hold under AdamW and momentum, auto-freeze only ever moves its boundary forward and its cache stays
exact, and every choice is recorded and repeats on resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from frostline.core.errors import FrostlineError
from frostline.data import Encoded, from_tensors, split
from frostline.freezing.masks import element_mask
from frostline.models.parts import Part
from frostline.training import TrainConfig, fit, parse_strategy, predict
from frostline.training.auto import AutoFreeze
from tests import models
from tests.test_cache import _images
from tests.test_importance import Stack


def _vectors(n: int = 128):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    s = split(from_tensors(x, y, ["a", "b"]), 0.25, 0.25, seed=0)
    return Encoded(s.train), Encoded(s.val)


def _config(**kw) -> TrainConfig:
    base = {"epochs": 3, "batch_size": 8, "lr": 0.01, "head_lr": 0.05, "warmup": 0.2, "patience": None,
            "probe": "sgd"}
    return TrainConfig(**(base | kw))


def test_surgical_auto_trains_the_blocks_the_loss_rests_on_and_nothing_else():
    torch.manual_seed(0)
    model = Stack((0.3, 0.0, 3.0, 0.3))
    train, val = _vectors()
    strategy = parse_strategy("surgical:auto:1", model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = fit(model, train, val, strategy, _config(optimizer="adamw", weight_decay=0.1))
    assert strategy.chosen == ["block 2"]
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"layers.2.fc.weight", "layers.2.fc.bias", "fc.weight", "fc.bias"}
    assert result.history[0]["plan"] == "block 2 (top 1 by rgn) + head"
    choice = strategy.choice()
    assert choice["chosen"] == ["block 2"] and [p["name"] for p in choice["importance"]["parts"]][2] == "block 1"
    assert choice["importance"]["parts"][2]["rgn"] == 0.0  # the block the loss cannot see


def test_surgical_auto_k_and_score_are_checked_against_the_model():
    model = Stack((0.3, 1.0))
    with pytest.raises(FrostlineError, match=r"'surgical:auto:3' needs K in 1\.\.2: the model has 2 blocks"):
        parse_strategy("surgical:auto:3", model)
    with pytest.raises(FrostlineError, match=r"unknown importance score 'grad'"):
        parse_strategy("surgical:auto:1:grad", model)
    assert str(parse_strategy("surgical:auto", model)) == "surgical:auto:2"
    with pytest.raises(FrostlineError, match=r"chooses its blocks from importance scores: call setup"):
        parse_strategy("surgical:auto:1", model).plan(0, [], 1e-3, 1e-2)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])  # sgd: momentum 0.9
def test_fisher_masks_hold_under_adamw_and_momentum(optimizer):
    torch.manual_seed(0)
    model = Stack((0.5, 1.0, 1.0))
    train, val = _vectors()
    strategy = parse_strategy("mask:fisher:10", model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = fit(model, train, val, strategy, _config(optimizer=optimizer, weight_decay=0.1))
    assert strategy.masks is not None and sorted(strategy.masks) == [f"layers.{i}.fc.weight" for i in range(3)]
    head = sum(p.numel() for p in model.fc.parameters())
    assert result.trainable_params == round(3 * 16 * 16 * 0.10) + head  # kept elements, not whole matrices
    assert result.history[0]["trainable"] == result.trainable_params
    moved = 0
    for name, frozen in strategy.masks.items():
        p = model.get_parameter(name).detach()
        assert torch.equal(p[frozen], before[name][frozen]), name  # no step, no decay, no momentum
        moved += int((p[~frozen] != before[name][~frozen]).sum())
    assert moved == round(3 * 16 * 16 * 0.10)  # every kept element trained
    for name in ("embed.weight", "layers.0.fc.bias", "norm.weight"):
        assert torch.equal(model.get_parameter(name), before[name]), name
    assert not torch.equal(model.fc.weight, before["fc.weight"])
    assert all(element_mask(model.get_parameter(n)) is None for n in strategy.masks)  # taken off after fit


def _steps(strategy: AutoFreeze, rows: list[list[float]]) -> None:
    """One epoch of steps: ``rows[step][i]`` is block i's gradient (one element per block)."""
    for i, row in enumerate(rows):
        params = {}
        for (_j, part), value in zip(strategy._block_parts(), row, strict=True):
            p = torch.nn.Parameter(torch.zeros(1))
            p.grad = torch.tensor([float(value)])
            params[part.params[0]] = p
        strategy.observe(params, i, len(rows))


def test_auto_freeze_rule_freezes_the_converged_prefix_and_only_moves_forward():
    parts = [Part("stem", ("s",)), *(Part(f"block {i}", (f"b{i}",)) for i in range(4)), Part("post", ("p",)),
             Part("head", ("h",))]
    af = AutoFreeze()
    af.plan(0, parts, 1e-3, 1e-2)
    # two intervals of two steps; summed gradients: [2, 2, 2, 2] then [2, 2.02, 3, 4] (block 1 went +1.5, -0.48)
    _steps(af, [[1, 1, 1, 1]] * 2 + [[1, 1.5, 1.5, 2], [1, 0.52, 1.5, 2]])
    rec = af.end_epoch(0, 4)
    change = rec["intervals"][1]["change"]
    assert change == pytest.approx({"block 0": 0.0, "block 1": 0.01, "block 2": 0.5, "block 3": 1.0})
    assert rec["threshold"] == pytest.approx(np.median([0.0, 0.01, 0.5, 1.0]))
    assert "change" not in rec["intervals"][0]  # the first interval has nothing to compare with
    assert rec["frozen_after"] == 3 and rec["froze"] == ["stem", "block 0", "block 1"]  # the stem goes with block 0
    assert af.plan(1, parts, 1e-3, 1e-2).note == "auto-freeze: stem..block 1 frozen"
    assert {g.name for g in af.plan(1, parts, 1e-3, 1e-2).groups} == {"block 2", "block 3", "post", "head"}
    # next epoch: only the trainable blocks are judged, against the previous interval; the last block always trains
    _steps(af, [[0, 0, 1.5, 1]] * 2 + [[0, 0, 1.5, 1]] * 2)
    rec = af.end_epoch(1, 4)
    assert [d["start"] for d in rec["intervals"]] == ["block 3"]  # then only the last block is left: no more
    assert rec["intervals"][0]["change"] == pytest.approx({"block 2": 0.0, "block 3": 0.5})
    assert rec["frozen_after"] == 4 and rec["froze"] == ["block 2"]
    assert [af.frozen(e) for e in range(4)] == [0, 3, 4, 4]
    # the last epoch decides nothing; a resumed run takes the recorded decisions back
    af.plan(3, parts, 1e-3, 1e-2)
    _steps(af, [[0, 0, 0, 1]] * 4)
    last = af.end_epoch(3, 4)
    assert last["frozen_after"] == 4 and last["reason"] == "only the last block trains, and it always does"
    again = AutoFreeze()
    again.restore([{"epoch": 1, "auto": {"frozen_before": 0, "frozen_after": 3, "start": 2, "last_norms": {}}},
                   {"epoch": 2, "auto": {"frozen_before": 3, "frozen_after": 4, "start": 3,
                                         "last_norms": {"block 3": 2.0}}}])
    assert [again.frozen(e) for e in range(4)] == [0, 3, 4, 4] and again.prev == {"block 3": 2.0}


def test_auto_freeze_sums_gradients_so_noise_that_cancels_counts_as_converged():
    parts = [Part("stem", ("s",)), *(Part(f"block {i}", (f"b{i}",)) for i in range(3)), Part("head", ("h",))]
    af = AutoFreeze()
    af.plan(0, parts, 1e-3, 1e-2)
    # block 0's per-step gradients flip sign (noise around a minimum): its summed gradient stays 0.2 in both
    # intervals although each step's norm grows 10x; blocks 1 and 2 keep a direction and grow
    _steps(af, [[1.1, 1, 1], [-0.9, 1, 1], [10.1, 2, 3], [-9.9, 2, 3]])
    rec = af.end_epoch(0, 3)
    assert rec["change"] == pytest.approx({"block 0": 0.0, "block 1": 1.0, "block 2": 2.0}, abs=1e-5)
    assert rec["froze"] == ["stem", "block 0"]


def test_auto_freeze_cache_stays_exact_and_the_boundary_only_grows():
    results = []
    for cache in (False, True):
        torch.manual_seed(0)
        model = models.TinyResNet(num_classes=2)
        train, val = _images()
        result = fit(model, train, val, parse_strategy("auto-freeze", model), _config(epochs=4, cache=cache))
        results.append((result, predict(model, val), {n: p.detach().clone() for n, p in model.named_parameters()}))
    (plain, plain_pred, plain_w), (cached, cached_pred, cached_w) = results
    boundary = [h["auto"]["frozen_after"] for h in cached.history]
    assert boundary == [h["auto"]["frozen_after"] for h in plain.history]
    assert boundary == sorted(boundary) and boundary[-1] > 0  # it froze something, and never took it back
    assert any(h["cache"].startswith("cache built") for h in cached.history[1:])
    np.testing.assert_allclose(cached_pred.probs, plain_pred.probs, atol=1e-5)
    for n in plain_w:
        torch.testing.assert_close(cached_w[n], plain_w[n], atol=1e-5, rtol=1e-5, msg=n)
    frozen_plans = [h["plan"] for h, b in zip(cached.history[1:], boundary, strict=False) if b > 0]
    assert frozen_plans and all(p.startswith("auto-freeze: stem") for p in frozen_plans)


def _interrupted_then_resumed(tmp_path, tiny_hf_dir, strategy: str, stop_at: str):
    """A whole run, and the same run interrupted at ``stop_at`` then resumed: both folders."""
    from frostline.runs.config import RunConfig
    from tests.conftest import interrupted_then_resumed, make_text_file

    data = make_text_file(tmp_path / "d.tsv", n=80)
    cfg = RunConfig(model=f"hf:{tiny_hf_dir}", data=data, text_column="1", label_column="0", strategy=strategy,
                    epochs=4, batch_size=8, lr=1e-3, out=str(tmp_path / "r"))
    return interrupted_then_resumed(cfg, stop_at)


@pytest.mark.parametrize("strategy", ["auto-freeze", "surgical:auto:1", "mask:fisher:5"])
def test_a_resumed_automatic_run_repeats_the_uninterrupted_one_exactly(tmp_path, tiny_hf_dir, strategy):
    import json

    whole, resumed = _interrupted_then_resumed(tmp_path, tiny_hf_dir, strategy, "epoch-0002:renamed")
    assert resumed.resumed_from == 2
    for f in ("model.safetensors", "predictions.csv"):
        assert (resumed.out / f).read_bytes() == (whole.out / f).read_bytes(), f
    a, b = (json.loads((r.out / "metrics.json").read_text()) for r in (whole, resumed))
    assert a["run"]["auto"]["strategy"] == strategy
    assert [h["plan"] for h in a["history"]] == [h["plan"] for h in b["history"]]
    if strategy == "auto-freeze":
        assert [h["auto"]["frozen_after"] for h in a["history"]] == [h["auto"]["frozen_after"] for h in b["history"]]
    if strategy.startswith("surgical"):
        assert b["run"]["auto"]["chosen"] == a["run"]["auto"]["chosen"] and len(a["run"]["auto"]["chosen"]) == 1
    report = (whole.out / "report.html").read_text()
    assert f"{strategy}: what it measured" in report


def test_auto_freeze_intervals_are_named_and_checked():
    assert parse_strategy("auto-freeze").intervals == 2 and str(parse_strategy("auto-freeze")) == "auto-freeze"
    four = parse_strategy("auto-freeze:4")
    assert four.intervals == 4 and str(four) == "auto-freeze:4"
    for bad in ("auto-freeze:0", "auto-freeze:x", "auto-freeze:2.5"):
        with pytest.raises(FrostlineError, match=r"expected 'auto-freeze\[:I\]' with I in 1\.\.100 intervals"):
            parse_strategy(bad)
