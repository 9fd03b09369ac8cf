"""Shared fixtures: tiny models and a few real optimizer steps."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch
from torch import nn

from tests import models

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def resnet() -> models.TinyResNet:
    return models.TinyResNet()


@pytest.fixture
def bert() -> nn.Module:
    return models.tiny_bert()


def image_batch(n: int = 6, size: int = 8) -> torch.Tensor:
    return torch.randn(n, 3, size, size)


def train_steps(model: nn.Module, opt: torch.optim.Optimizer, batch: Callable[[], dict | torch.Tensor],
                steps: int = 3, num_classes: int | None = None) -> list[float]:
    """Run real optimizer steps in train mode on random data; return the losses."""
    model.train()
    losses = []
    for _ in range(steps):
        inputs = batch()
        out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
        logits = out.logits if hasattr(out, "logits") else out
        target = torch.randint(0, num_classes or logits.shape[-1], (logits.shape[0],))
        loss = nn.functional.cross_entropy(logits, target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def text_batch(n: int = 4, length: int = 10, vocab: int = 120) -> dict:
    ids = torch.randint(1, vocab, (n, length))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
