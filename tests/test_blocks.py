"""Block discovery across model families: the main stack, ordered, with stem before and head after."""

from __future__ import annotations

import pytest

import frostline as fl
from tests import models


def test_hf_bert(bert):
    layout = fl.discover_blocks(bert)
    assert layout.container == "bert.encoder.layer"
    assert layout.blocks == tuple(f"bert.encoder.layer.{i}" for i in range(4))
    assert layout.stem == ("bert.embeddings",)
    assert layout.post == ("bert.pooler",)
    assert layout.head == "classifier"
    assert layout.ordered()[0] == "bert.embeddings" and layout.ordered()[-1] == "classifier"


def test_torchvision_resnet_numbered_stages(resnet):
    layout = fl.discover_blocks(resnet)
    assert (layout.container, layout.blocks) == ("", ("layer1", "layer2", "layer3"))
    assert layout.stem == ("conv1", "bn1") and layout.post == () and layout.head == "fc"


def test_features_sequential_excludes_classifier_and_head():
    layout = fl.discover_blocks(models.TinyVGG())
    assert layout.container == "features"
    assert layout.blocks == ("features.0", "features.2", "features.4")
    assert layout.post == ("classifier.0",)
    assert layout.head == "classifier.3"


def test_torchvision_vit_like():
    layout = fl.discover_blocks(models.TinyViTLike())
    assert layout.blocks == tuple(f"encoder.layers.{i}" for i in range(4))
    assert layout.stem == ("conv_proj",) and layout.post == ("encoder.ln",) and layout.head == "heads.head"


def test_timm_like():
    layout = fl.discover_blocks(models.TinyTimm())
    assert layout.blocks == ("blocks.0", "blocks.1", "blocks.2")
    assert layout.stem == ("stem",) and layout.post == ("norm",) and layout.head == "head"


def test_hf_vit_and_resnet():
    model = models.tiny_vit()
    vit = fl.discover_blocks(model)
    # transformers 4 names the stack vit.encoder.layer, transformers 5 vit.layers: both are found.
    assert len(vit.blocks) == 3 and vit.blocks[0].startswith("vit.") and vit.blocks[2].endswith(".2")
    assert all(type(model.get_submodule(b)).__name__ == "ViTLayer" for b in vit.blocks)
    assert vit.stem == ("vit.embeddings",) and vit.post == ("vit.layernorm",) and vit.head == "classifier"
    res = fl.discover_blocks(models.tiny_hf_resnet())
    assert res.blocks == tuple(f"resnet.encoder.stages.{i}" for i in range(4))
    assert res.stem == ("resnet.embedder",) and res.head == "classifier"


def test_plain_sequential_head_is_not_a_block():
    layout = fl.discover_blocks(models.mlp())
    assert layout.blocks == ("0", "2", "4") and layout.head == "6"


def test_no_stack_is_a_clear_error():
    import torch.nn as nn

    with pytest.raises(fl.FrostlineError, match="has no stack of blocks"):
        fl.discover_blocks(nn.Linear(4, 2))


def test_an_embedding_registered_after_the_stack_is_stem_not_post():
    """MPNet's encoder registers its shared relative position bias after its layers; it feeds every layer, so
    training it under partial:N would change what the frozen (cached) layers compute."""
    from transformers import MPNetConfig, MPNetModel

    from frostline.models.blocks import discover_blocks

    config = MPNetConfig(vocab_size=60, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=40)
    layout = discover_blocks(MPNetModel(config), head=None)
    assert layout.blocks == ("encoder.layer.0", "encoder.layer.1", "encoder.layer.2")
    assert layout.stem == ("embeddings", "encoder.relative_attention_bias")
    assert "encoder.relative_attention_bias" not in layout.post
