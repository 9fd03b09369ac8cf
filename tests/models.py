"""Tiny models for tests: look-alikes of torchvision and timm conventions, plus random-weight HF models.

Importable as ``tests.models:<function>`` by the CLI tests (``module:function`` model specs).
"""

from __future__ import annotations

import torch
from torch import nn

from frostline.models.examples import SmallResNet, misused  # noqa: F401  (misused: for frostline check)


class TinyResNet(SmallResNet):
    """torchvision ResNet layout: conv1/bn1 stem, numbered stages layer1..layer3, avgpool, fc (frostline's own
    example model, under the name the tests' messages use)."""


class TinyVGG(nn.Module):
    """torchvision VGG/MobileNet layout: ``features`` Sequential and a ``classifier`` Sequential ending in Linear."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class _Block(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 2), nn.GELU(), nn.Dropout(0.1), nn.Linear(dim * 2, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class TinyViTLike(nn.Module):
    """torchvision ViT layout: ``encoder.layers`` and ``heads.head``."""

    def __init__(self, num_classes: int = 3, dim: int = 16) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, 4, stride=4)
        self.encoder = nn.Module()
        self.encoder.layers = nn.Sequential(*[_Block(dim) for _ in range(4)])
        self.encoder.ln = nn.LayerNorm(dim)
        self.heads = nn.Sequential()
        self.heads.add_module("head", nn.Linear(dim, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = self.encoder.ln(self.encoder.layers(x))
        return self.heads(x.mean(1))


class _MBBlock(nn.Module):
    """An EfficientNet-style block: called with a drop-connect rate the model computes from the block's index."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(dim, momentum=0.01)

    def forward(self, x: torch.Tensor, drop_connect_rate: float = 0.0) -> torch.Tensor:
        y = self.bn(self.conv(x))
        if self.training and drop_connect_rate:
            keep = (torch.rand(x.shape[0], 1, 1, 1) >= drop_connect_rate).to(y.dtype)
            y = y * keep / (1 - drop_connect_rate)
        return x + y


class TinyEfficientNet(nn.Module):
    """EfficientNet-PyTorch's layout and forward: work between modules (an activation after the stem's BatchNorm
    and after the head conv), ``_blocks`` a ModuleList called with index-scaled drop-connect, ``_fc`` the head."""

    def __init__(self, num_classes: int = 4, dim: int = 8, blocks: int = 4) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, dim, 3, stride=2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(dim, momentum=0.01)
        self._blocks = nn.ModuleList([_MBBlock(dim) for _ in range(blocks)])
        self._conv_head = nn.Conv2d(dim, 2 * dim, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(2 * dim, momentum=0.01)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(2 * dim, num_classes)
        self._swish = nn.ReLU6()
        self.drop_connect_rate = 0.2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._swish(self._bn0(self._conv_stem(x)))
        for idx, block in enumerate(self._blocks):
            x = block(x, drop_connect_rate=self.drop_connect_rate * idx / len(self._blocks))
        x = self._swish(self._bn1(self._conv_head(x)))
        return self._fc(self._dropout(self._avg_pooling(x).flatten(1)))


def tiny_efficientnet_stale_bn() -> nn.Module:
    """:func:`tiny_efficientnet` whose BatchNorm statistics describe other data (as a pretrained model's do) and move
    slowly (momentum 0.01): in train mode it normalises by the batch, in eval mode by statistics that lag."""
    model = tiny_efficientnet()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.fill_(3.0)
            m.running_var.fill_(0.05)
    return model


def tiny_efficientnet_64() -> nn.Module:
    """:func:`tiny_efficientnet` stating a 64 px input size."""
    model = tiny_efficientnet()
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (3, 64, 64)}
    return model


class TinySkipNet(nn.Module):
    """A forward that reuses the stem's output after the blocks: no cache can skip the stem."""

    def __init__(self, num_classes: int = 2, dim: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 3, padding=1)
        self.blocks = nn.Sequential(*[nn.Conv2d(dim, dim, 3, padding=1) for _ in range(3)])
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.stem(x))
        return self.fc((self.blocks(s) + s).mean((2, 3)))


def tiny_efficientnet() -> nn.Module:
    """A random-weight EfficientNet-style CNN that states its input convention the timm way (16 px, its own
    normalisation)."""
    torch.manual_seed(0)
    model = TinyEfficientNet()
    model.pretrained_cfg = {"input_size": (3, 16, 16), "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    for m in model.modules():  # statistics of some earlier training, as a pretrained model's (not mean 0, var 1)
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0.0, 0.1)
            m.running_var.uniform_(0.8, 1.2)
    return model


class TinyTimm(nn.Module):
    """timm layout: ``blocks`` Sequential, ``head`` Linear, get_classifier / reset_classifier."""

    def __init__(self, num_classes: int = 6, dim: int = 16) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Linear(8, dim)
        self.blocks = nn.Sequential(*[_Block(dim) for _ in range(3)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.reset_calls = 0

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.reset_calls += 1
        self.num_classes = num_classes
        self.head = nn.Linear(self.head.in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.stem(x))).mean(1))


def mlp() -> nn.Module:
    """A plain Sequential ending in a Linear."""
    return nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 3))


def tiny_bert(num_labels: int = 2) -> nn.Module:
    """A random-weight BertForSequenceClassification: 4 layers of width 32."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels)
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def tiny_roberta() -> nn.Module:
    """A random-weight RobertaForSequenceClassification (head = dense + out_proj)."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    config = RobertaConfig(vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=70, num_labels=3)
    return RobertaForSequenceClassification(config)


def tiny_hf_resnet() -> nn.Module:
    """A random-weight transformers ResNetForImageClassification (BatchNorm inside)."""
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], num_labels=4,
                          layer_type="basic")
    return ResNetForImageClassification(config)


def tiny_vit() -> nn.Module:
    """A random-weight transformers ViTForImageClassification."""
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                       intermediate_size=64, num_labels=5)
    return ViTForImageClassification(config)


def tiny_resnet() -> nn.Module:
    """Factory for the CLI: TinyResNet."""
    torch.manual_seed(0)
    return TinyResNet()


def not_a_module() -> int:
    """A factory that returns the wrong thing."""
    return 3
