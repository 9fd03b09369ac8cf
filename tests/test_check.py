"""Misuse detection: each mistake PyTorch accepts silently is reported with its fix."""

from __future__ import annotations

import pytest
import torch

import frostline as fl
from tests import models
from tests.conftest import image_batch


def _codes(findings):
    return [f.code for f in findings]


def test_clean_model_has_no_findings(resnet):
    fl.freeze(resnet, "all")
    assert fl.check_model(resnet) == []


def test_module_requires_grad_attribute(resnet):
    resnet.layer1.requires_grad = False
    (finding,) = fl.check_model(resnet)
    assert finding.code == "module-requires-grad-attribute" and finding.severity == "error"
    assert "'layer1'" in finding.message and "requires_grad_(False)" in finding.fix
    assert resnet.layer1[0].weight.requires_grad  # proof the attribute did nothing


@pytest.mark.parametrize("typo", ["require_grad", "requires_grads", "requires_gard", "requiresgrad"])
def test_parameter_attribute_typo(resnet, typo):
    setattr(resnet.fc.weight, typo, False)
    (finding,) = fl.check_model(resnet)
    assert finding.code == "parameter-attribute-typo"
    assert repr(typo) in finding.message and "model.get_parameter('fc.weight').requires_grad_(False)" in finding.fix


def test_module_attribute_typo(resnet):
    resnet.layer2.require_grad = False
    assert _codes(fl.check_model(resnet)) == ["module-attribute-typo"]


def test_unrelated_attributes_are_not_typos(resnet):
    resnet.fc.weight.my_tag = "x"
    resnet.layer2.grad_scale = 2.0
    assert fl.check_model(resnet) == []


def test_nothing_trainable(resnet):
    fl.freeze(resnet, "all", "head")
    findings = fl.check_model(resnet)
    assert _codes(findings) == ["nothing-trainable"]
    with pytest.raises(fl.FrostlineError, match="no parameter of TinyResNet is trainable: the loss cannot change"):
        fl.make_optimizer(resnet)


def test_fully_masked_is_nothing_trainable():
    model = torch.nn.Linear(3, 2)
    fl.freeze(model, "weight", mask=torch.ones(2, 3, dtype=torch.bool))
    fl.freeze(model, "bias", keep_head=False)
    assert "nothing-trainable" in _codes(fl.check_model(model))


def test_optimizer_holds_frozen_and_misses_trainable(resnet):
    opt = torch.optim.SGD(resnet.layer1.parameters(), lr=0.1)
    fl.freeze(resnet, "layer1")
    codes = _codes(fl.check_model(resnet, opt))
    assert codes == ["optimizer-misses-trainable", "optimizer-holds-frozen"]  # errors first


def test_stale_gradient_on_frozen(resnet):
    resnet(image_batch()).sum().backward()
    resnet.conv1.weight.requires_grad_(False)  # textbook freeze, gradient left behind
    assert "stale-gradient-on-frozen" in _codes(fl.check_model(resnet))


def test_make_optimizer_holds_trainable_only(resnet):
    fl.freeze(resnet, "all")
    opt = fl.make_optimizer(resnet, "sgd", lr=0.1, weight_decay=0.1, momentum=0.9)
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert held == {id(resnet.fc.weight), id(resnet.fc.bias)}
    no_decay = [g for g in opt.param_groups if g["name"].endswith("no_decay")]
    assert no_decay[0]["weight_decay"] == 0.0 and no_decay[0]["params"][0] is resnet.fc.bias
    assert fl.check_model(resnet, opt) == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "adamx"}, r"unknown optimizer 'adamx'; expected one of adamw, adam, sgd; closest names: adam"),
        ({"lr": 0}, r"learning rate must be > 0, got 0"),
        ({"weight_decay": -1}, r"weight_decay must be >= 0, got -1"),
    ],
)
def test_make_optimizer_errors(resnet, kwargs, match):
    with pytest.raises(fl.FrostlineError, match=match):
        fl.make_optimizer(resnet, **kwargs)


def test_misused_factory_model():
    codes = set(_codes(fl.check_model(models.misused())))
    assert codes == {"module-requires-grad-attribute", "parameter-attribute-typo"}
