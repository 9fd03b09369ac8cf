"""Freezing holds: checksums after real AdamW (weight decay 0.1) and SGD (momentum 0.9) steps in train mode."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import frostline as fl
from tests import models
from tests.conftest import image_batch, text_batch, train_steps

OPTIMIZERS = {
    "adamw": lambda params: torch.optim.AdamW(params, lr=0.05, weight_decay=0.1),
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=0.1),
}


def _changed(before: dict[str, torch.Tensor], model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}


@pytest.mark.parametrize("opt_name", OPTIMIZERS)
@pytest.mark.parametrize(
    ("factory", "batch", "selectors", "except_"),
    [
        (models.TinyResNet, image_batch, ("all",), None),  # all but head (head kept implicitly)
        (models.tiny_bert, text_batch, ("all",), None),
        (models.TinyResNet, image_batch, ("all",), ["last:2"]),  # last 2 blocks + head trainable
        (models.tiny_bert, text_batch, ("all",), ["last:2"]),
    ],
)
def test_frozen_tensors_unchanged_after_training(opt_name, factory, batch, selectors, except_):
    model = factory()
    plan = fl.freeze(model, *selectors, except_=except_)
    snap = fl.snapshot(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # The textbook mistake this guards against: an optimizer over *all* parameters, with weight decay.
    opt = OPTIMIZERS[opt_name](model.parameters())
    losses = train_steps(model, opt, batch, steps=3)
    check = fl.verify_frozen(model, snap)
    assert check.ok and check.checked == len(snap) > 0
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    changed = _changed(before, model)
    assert not (changed & frozen)
    assert changed == {n for n, p in model.named_parameters() if p.requires_grad}  # everything else moved
    assert plan.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.parametrize("opt_name", OPTIMIZERS)
def test_per_element_mask_holds_under_decay_and_momentum(opt_name, bert):
    name = "bert.encoder.layer.0.attention.self.query.weight"
    rows = [0, 3, 5, 31]
    plan = fl.freeze(bert, name, rows=rows)
    assert plan.masked == {name: 4 * 32}
    param = bert.get_parameter(name)
    before = param.detach().clone()
    snap = fl.snapshot(bert)
    opt = OPTIMIZERS[opt_name](bert.parameters())
    train_steps(bert, opt, text_batch, steps=4)
    assert torch.equal(param.detach()[rows], before[rows])
    others = [i for i in range(32) if i not in rows]
    assert not torch.equal(param.detach()[others], before[others])  # the rest of the tensor trains
    assert fl.verify_frozen(bert, snap).ok


def test_boolean_mask_and_columns(resnet):
    mask = torch.zeros_like(resnet.fc.weight, dtype=torch.bool)
    mask[1, 2:5] = True
    fl.freeze(resnet, "fc.weight", mask=mask)
    fl.freeze(resnet, "layer1.0.weight", cols=[0, 2])
    w_fc, w_conv = resnet.fc.weight.detach().clone(), resnet.layer1[0].weight.detach().clone()
    opt = torch.optim.AdamW(resnet.parameters(), lr=0.1, weight_decay=0.1)
    train_steps(resnet, opt, image_batch, steps=3)
    assert torch.equal(resnet.fc.weight[mask], w_fc[mask])
    assert not torch.equal(resnet.fc.weight[~mask], w_fc[~mask])
    assert torch.equal(resnet.layer1[0].weight[:, [0, 2]], w_conv[:, [0, 2]])


def test_mask_gradient_is_zero_at_frozen_positions(resnet):
    fl.freeze(resnet, "fc.weight", rows=[0])
    resnet(image_batch()).sum().backward()
    assert torch.all(resnet.fc.weight.grad[0] == 0) and resnet.fc.weight.grad[1:].abs().sum() > 0


def test_unfreeze_removes_mask(resnet):
    fl.freeze(resnet, "fc.weight", rows=[0])
    plan = fl.unfreeze(resnet, "fc")
    assert "fc.weight" in plan.changed and plan.masked == {}
    before = resnet.fc.weight.detach().clone()
    train_steps(resnet, torch.optim.SGD(resnet.parameters(), lr=0.1), image_batch, steps=2)
    assert not torch.equal(resnet.fc.weight[0], before[0])


def test_batchnorm_pinned_in_eval_after_model_train(resnet):
    fl.freeze(resnet, "all")
    assert fl.is_pinned(resnet.bn1) and fl.is_pinned(resnet.layer2[1])
    stats = {n: b.clone() for n, b in resnet.named_buffers()}
    resnet.train()
    for _ in range(3):
        resnet(image_batch() * 5 + 3)
    assert all(torch.equal(stats[n], b) for n, b in resnet.named_buffers())
    assert resnet.bn1.training is False and resnet.fc.training is True


def test_textbook_freeze_lets_batchnorm_drift(resnet):
    """Control: requires_grad_(False) alone does not stop running statistics from drifting."""
    for p in resnet.parameters():
        p.requires_grad_(False)
    snap_mean = resnet.bn1.running_mean.clone()
    resnet.train()
    resnet(image_batch() * 5 + 3)
    assert not torch.equal(resnet.bn1.running_mean, snap_mean)
    findings = fl.check_model(resnet)
    assert "frozen-batchnorm-updates-statistics" in {f.code for f in findings}


def test_bn_train_keeps_batchnorm_trainable(resnet):
    plan = fl.freeze(resnet, "all", bn="train")
    assert resnet.bn1.weight.requires_grad and not resnet.conv1.weight.requires_grad
    assert not fl.is_pinned(resnet.bn1) and plan.bn == "train"
    mean = resnet.bn1.running_mean.clone()
    resnet.train()
    resnet(image_batch() * 5 + 3)
    assert not torch.equal(resnet.bn1.running_mean, mean)


def test_dropout_in_frozen_region_is_pinned_but_not_outside(bert):
    fl.freeze(bert, "all", except_="last:1")
    assert fl.is_pinned(bert.bert.embeddings.dropout)
    assert fl.is_pinned(bert.bert.encoder.layer[0].output.dropout)
    assert not fl.is_pinned(bert.bert.encoder.layer[3].output.dropout)
    assert not fl.is_pinned(bert.dropout)  # feeds the trainable head


def test_frozen_transformer_is_deterministic_in_train_mode(bert):
    """HF attention drops attention probabilities by its own `training` flag, not a Dropout module."""
    fl.freeze(bert, "all", except_="last:1")
    attention = bert.bert.encoder.layer[0].attention.self
    assert fl.is_pinned(attention) and not fl.is_pinned(bert.bert.encoder.layer[3].attention.self)
    bert.train()
    batch = text_batch()
    captured = []
    handle = bert.bert.encoder.layer[2].register_forward_hook(lambda _m, _a, out: captured.append(out))
    bert(**batch)
    bert(**batch)
    handle.remove()
    first, second = (c[0] if isinstance(c, tuple) else c for c in captured)
    assert torch.equal(first, second)  # the frozen prefix gives the same output twice in train mode


def test_unfreeze_unpins(resnet):
    resnet.train()
    fl.freeze(resnet, "all")
    fl.unfreeze(resnet, "layer3")
    assert not fl.is_pinned(resnet.layer3[1]) and resnet.layer3[1].training
    assert fl.is_pinned(resnet.layer2[1])


def test_head_kept_unless_named(resnet):
    plan = fl.freeze(resnet, "all")
    assert plan.head_kept == "fc" and resnet.fc.weight.requires_grad
    plan = fl.freeze(resnet, "all", "head")
    assert plan.head_kept is None and not resnet.fc.weight.requires_grad
    fl.unfreeze(resnet, "all")
    fl.freeze(resnet, "all", keep_head=False)
    assert not resnet.fc.weight.requires_grad
    fl.unfreeze(resnet, "all")
    fl.freeze(resnet, "fc*")  # a pattern that matches the head names it
    assert not resnet.fc.weight.requires_grad


def test_plan_records_changes_and_counts(bert):
    plan = fl.freeze(bert, "stem", "blocks:0-1")
    total = sum(p.numel() for p in bert.parameters())
    frozen = sum(p.numel() for n, p in bert.named_parameters() if not p.requires_grad)
    assert plan.frozen == frozen and plan.total == total
    assert "bert.embeddings.word_embeddings.weight" in plan.changed
    assert all(n.startswith(("bert.embeddings.", "bert.encoder.layer.0.", "bert.encoder.layer.1."))
               for n in plan.changed)
    again = fl.freeze(bert, "stem")
    assert again.changed == []  # already frozen
    d = plan.to_dict()
    assert d["total"] == total and d["selectors"] == ["stem", "blocks:0-1"]
    assert "trainable" in str(plan)


def test_except_makes_trainable_again(resnet):
    fl.freeze(resnet, "all", "head")
    fl.freeze(resnet, "all", except_=["head", "layer3"])
    assert resnet.fc.weight.requires_grad and resnet.layer3[0].weight.requires_grad
    assert not resnet.layer2[0].weight.requires_grad


def test_freeze_drops_stale_gradients(resnet):
    resnet(image_batch()).sum().backward()
    fl.freeze(resnet, "all")
    assert resnet.conv1.weight.grad is None


def test_verify_detects_a_change(resnet):
    fl.freeze(resnet, "all")
    snap = fl.snapshot(resnet)
    with torch.no_grad():
        resnet.layer1[0].weight[0, 0, 0, 0] += 1e-6
    with pytest.raises(fl.FrozenChangedError, match=r"1 changed: layer1\.0\.weight"):
        fl.verify_frozen(resnet, snap)
    assert not fl.verify_frozen(resnet, snap, strict=False).ok


def test_verify_skips_tensors_unfrozen_since(resnet):
    fl.freeze(resnet, "all")
    snap = fl.snapshot(resnet)
    fl.unfreeze(resnet, "layer3")
    train_steps(resnet, torch.optim.SGD(resnet.parameters(), lr=0.1), image_batch)
    check = fl.verify_frozen(resnet, snap)
    assert check.ok and "layer3.0.weight" in check.unfrozen


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: fl.freeze(m), r"needs at least one selector"),
        (lambda m: fl.unfreeze(m), r"needs at least one selector"),
        (lambda m: fl.freeze(m, "all", bn="frozen"), r"bn must be 'eval' or 'train', got 'frozen'"),
        (lambda m: fl.freeze(m, "layer1", rows=[0]), r"needs one parameter, but 'layer1' covers 3"),
        (lambda m: fl.freeze(m, "fc.weight", rows=[99]), r"rows=\[99\] out of range for fc.weight with 5 rows"),
        (lambda m: fl.freeze(m, "fc.bias", cols=[0]), r"cols= needs a tensor with 2 or more dimensions"),
        (lambda m: fl.freeze(m, "fc.weight", mask=torch.ones(2, 2, dtype=torch.bool)),
         r"mask shape \(2, 2\) does not match fc.weight of shape \(5, 32\)"),
        (lambda m: fl.freeze(m, "fc.weight", mask=torch.ones(5, 32)), r"must be a torch.bool tensor"),
        (lambda m: fl.freeze(m, "fc.weight", rows=[0], cols=[1]), r"exactly one of rows=, cols= or mask="),
        (lambda m: fl.freeze(m, "nope"), r"'nope' matches nothing"),
    ],
)
def test_freeze_errors(resnet, call, match):
    with pytest.raises(fl.FrostlineError, match=match):
        call(resnet)


def test_trainable_state(resnet):
    fl.freeze(resnet, "stem")
    fl.freeze(resnet, "fc.weight", rows=[0])
    state = fl.trainable_state(resnet)
    assert state["frozen_tensors"] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert state["masked"] == {"fc.weight": 32} and state["pinned"] == ["conv1", "bn1"]
    assert state["frozen"] == 3 * 8 * 9 + 16 + 32
