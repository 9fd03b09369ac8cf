"""Head finding and replacement for every family; the new head is fresh, trainable, named, and checkpointed."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import frostline as fl
from tests import models
from tests.conftest import image_batch, text_batch


@pytest.mark.parametrize(
    ("factory", "name", "linear", "family"),
    [
        (models.tiny_bert, "classifier", "classifier", "huggingface"),
        (models.tiny_roberta, "classifier", "classifier.out_proj", "huggingface"),
        (models.tiny_hf_resnet, "classifier", "classifier.1", "huggingface"),
        (models.tiny_vit, "classifier", "classifier", "huggingface"),
        (models.TinyResNet, "fc", "fc", "torchvision"),
        (models.TinyVGG, "classifier.3", "classifier.3", "torchvision"),
        (models.TinyViTLike, "heads.head", "heads.head", "torchvision"),
        (models.TinyTimm, "head", "head", "timm"),
        (models.mlp, "6", "6", "linear"),
    ],
)
def test_find_head(factory, name, linear, family):
    info = fl.find_head(factory())
    assert (info.name, info.linear, info.family) == (name, linear, family)


def test_replace_hf_updates_config_and_num_labels(bert):
    info = fl.replace_head(bert, 7, labels=[f"c{i}" for i in range(7)])
    assert info.num_classes == 7 and info.replaced
    assert bert.config.num_labels == 7 and bert.num_labels == 7
    assert bert.config.id2label[6] == "c6" and bert.config.label2id["c0"] == 0
    out = bert(**text_batch(), labels=torch.tensor([0, 6, 3, 1]))
    assert out.logits.shape == (4, 7) and torch.isfinite(out.loss)
    # HF-style init: normal(0, initializer_range), zero bias.
    assert torch.all(bert.classifier.bias == 0)
    assert 0.005 < bert.classifier.weight.std().item() < 0.05


def test_replace_roberta_keeps_dense_replaces_out_proj():
    model = models.tiny_roberta()
    dense_before = model.classifier.dense.weight.clone()
    info = fl.replace_head(model, 2)
    assert info.name == "classifier" and info.linear == "classifier.out_proj"
    assert model.classifier.out_proj.out_features == 2
    assert torch.equal(model.classifier.dense.weight, dense_before)
    assert model(**text_batch()).logits.shape == (4, 2)


@pytest.mark.parametrize("factory", [models.TinyResNet, models.TinyVGG, models.TinyViTLike, models.tiny_hf_resnet])
def test_replace_image_models_forward(factory):
    model = factory()
    old = model.get_submodule(fl.find_head(model).linear)
    info = fl.replace_head(model, 9)
    new = model.get_submodule(info.linear)
    assert new is not old and isinstance(new, nn.Linear) and new.out_features == 9
    x = image_batch(2, 16)
    out = model(x)
    logits = out.logits if hasattr(out, "logits") else out
    assert logits.shape == (2, 9)


def test_replace_timm_uses_reset_classifier():
    model = models.TinyTimm()
    info = fl.replace_head(model, 2)
    assert model.reset_calls == 1 and model.num_classes == 2
    assert info.name == "head" and info.family == "timm" and model.head.out_features == 2
    assert model(torch.randn(3, 5, 8)).shape == (3, 2)


def test_replace_with_dropout_is_named_sequential(resnet):
    info = fl.replace_head(resnet, 3, dropout=0.2)
    assert info.name == "fc" and info.linear == "fc.1"
    assert isinstance(resnet.fc[0], nn.Dropout) and resnet.fc[0].p == 0.2
    assert {n for n, _ in resnet.named_parameters()} >= {"fc.1.weight", "fc.1.bias"}
    assert fl.find_head(resnet).linear == "fc.1"


def test_new_head_is_trainable_even_after_freeze_all(resnet):
    for p in resnet.parameters():
        p.requires_grad_(False)
    fl.replace_head(resnet, 4)
    assert all(p.requires_grad for p in resnet.fc.parameters())


def test_new_head_is_fresh_and_different_from_old(resnet):
    old = resnet.fc.weight.detach().clone()
    fl.replace_head(resnet, old.shape[0])
    assert not torch.equal(resnet.fc.weight, old)


def test_checkpoint_round_trip_restores_new_head(tmp_path, bert):
    info = fl.replace_head(bert, 3, dropout=0.1)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in bert.state_dict().items()}, str(path))
    fresh = models.tiny_bert()
    fl.replace_head(fresh, info.num_classes, dropout=info.dropout)
    missing, unexpected = fresh.load_state_dict(load_file(str(path)), strict=True)
    assert not missing and not unexpected
    assert torch.equal(fresh.classifier[1].weight, bert.classifier[1].weight)
    bert.eval()
    fresh.eval()
    batch = text_batch()
    assert torch.allclose(fresh(**batch).logits, bert(**batch).logits)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_classes": 0}, r"num_classes must be a positive integer, got 0"),
        ({"num_classes": 2.5}, r"num_classes must be a positive integer, got 2.5"),
        ({"num_classes": 2, "dropout": 1.5}, r"dropout must be a probability in \[0, 1\), got 1.5"),
        ({"num_classes": 2, "labels": ["a"]}, r"got 1 labels for num_classes=2"),
        ({"num_classes": 2, "head": "fcc"}, r"no module named 'fcc'.*closest names: fc"),
    ],
)
def test_replace_errors(resnet, kwargs, match):
    with pytest.raises(fl.FrostlineError, match=match):
        fl.replace_head(resnet, **kwargs)


def test_no_linear_is_clear():
    with pytest.raises(fl.FrostlineError, match="no classifier head found in Sequential"):
        fl.find_head(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))


def test_explicit_head_path():
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8))
    info = fl.replace_head(model, 3, head="0")
    assert info.name == "0" and model[0].out_features == 3
