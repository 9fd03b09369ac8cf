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


@pytest.fixture(autouse=True)
def _fp32_unless_asked(request, monkeypatch) -> None:
    """Runs in the suite keep float32 (their values are pinned in float32, and CI's CPU may lack bfloat16): the
    auto choice of bf16 on a capable CPU is tested where a test asks for it (``@pytest.mark.bf16``)."""
    if request.node.get_closest_marker("bf16") is None:
        monkeypatch.setattr("frostline.training.fabric.cpu_bf16", lambda: None)


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


SPAM_WORDS = ["free", "win", "prize", "cash", "claim", "now", "call", "text", "urgent", "offer", "winner", "txt"]
HAM_WORDS = ["see", "you", "at", "lunch", "home", "later", "ok", "thanks", "love", "meet", "tomorrow", "dinner",
             "class", "mum"]
WORDS = SPAM_WORDS + HAM_WORDS


def make_tiny_hf_dir(path) -> str:
    """Save a random-weight tiny BERT and a WordPiece tokenizer over a small vocabulary (offline)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz0123456789"]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def make_text_file(path, n: int = 120, seed: int = 0, sep: str = "\t", header: tuple[str, str] | None = None,
                   spam_share: float = 0.3) -> str:
    """A learnable two-class text file: 'spam' rows use the first words, 'ham' rows the last ones."""
    import random

    rng = random.Random(seed)
    spam_words, ham_words = SPAM_WORDS, HAM_WORDS
    lines = [sep.join(header)] if header else []
    for _ in range(n):
        spam = rng.random() < spam_share
        words = rng.choices(spam_words if spam else ham_words, k=rng.randint(3, 9))
        lines.append(sep.join(["spam" if spam else "ham", " ".join(words)]))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def make_image_folder(root, per_class: int = 12, size: int = 12) -> str:
    """Two classes of small PNGs: reddish and bluish noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, channel in (("blue", 2), ("red", 0)):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
            img[..., channel] = rng.integers(160, 255, (size, size), dtype=np.uint8)
            Image.fromarray(img).save(root / cls / f"{i}.png")
    return str(root)


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory) -> str:
    return make_tiny_hf_dir(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture
def text_file(tmp_path) -> str:
    return make_text_file(tmp_path / "data.tsv")


def interrupted_then_resumed(cfg, stop_at: str):
    """``cfg`` run whole (into ``<out>-whole``), and run again interrupted at write point ``stop_at`` then resumed:
    both results."""
    from frostline.core import atomic
    from frostline.runs.config import RunConfig
    from frostline.runs.training import train

    whole = train(RunConfig(**{**cfg.to_dict(), "out": cfg.out + "-whole"}), echo=lambda _s: None)

    def stop(name: str) -> None:
        if name == stop_at:
            raise KeyboardInterrupt

    atomic.fault_hook = stop
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, echo=lambda _s: None)
    finally:
        atomic.fault_hook = None
    return whole, train(cfg, echo=lambda _s: None)
