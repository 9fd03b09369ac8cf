"""The frozen-prefix cache changes speed, never results: same logits and same trained weights as the plain loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from frostline.data import from_tensors, split
from frostline.data.batching import Encoded
from frostline.freezing.plan import set_trainable
from frostline.runs import prepare
from frostline.runs.config import RunConfig
from frostline.training import TrainConfig, fit, model_parts, parse_strategy, predict
from frostline.training.cache import ActivationStore, plan_cache
from tests import models
from tests.conftest import make_text_file


def _images(n: int = 64, size: int = 8):
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 3, size, size, generator=g) + y.view(-1, 1, 1, 1)
    s = split(from_tensors(x, y, ["a", "b"]), 0.25, 0.25, seed=0)
    return Encoded(s.train), Encoded(s.val)


def _fit(factory, data, strategy, cache, **kw):
    torch.manual_seed(0)
    model = factory()
    train_enc, val_enc = data()
    kw.setdefault("probe", "sgd")  # the SGD path on cached vs plain inputs; the convex probe is tested below
    cfg = TrainConfig(epochs=3, batch_size=8, lr=0.01, head_lr=0.05, warmup=0.2, patience=None, cache=cache, **kw)
    result = fit(model, train_enc, val_enc, parse_strategy(strategy, model), cfg)
    return model, result, predict(model, val_enc)


@pytest.fixture(scope="module")
def text_data(tmp_path_factory, tiny_hf_dir):
    tmp = tmp_path_factory.mktemp("cache_text")
    cfg = RunConfig(model=f"hf:{tiny_hf_dir}", data=make_text_file(tmp / "d.tsv", n=80), text_column="1",
                    label_column="0")
    prepared = prepare(cfg)
    return prepared


CASES = [
    ("resnet-numbered-stages", lambda: models.TinyResNet(num_classes=2), "partial:1", "input of layer3 cached"),
    ("resnet-head", lambda: models.TinyResNet(num_classes=2), "linear-probe", "input of fc cached"),
    ("hf-resnet-stages", lambda: _hf_resnet(), "partial:2", "input of resnet.encoder.stages.2 cached"),
    ("features-sequential", lambda: _vgg_no_dropout(), "partial:1", "input of features.4 cached"),
]


def _hf_resnet():
    model = models.tiny_hf_resnet()
    from frostline.models.heads import replace_head

    replace_head(model, 2)
    return model


def _vgg_no_dropout():
    model = models.TinyVGG(num_classes=2)
    model.classifier[2].p = 0.0
    return model


@pytest.mark.parametrize(("name", "factory", "strategy", "status"), CASES, ids=[c[0] for c in CASES])
def test_cached_equals_plain_on_images(name, factory, strategy, status):
    data = _images if name != "hf-resnet-stages" else (lambda: _images(size=16))
    plain_model, plain, plain_pred = _fit(factory, data, strategy, cache=False)
    cached_model, cached, cached_pred = _fit(factory, data, strategy, cache=True)
    assert status in cached.history[0]["cache"] and cached.history[0]["cache"].startswith("cache built")
    assert cached.history[1]["cache"].startswith("cache reused")
    assert plain.history[0]["cache"].startswith("plain loop")
    np.testing.assert_allclose(cached_pred.probs, plain_pred.probs, atol=1e-5)
    for (n, a), (_, b) in zip(plain_model.named_parameters(), cached_model.named_parameters(), strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=n)
    assert [h["train"]["loss"] for h in cached.history] == pytest.approx([h["train"]["loss"] for h in plain.history],
                                                                          abs=1e-5)


@pytest.mark.parametrize(("strategy", "status"), [("linear-probe", "input of classifier cached"),
                                                  ("partial:2", "input of bert.encoder.layer.2 cached")])
def test_cached_equals_plain_on_text_with_dropout(text_data, strategy, status):
    """Hugging Face text model: hidden states per token with the real attention mask; dropout stays active."""
    results = []
    for cache in (False, True):
        text_data.reset()
        model = text_data.loaded.model
        torch.manual_seed(0)
        cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, head_lr=1e-2, patience=None, cache=cache, probe="sgd")
        result = fit(model, text_data.train, text_data.val, parse_strategy(strategy, model), cfg)
        pred = predict(model, text_data.val)
        results.append((result, pred, {n: p.detach().clone() for n, p in model.named_parameters()}))
    (plain, plain_pred, plain_w), (cached, cached_pred, cached_w) = results
    assert plain.history[0]["cache"].startswith("plain loop")
    assert status in cached.history[0]["cache"]
    np.testing.assert_allclose(cached_pred.probs, plain_pred.probs, atol=1e-5)
    for n in plain_w:
        torch.testing.assert_close(cached_w[n], plain_w[n], atol=1e-5, rtol=1e-5, msg=n)


def test_memory_mapped_cache_gives_same_result():
    _, in_memory, pred_a = _fit(lambda: models.TinyResNet(num_classes=2), _images, "partial:1", cache=True)
    _, on_disk, pred_b = _fit(lambda: models.TinyResNet(num_classes=2), _images, "partial:1", cache=True,
                              cache_budget=0.0)
    assert "in memory" in in_memory.history[0]["cache"] and "memory-mapped on disk" in on_disk.history[0]["cache"]
    np.testing.assert_array_equal(pred_a.probs, pred_b.probs)


def test_gradual_rebuilds_when_the_boundary_moves_and_lp_ft_drops_it():
    _, result, _ = _fit(lambda: models.TinyResNet(num_classes=2), _images, "gradual", cache=True)
    statuses = [h["cache"] for h in result.history]
    assert "input of fc cached" in statuses[0] and "input of layer3 cached" in statuses[1]
    assert "input of layer2 cached" in statuses[2] and all(s.startswith("cache built") for s in statuses)
    _, lpft, _ = _fit(lambda: models.TinyResNet(num_classes=2), _images, "lp-ft:2", cache=True)
    statuses = [h["cache"] for h in lpft.history]
    assert statuses[0].startswith("cache built") and statuses[1].startswith("cache reused: input of fc")
    assert statuses[2] == "plain loop: no frozen prefix (the first part of the model trains)"


def test_lp_ft_with_the_convex_probe_skips_the_converged_probe_epochs():
    _, lpft, _ = _fit(lambda: models.TinyResNet(num_classes=2), _images, "lp-ft:2", cache=True, probe="auto")
    assert [h["epoch"] for h in lpft.history] == [1, 3]  # epoch 2 would re-fit the same convex problem
    assert lpft.history[0]["probe"]["converged"] and "L-BFGS" in lpft.history[0]["cache"]
    assert lpft.history[1]["probe"] is None and lpft.history[1]["plan"] == "full fine-tuning"
    assert not lpft.converged  # the run as a whole went on to fine-tune


REPLAYED = [
    ("efficientnet-partial", lambda: models.TinyEfficientNet(num_classes=2), "partial:2", "input of _blocks.2"),
    ("efficientnet-post", lambda: models.TinyEfficientNet(num_classes=2), "surgical:post", "input of _conv_head"),
    ("vit-reshape-after-stem", lambda: models.TinyViTLike(num_classes=2), "partial:2", "input of encoder.layers.2"),
]


@pytest.mark.parametrize(("name", "factory", "strategy", "status"), REPLAYED, ids=[c[0] for c in REPLAYED])
def test_replayed_prefix_equals_plain(name, factory, strategy, status):
    """Forwards that work between modules (an activation after the stem, blocks called with their index): cutting
    the stack would change the result, so the prefix is replayed on the meta device, and training is unchanged."""
    plain_model, _, plain_pred = _fit(factory, _images, strategy, cache=False)
    cached_model, cached, cached_pred = _fit(factory, _images, strategy, cache=True)
    first = cached.history[0]["cache"]
    assert first.startswith("cache built") and status in first and "replayed on the meta device" in first
    np.testing.assert_allclose(cached_pred.probs, plain_pred.probs, atol=1e-5)
    for (n, a), (_, b) in zip(plain_model.named_parameters(), cached_model.named_parameters(), strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=n)
    for (n, a), (_, b) in zip(plain_model.named_buffers(), cached_model.named_buffers(), strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5, msg=n)


def test_replay_leaves_the_model_as_it_was():
    model = models.TinyEfficientNet(num_classes=2)
    _fit(lambda: model, _images, "partial:2", cache=True)
    assert all("forward" not in vars(m) for m in model.modules())  # no patched forward left behind
    hooks = [h.__name__ for m in model.modules() for h in m._forward_pre_hooks.values()]
    assert set(hooks) <= {"_pin_eval_hook"}  # frozen parts stay pinned; the replay's own hook is gone


def test_fallback_reasons():
    _, result, _ = _fit(lambda: models.TinyVGG(num_classes=2), _images, "linear-probe", cache=True)
    assert result.history[0]["cache"] == ("plain loop: Dropout 'classifier.2' in the frozen part is stochastic "
                                          "(train mode): results would change")
    _, result, _ = _fit(lambda: models.TinySkipNet(num_classes=2), _images, "partial:1", cache=True)
    status = result.history[0]["cache"]  # the stem's output is used again after the blocks
    assert status.startswith("plain loop: the cached path does not reproduce the model's output")
    assert "replayed: " in status
    _, result, _ = _fit(lambda: models.TinyResNet(num_classes=2), _images, "full", cache=True)
    assert result.history[0]["cache"] == "plain loop: no frozen prefix (the first part of the model trains)"


def test_plan_cache_not_a_prefix():
    model = models.TinyResNet(num_classes=2)
    parts = model_parts(model)
    trainable = {n for p in parts if p.name in ("stem", "head") for n in p.params}
    set_trainable(model, trainable)
    from frostline.models.blocks import discover_blocks

    assert plan_cache(model, parts, trainable, discover_blocks(model), "fc").startswith("no frozen prefix")


def test_activation_store_variable_length_and_memmap():
    for budget, rows in ((10**9, None), (0, None), (10**9, 7), (0, 7)):  # rows unknown: the store grows
        store = ActivationStore(3, budget, rows)
        acts = torch.arange(3 * 4 * 2, dtype=torch.float32).view(3, 4, 2)
        store.put(np.array([2, 0, 1]), acts, np.array([4, 1, 2]))
        store.finish()
        assert store.on_disk == (budget == 0)
        batch = store.gather(np.array([0, 1]))
        assert batch.shape == (2, 2, 2)
        torch.testing.assert_close(batch[0, 0], acts[1, 0])  # position 0 was the second row
        assert torch.all(batch[0, 1] == 0)  # padded
        torch.testing.assert_close(batch[1], acts[2, :2])
        store.close()


def test_activation_store_keeps_bf16_in_half_the_memory():
    acts = torch.randn(3, 4, 8).to(torch.bfloat16)
    store = ActivationStore(3, 10**9, rows=3 * 4)
    store.put(np.array([0, 1, 2]), acts, np.array([4, 4, 4]))
    store.finish()
    assert store.nbytes == 3 * 4 * 8 * 2 and store.data.dtype == np.uint16  # 2 bytes per value
    out = store.gather(np.array([1, 2]))
    assert out.dtype == torch.bfloat16 and torch.equal(out, acts[1:])
