"""Training-image augmentation: exact transforms, deterministic per (seed, epoch, batch), never at evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import frostline as fl
from frostline.data import from_tensors, split
from frostline.data.augment import Augment, parse_augment
from frostline.data.batching import Encoded
from frostline.training import TrainConfig, fit
from frostline.training.strategies import parse_strategy
from tests import models


def test_parse_and_errors():
    assert parse_augment("hflip,crop:4") == Augment(hflip=True, crop=4)
    assert parse_augment("vflip") == Augment(vflip=True)
    assert parse_augment(None) is None and parse_augment("none") is None
    assert parse_augment("hflip,crop:4").describe() == "hflip,crop:4"
    with pytest.raises(fl.FrostlineError, match=r"unknown augmentation 'hflp'.*closest names: hflip"):
        parse_augment("hflp")
    with pytest.raises(fl.FrostlineError, match=r"crop needs a padding in pixels >= 1, e.g. crop:4"):
        parse_augment("crop:x")


def test_flip_and_crop_values():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = Augment(hflip=True)(x, g)
    for i in range(2):  # each sample is either untouched or mirrored left-right
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    flips = [torch.equal(o, s.flip(-1)) for o, s in zip(Augment(hflip=True)(x.repeat(32, 1, 1, 1),
                                                                            torch.Generator().manual_seed(1)),
                                                        x.repeat(32, 1, 1, 1), strict=True)]
    assert 0 < sum(flips) < len(flips)  # both outcomes occur
    cropped = Augment(crop=1)(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    for i in range(2):  # every output is a 4x4 window of the reflect-padded image
        windows = [padded[i, :, dy : dy + 4, dx : dx + 4] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(cropped[i], w) for w in windows)
    with pytest.raises(fl.FrostlineError, match=r"crop:4 needs images larger than 4 px; got 4x4"):
        Augment(crop=4)(x, g)


def _splits():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (64,), generator=g)
    x = torch.randn(64, 3, 8, 8, generator=g) + y.view(-1, 1, 1, 1)
    return split(from_tensors(x, y, ["a", "b"]), 0.25, 0.25, seed=0)


def test_training_batches_augmented_deterministically_evaluation_clean():
    s = _splits()
    plain, aug = Encoded(s.train), Encoded(s.train, augment=Augment(hflip=True, crop=2))
    a = [b.inputs for b in aug.batches(8, shuffle=True, seed=3, epoch=1)]
    b = [b.inputs for b in aug.batches(8, shuffle=True, seed=3, epoch=1)]
    c = [b.inputs for b in aug.batches(8, shuffle=True, seed=3, epoch=2)]
    p = [b.inputs for b in plain.batches(8, shuffle=True, seed=3, epoch=1)]
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))  # repeatable (resume replays it)
    assert not all(torch.equal(u, v) for u, v in zip(a, p, strict=True))  # augmented
    assert not all(torch.equal(u.sort().values, v.sort().values) for u, v in zip(a, c, strict=True))
    for u, v in zip(aug.batches(8), plain.batches(8), strict=True):  # evaluation passes are untouched
        assert torch.equal(u.inputs, v.inputs)


def test_augment_needs_images():
    ds = fl.Dataset("text", np.array(["a b", "c d"], dtype=object), np.array([0, 1]), ["x", "y"], np.arange(2), "t")
    with pytest.raises(fl.FrostlineError, match=r"augmentation \(hflip\) needs images \(N, C, H, W\); got text data"):
        Encoded(ds, augment=Augment(hflip=True))


def test_augmented_run_falls_back_from_the_cache_with_reason():
    s = _splits()
    torch.manual_seed(0)
    model = models.TinyResNet(num_classes=2)
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.01, head_lr=0.05, patience=None)
    result = fit(model, Encoded(s.train, augment=Augment(hflip=True)), Encoded(s.val),
                 parse_strategy("linear-probe", model), cfg)
    assert [h["cache"] for h in result.history] == [
        "plain loop: training images are augmented (hflip): the frozen part sees new inputs every epoch; so the head "
        "trains by gradient steps for --epochs, NOT the converged linear probe fit (leave out --augment for the exact "
        "probe)"] * 2
