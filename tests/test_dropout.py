"""Fast CPU dropout: the same Bernoulli as PyTorch's, keyed by (seed, rank, epoch, step), only while training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from frostline.training.dropout import LANES, FastDropout, mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.02])
def test_mask_keeps_each_element_with_probability_one_minus_p(p):
    keep, scale = mask(torch.Size([200, 500]), p, [0, 0, 0, 0, 1])
    n = keep.numel()
    rate = keep.float().mean().item()
    assert abs(rate - (1 - p)) < 4 * np.sqrt(p * (1 - p) / n)  # within 4 standard errors
    assert scale == pytest.approx(1 / (1 - p), rel=1e-4)
    assert scale * (LANES - min(round(p * LANES), LANES - 1)) == LANES  # the expectation is kept exactly
    # neighbouring lanes of one 64-bit draw are independent: no correlation between adjacent elements
    flat = keep.reshape(-1).float()
    assert abs(np.corrcoef(flat[:-1].numpy(), flat[1:].numpy())[0, 1]) < 0.01


def test_same_key_same_mask_and_other_keys_differ():
    a, _ = mask(torch.Size([64, 33]), 0.3, [7, 0, 1, 2, 1])
    b, _ = mask(torch.Size([64, 33]), 0.3, [7, 0, 1, 2, 1])
    assert torch.equal(a, b)
    for other in ([7, 1, 1, 2, 1], [7, 0, 2, 2, 1], [7, 0, 1, 3, 1], [7, 0, 1, 2, 2], [8, 0, 1, 2, 1]):
        assert not torch.equal(a, mask(torch.Size([64, 33]), 0.3, other)[0])


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 64), nn.Dropout(0.25), nn.ReLU(), nn.Linear(64, 3), nn.Dropout2d(0.5))


def test_active_only_while_training_and_restored_after():
    model = _model()
    x = torch.randn(32, 16)
    drops = FastDropout(model, seed=3)
    drop = model[1]
    with drops.active(epoch=0):
        drops.at(5)
        y1 = model[:2](x)
        drops.at(5)
        y2 = model[:2](x)
        assert torch.equal(y1, y2)  # keyed by the step, not by a global generator
        h = model[0](x)
        kept = y1 != 0
        assert torch.allclose(y1[kept], h[kept] / 0.75, rtol=1e-5)  # kept elements scaled by 1 / (1 - p)
        model.eval()
        assert torch.equal(model[:2](x), model[0](x))  # eval mode: identity, no draw
        model.train()
        state = torch.get_rng_state()
        model[:2](x)
        assert torch.equal(torch.get_rng_state(), state)  # the global generator is left alone
    assert "forward" not in drop.__dict__ and type(model[4]) is nn.Dropout2d  # PyTorch's again after


def test_gradient_flows_through_kept_elements_only():
    model = _model()
    x = torch.randn(8, 16)
    with FastDropout(model, seed=1).active(epoch=2):
        h = model[0](x).detach().requires_grad_()
        y = model[1](h)
        y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(h.grad[kept], torch.full_like(h.grad[kept], 1 / 0.75), rtol=1e-3)
    assert torch.equal(h.grad[~kept], torch.zeros_like(h.grad[~kept]))


def test_disabled_keeps_pytorch_dropout():
    model = _model()
    torch.manual_seed(4)
    with FastDropout(model, seed=1, masks="torch").active(epoch=0):
        a = model[:2](torch.ones(4, 16))
    torch.manual_seed(4)
    b = model[:2](torch.ones(4, 16))
    assert torch.equal(a, b)
