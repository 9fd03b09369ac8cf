"""The loop: frozen tensors byte-identical after real runs, deterministic, resumable, early stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import frostline as fl
from frostline.data import from_tensors, split
from frostline.data.batching import Encoded
from frostline.freezing.plan import set_trainable
from frostline.runs.config import RunConfig
from frostline.runs.training import train
from frostline.training import TrainConfig, fit, model_parts, parse_strategy
from tests import models
from tests.conftest import make_text_file


def _image_splits(n: int = 96):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 3, 8, 8, generator=g) + y.view(-1, 1, 1, 1) * 1.5  # learnable
    s = split(from_tensors(x, y, ["neg", "pos"]), 0.2, 0.2, seed=0)
    return Encoded(s.train), Encoded(s.val), Encoded(s.test)


CFG = TrainConfig(epochs=3, batch_size=16, lr=0.05, head_lr=0.05, weight_decay=0.1, warmup=0.0, patience=None)


@pytest.mark.parametrize("strategy", ["linear-probe", "partial:2", "gradual"])
def test_frozen_parameters_byte_identical_after_run(strategy):
    torch.manual_seed(0)
    model = models.TinyResNet(num_classes=2)
    train_enc, val_enc, _ = _image_splits()
    s = parse_strategy(strategy, model)
    parts = model_parts(model)
    first, last = s.plan(0, parts, 1, 1).params, s.plan(CFG.epochs - 1, parts, 1, 1).params
    set_trainable(model, last)  # what stays frozen to the end: gradual's frozen set only shrinks
    snap = fl.snapshot(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = fit(model, train_enc, val_enc, s, CFG)
    check = fl.verify_frozen(model, snap)
    assert check.ok and check.checked == len(snap) > 0
    assert any("running_mean" in n for n in snap.digests)  # pinned BatchNorm statistics are covered too
    moved = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert moved and moved <= last and moved >= first
    # The engine checks every plan itself: checksums when a plan starts, verified when it ends.
    assert result.history[-1]["frozen_verified"] > 0
    if strategy == "gradual":
        assert all(h["frozen_verified"] > 0 for h in result.history[1:])
    if strategy == "gradual":
        assert [h["groups_added"] for h in result.history] == [["head"], ["block 2"], ["block 1"]]


def test_training_learns_and_is_deterministic():
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = models.TinyResNet(num_classes=2)
        train_enc, val_enc, _ = _image_splits()
        runs.append(fit(model, train_enc, val_enc, parse_strategy("full"), CFG))
    a, b = runs
    assert [h["train"]["loss"] for h in a.history] == [h["train"]["loss"] for h in b.history]
    assert a.history[-1]["val"]["accuracy"] > 0.8
    assert a.best_epoch == int(np.argmin([h["val"]["loss"] for h in a.history])) + 1  # epochs count from 1
    assert [h["epoch"] for h in a.history] == list(range(1, len(a.history) + 1))


def test_early_stopping_restores_best():
    torch.manual_seed(0)
    model = models.TinyResNet(num_classes=2)
    train_enc, val_enc, _ = _image_splits()
    cfg = TrainConfig(epochs=8, batch_size=16, lr=3.0, head_lr=3.0, warmup=0.0, patience=1, clip=None,
                      optimizer="sgd", schedule="constant")
    result = fit(model, train_enc, val_enc, parse_strategy("full"), cfg)
    losses = [h["val"]["loss"] for h in result.history]
    assert result.stopped_early and len(losses) < 8
    assert losses[-1] >= losses[result.best_epoch - 1]


@pytest.mark.parametrize(("field", "value", "match"), [
    ("epochs", 0, "epochs must be >= 1, got 0"), ("lr", -1.0, "lr must be > 0"),
    ("warmup", 1.0, r"warmup must be a fraction in \[0, 1\)"),
])
def test_config_errors(field, value, match):
    cfg = TrainConfig(**{field: value})
    with pytest.raises(fl.FrostlineError, match=match):
        cfg.validate()


class Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_uninterrupted(tmp_path, tiny_hf_dir):
    data = make_text_file(tmp_path / "d.tsv", n=90)
    base = {"model": f"hf:{tiny_hf_dir}", "data": data, "text_column": "1", "label_column": "0",
            "strategy": "gradual", "epochs": 3, "batch_size": 8, "lr": 1e-3}
    quiet = lambda _s: None  # noqa: E731
    whole = train(RunConfig(**base, out=str(tmp_path / "whole")), echo=quiet)

    calls = {"n": 0}

    def crash_in_epoch_3(description: str, total: int):
        def advance(_loss: float) -> None:
            if description.startswith("epoch 3"):
                raise Interrupt
        calls["n"] += 1
        return advance

    cfg = RunConfig(**base, out=str(tmp_path / "cut"))
    with pytest.raises(Interrupt):
        train(cfg, progress=crash_in_epoch_3, echo=quiet)
    state = fl_state(tmp_path / "cut")
    assert state["complete"] is False and state["config"]["epochs"] == 3 and len(state["data_sha256"]["data"]) == 64
    kept = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir())
    assert kept == ["epoch-0001", "epoch-0002"]  # one complete unit per epoch, the last two kept
    assert not (tmp_path / "cut" / "model.safetensors").exists()  # results only once the run is complete
    resumed = train(cfg, echo=quiet)
    assert resumed.resumed_from == 2 and resumed.metrics["run"]["resumed_from_epoch"] == 2
    assert len(resumed.metrics["history"]) == 3
    # Bit-identical to the run that was never interrupted: weights, optimizer state, RNG and schedule resume.
    for a, b in zip(whole.metrics["history"], resumed.metrics["history"], strict=True):
        assert (a["train"]["loss"], a["val"]["loss"]) == (b["train"]["loss"], b["val"]["loss"])
    assert resumed.metrics["test"] == whole.metrics["test"]
    assert not (tmp_path / "cut" / "checkpoints").exists()  # cleaned once complete
    cut, whole_file = tmp_path / "cut" / "model.safetensors", tmp_path / "whole" / "model.safetensors"
    assert cut.read_bytes() == whole_file.read_bytes()
    again = train(cfg, echo=quiet)
    assert again.reused  # a finished run is reported, not retrained
    with pytest.raises(fl.FrostlineError, match=r"holds a different run \(differs in: epochs\)"):
        train(RunConfig(**{**base, "epochs": 4}, out=str(tmp_path / "cut")), echo=quiet)


def fl_state(path):
    import json

    return json.loads((path / "state.json").read_text())


def test_stale_gradients_do_not_leak_into_the_first_step():
    runs = []
    for stale in (False, True):
        torch.manual_seed(0)
        model = models.TinyResNet(num_classes=2)
        train_enc, val_enc, _ = _image_splits()
        if stale:  # an earlier loop left gradients on the parameters (eval mode: BatchNorm statistics untouched)
            model.eval()
            model(torch.randn(4, 3, 8, 8)).sum().backward()
            model.train()
        fit(model, train_enc, val_enc, parse_strategy("full"), CFG)
        runs.append({n: p.detach().clone() for n, p in model.named_parameters()})
    for name, value in runs[0].items():
        assert torch.equal(runs[1][name], value), name


@pytest.mark.parametrize("strategy", ["linear-probe", "gradual", "lp-ft:1", "full"])
def test_restore_best_brings_back_the_best_epoch_exactly(strategy):
    torch.manual_seed(0)
    model = models.TinyResNet(num_classes=2)
    train_enc, val_enc, _ = _image_splits()
    cfg = TrainConfig(epochs=4, batch_size=16, lr=3.0, head_lr=3.0, warmup=0.0, patience=None, clip=None,
                      optimizer="sgd", schedule="constant",  # a learning rate this high overshoots after epoch 1
                      probe="sgd",  # an SGD probe that overshoots (the convex one converges in epoch 1)
                      bn="train")  # BatchNorm normalising by its batch keeps this rate finite
    states = []
    result = fit(model, train_enc, val_enc, parse_strategy(strategy, model), cfg,
                 on_epoch_end=lambda *_: states.append({k: v.clone() for k, v in model.state_dict().items()}))
    assert result.best_epoch < len(states)  # otherwise restoring proves nothing
    best = states[result.best_epoch - 1]
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())
    # Only what training could change is copied: a linear probe keeps the head, not the frozen backbone.
    if strategy == "linear-probe":
        assert set(result.best_state) == {"fc.weight", "fc.bias"}


def test_run_config_defaults_equal_the_engine_defaults():
    # RunConfig repeats TrainConfig's keys (flat CLI / YAML keys); the two must not drift apart.
    from dataclasses import fields

    shared = {f.name for f in fields(TrainConfig)} & {f.name for f in fields(RunConfig)}
    assert len(shared) == len(fields(TrainConfig)) - 1  # all but restore_best (train restores from disk)
    assert {k: getattr(RunConfig().train_config(), k) for k in shared} == \
        {k: getattr(TrainConfig(), k) for k in shared}
    assert RunConfig().lr is None and RunConfig().body_lr() == TrainConfig().lr  # unset: the strategy's own
