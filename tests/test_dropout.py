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


def _bert(p_attention: float = 0.2):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, attention_probs_dropout_prob=p_attention, hidden_dropout_prob=0.0,
                        attn_implementation="sdpa")
    return BertModel(config)


def _inputs():
    ids = torch.randint(1, 50, (6, 9))
    attention = torch.ones_like(ids)
    attention[2, 5:] = 0  # padding: the mask must be applied as SDPA's
    return {"input_ids": ids, "attention_mask": attention}


def test_attention_dropout_draws_from_the_stream_and_the_model_gets_sdpa_back():
    from frostline.training import dropout

    model, inputs = _bert(), _inputs()
    drops = FastDropout(model, seed=5)
    assert drops.configs == [model.config]
    model.train()
    with drops.active(epoch=0):
        assert model.config._attn_implementation == dropout.ATTENTION
        drops.at(3)
        state = torch.get_rng_state()
        a = model(**inputs).last_hidden_state
        assert torch.equal(torch.get_rng_state(), state)  # no bernoulli_ from the global generator
        assert drops.calls == 2  # one mask per layer's attention probabilities
        drops.at(3)
        b = model(**inputs).last_hidden_state
        drops.at(4)
        c = model(**inputs).last_hidden_state
    assert torch.equal(a, b) and not torch.allclose(a, c)  # keyed by the step
    assert model.config._attn_implementation == "sdpa"
    model.eval()
    with torch.no_grad():
        plain = model(**inputs).last_hidden_state
        with drops.active(epoch=0):  # eval mode: transformers' own SDPA, the same numbers
            assert torch.equal(model(**inputs).last_hidden_state, plain)


def test_attention_with_the_fast_mask_is_sdpa_with_that_mask():
    """The attention function computes softmax(QK^T * scale + mask), drops with the drawn mask, times V."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from frostline.training import dropout

    module = nn.Module()
    module.train()
    q, k, v = (torch.randn(3, 4, 7, 8) for _ in range(3))
    allowed = torch.ones(3, 1, 7, 7, dtype=torch.bool)
    allowed[1, :, :, 5:] = False
    drops = FastDropout(nn.Linear(2, 2), seed=9)
    with drops.active(epoch=1):
        drops.at(2)
        out, _ = dropout._attention(module, q, k, v, allowed, dropout=0.3, scaling=0.25)
    keep, scale = mask(torch.Size([3, 4, 7, 7]), 0.3, [9, 0, 1, 2, 1])
    weights = torch.softmax((q @ k.transpose(2, 3) * 0.25).masked_fill(~allowed, torch.finfo(q.dtype).min), -1)
    expected = ((weights * keep * scale) @ v).transpose(1, 2)
    torch.testing.assert_close(out, expected)
    module.eval()  # no dropout: transformers' SDPA itself
    with drops.active(epoch=1):
        out, _ = dropout._attention(module, q, k, v, allowed, dropout=0.0, scaling=0.25)
    torch.testing.assert_close(out, sdpa_attention_forward(module, q, k, v, allowed, dropout=0.0, scaling=0.25)[0])


def test_torch_masks_leave_the_attention_alone():
    model = _bert()
    drops = FastDropout(model, seed=1, masks="torch")
    with drops.active(epoch=0):
        assert drops.configs == [] and model.config._attn_implementation == "sdpa"


def test_a_causal_model_keeps_its_causal_attention():
    """A decoder (GPT-2) is left to SDPA's causal path: later tokens never change earlier outputs."""
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    model = GPT2Model(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=50, bos_token_id=0, eos_token_id=0,
                                 attn_pdrop=0.2, resid_pdrop=0.0, embd_pdrop=0.0, attn_implementation="sdpa"))
    model.train()
    ids = torch.randint(1, 50, (2, 8))
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 7) % 50
    drops = FastDropout(model, seed=2)
    outputs = []
    with drops.active(epoch=0):
        for x in (ids, changed):
            torch.manual_seed(5)  # SDPA's own dropout draws from the global generator: the same masks twice
            drops.at(0)
            outputs.append(model(input_ids=x).last_hidden_state)
    a, b = outputs
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])
