"""Selectors: each kind resolves to the right modules/parameters; a miss names the closest names."""

from __future__ import annotations

import pytest

import frostline as fl
from frostline.freezing.select import resolve, resolve_params
from tests import models


def test_all_covers_every_parameter(resnet):
    sel = resolve(resnet, "all")
    assert sel.modules == ("",)
    assert list(sel.params) == [n for n, _ in resnet.named_parameters()]


def test_dotted_path_module_and_parameter(resnet):
    assert resolve(resnet, "layer2").params == ("layer2.0.weight", "layer2.1.weight", "layer2.1.bias")
    assert resolve(resnet, "fc.weight").params == ("fc.weight",)


def test_dotted_path_relative_to_hf_base_model(bert):
    sel = resolve(bert, "encoder.layer.3")
    assert sel.modules == ("bert.encoder.layer.3",)
    assert all(p.startswith("bert.encoder.layer.3.") for p in sel.params) and len(sel.params) == 16


def test_glob_matches_modules_and_suffixes(bert):
    sel = resolve(bert, "encoder.layer.*")
    assert {m for m in sel.modules if m.count(".") == 3} == {f"bert.encoder.layer.{i}" for i in range(4)}
    assert resolve_params(bert, ["*.attention.self.query.weight"]) == [
        f"bert.encoder.layer.{i}.attention.self.query.weight" for i in range(4)
    ]


def test_regex(bert):
    params = resolve_params(bert, [r"re:^encoder\.layer\.[0-1]\."])
    assert params and all(p.startswith(("bert.encoder.layer.0.", "bert.encoder.layer.1.")) for p in params)
    assert any(p.startswith("bert.encoder.layer.1.") for p in params)


def test_type_exact_and_glob(resnet):
    assert resolve(resnet, "type:BatchNorm2d").modules == ("bn1", "layer1.1", "layer2.1", "layer3.1")
    assert resolve(resnet, "type:Batch*").modules == ("bn1", "layer1.1", "layer2.1", "layer3.1")
    assert resolve(resnet, "type:torch.nn.modules.linear.Linear").modules == ("fc",)


def test_head(bert, resnet):
    assert resolve(bert, "head").params == ("classifier.weight", "classifier.bias")
    assert resolve(resnet, "head").modules == ("fc",)


def test_block_ranges(bert):
    names = [f"bert.encoder.layer.{i}" for i in range(4)]
    assert resolve(bert, "blocks:0-1").modules == tuple(names[:2])
    assert resolve(bert, "blocks:2").modules == (names[2],)
    assert resolve(bert, "blocks:2-").modules == tuple(names[2:])
    assert resolve(bert, "blocks:0,3").modules == (names[0], names[3])
    assert resolve(bert, "depth:1-2").modules == tuple(names[1:3])
    assert resolve(bert, "last:2").modules == tuple(names[2:])
    assert resolve(bert, "first:1").modules == (names[0],)
    assert resolve(bert, "stem").modules == ("bert.embeddings",)
    assert resolve(bert, "post").modules == ("bert.pooler",)


def test_numbered_sibling_blocks(resnet):
    assert resolve(resnet, "last:2").modules == ("layer2", "layer3")
    assert resolve(resnet, "stem").modules == ("conv1", "bn1")


@pytest.mark.parametrize(
    ("selector", "match"),
    [
        ("encoder.layer.9", r"matches nothing.*closest names: .*encoder\.layer\.\d"),
        ("bert.encodr", r"'bert.encodr' matches nothing.*closest names: bert\.encoder"),
        ("classifer", r"closest names: classifier"),
        ("type:Layernorm", r"no module of type 'Layernorm'.*closest names: LayerNorm"),
        ("blocks:2-9", r"out of range: the model has 4 blocks \(0-3\)"),
        ("blocks:3-1", r"start 3 is after end 1"),
        ("blocks:a-b", r"bad block range 'blocks:a-b'"),
        ("last:0", r"positive number of blocks"),
        ("last:7", r"asks for 7 blocks but the model has 4"),
        ("re:([", r"bad regular expression"),
        ("re:^nothing_here$", r"matches nothing"),
        ("layers:1", r"unknown selector kind 'layers:'"),
        ("  ", r"non-empty string"),
    ],
)
def test_errors_name_the_value_and_closest(bert, selector, match):
    with pytest.raises(fl.SelectorError, match=match):
        resolve(bert, selector)


def test_blocks_on_model_without_stack_is_clear():
    import torch.nn as nn

    with pytest.raises(fl.FrostlineError, match="has no stack of blocks"):
        resolve(nn.Linear(3, 2), "last:1")


def test_resolve_params_union_in_model_order(resnet):
    assert resolve_params(resnet, ["fc", "conv1"]) == ["conv1.weight", "fc.weight", "fc.bias"]


def test_vgg_features_blocks():
    vgg = models.TinyVGG()
    assert resolve(vgg, "blocks:0-").modules == ("features.0", "features.2", "features.4")
