"""Strategies say per epoch what trains at which rate; the schedule drives groups added mid-run."""

from __future__ import annotations

import pytest
import torch

import frostline as fl
from frostline.training import model_parts, parse_strategy
from frostline.training.schedule import LRSchedule, PlanOptimizer

LR, HEAD = 1e-4, 1e-2


@pytest.fixture
def parts(bert):
    return model_parts(bert)


def _names(plan):
    return [g.name for g in plan.groups]


def test_parts_cover_model_in_order(bert, parts):
    assert [p.name for p in parts] == ["stem", "block 0", "block 1", "block 2", "block 3", "post", "head"]
    covered = [n for p in parts for n in p.params]
    assert sorted(covered) == sorted(n for n, _ in bert.named_parameters()) and len(covered) == len(set(covered))


def test_linear_probe_partial_full(bert, parts):
    assert _names(parse_strategy("linear-probe").plan(0, parts, LR, HEAD)) == ["head"]
    plan = parse_strategy("partial:2").plan(0, parts, LR, HEAD)
    assert _names(plan) == ["block 2", "block 3", "post", "head"]
    assert not any(n.startswith("bert.embeddings") for n in plan.params)  # embeddings frozen with the blocks
    full = parse_strategy("full").plan(0, parts, LR, HEAD)
    assert len(full.params) == len(list(bert.parameters()))
    assert {g.name: g.lr for g in full.groups}["head"] == HEAD and full.groups[0].lr == LR


def test_gradual_opens_one_part_per_epoch(parts):
    s = parse_strategy("gradual")
    assert [_names(s.plan(e, parts, LR, HEAD)) for e in range(3)] == [
        ["head"], ["block 3", "post", "head"], ["block 2", "block 3", "post", "head"]]
    assert len(s.plan(10, parts, LR, HEAD).groups) == len(parts)


def test_discriminative_decays_by_depth(parts):
    plan = parse_strategy("discriminative:0.5").plan(0, parts, LR, HEAD)
    lrs = {g.name: g.lr for g in plan.groups}
    assert lrs["head"] == HEAD and lrs["post"] == lrs["block 3"] == LR
    assert lrs["block 2"] == pytest.approx(LR / 2) and lrs["block 0"] == pytest.approx(LR / 8)
    assert lrs["stem"] == pytest.approx(LR / 16)
    assert str(parse_strategy("discriminative")) == "discriminative:0.8"


def test_lp_ft_switches_after_k(parts):
    s = parse_strategy("lp-ft:2")
    assert _names(s.plan(1, parts, LR, HEAD)) == ["head"]
    later = s.plan(2, parts, LR, HEAD)
    assert len(later.groups) == len(parts) and all(g.lr == LR for g in later.groups)  # head at the lower rate


def test_surgical(bert, parts):
    plan = parse_strategy("surgical:blocks:0", bert).plan(0, parts, LR, HEAD)
    assert _names(plan) == ["block 0", "head"]
    plan = parse_strategy("surgical:type:LayerNorm", bert).plan(0, parts, LR, HEAD)
    assert all("LayerNorm" in n for g in plan.groups[:-1] for n in g.params)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("partal:2", r"unknown strategy 'partal:2'.*closest names: partial"),
        ("partial", r"expected 'partial:N'"),
        ("partial:x", r"expected 'partial:N'"),
        ("discriminative:2", r"decay factor must be in \(0, 1\]"),
        ("lp-ft:0", r"'lp-ft:K' with K >= 1"),
        ("surgical", r"needs a selector"),
        ("", r"non-empty string"),
    ],
)
def test_parse_errors(spec, match):
    with pytest.raises(fl.FrostlineError, match=match):
        parse_strategy(spec)


def test_partial_larger_than_model(parts):
    with pytest.raises(fl.FrostlineError, match=r"'partial:9' needs 9 blocks but the model has 4"):
        parse_strategy("partial:9").plan(0, parts, LR, HEAD)


def test_schedule_warmup_and_cosine():
    s = LRSchedule(total_steps=100, warmup_steps=10, kind="cosine")
    assert s.factor(0, 0) == pytest.approx(0.1 * 1.0)
    assert s.factor(9, 0) == pytest.approx(s.decay(9))
    assert s.decay(50) == pytest.approx(0.5) and s.decay(100) == pytest.approx(0.0)
    assert LRSchedule(100, 0, "linear").decay(25) == pytest.approx(0.75)
    with pytest.raises(fl.FrostlineError, match=r"unknown schedule 'cosin'.*closest names: cosine"):
        LRSchedule(10, 1, "cosin")


def test_groups_added_mid_run_warm_up_and_follow_schedule(bert, parts):
    schedule = LRSchedule(total_steps=40, warmup_steps=4, kind="cosine")
    popt = PlanOptimizer(bert, "adamw", 0.01, schedule)
    gradual = parse_strategy("gradual")
    assert popt.apply(gradual.plan(0, parts, LR, HEAD), step=0) == ["head"]
    n_groups = len(popt.optimizer.param_groups)
    added = popt.apply(gradual.plan(1, parts, LR, HEAD), step=20)
    assert added == ["block 3", "post"] and len(popt.optimizer.param_groups) > n_groups
    popt.set_lr(20)
    lrs = popt.lrs()
    assert lrs["block 3"] == pytest.approx(LR * 0.25 * schedule.decay(20))  # first step of its own warm-up
    assert lrs["head"] == pytest.approx(HEAD * schedule.decay(20))
    popt.set_lr(23)
    assert popt.lrs()["block 3"] == pytest.approx(LR * schedule.decay(23))
    held = {id(p) for g in popt.optimizer.param_groups for p in g["params"]}
    assert held == {id(bert.get_parameter(n)) for n in gradual.plan(1, parts, LR, HEAD).params}
    no_decay = [g for g in popt.optimizer.param_groups if g["name"].endswith("/no_decay")]
    assert all(g["weight_decay"] == 0.0 for g in no_decay) and no_decay
    assert isinstance(popt.optimizer, torch.optim.AdamW)
