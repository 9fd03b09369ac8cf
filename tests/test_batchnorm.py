"""BatchNorm while fine-tuning (``--bn``): eval keeps the pretrained statistics (checksummed), train updates them,
reestimate recomputes them on the training split; the train-eval-gap finding names the cause and stays silent on a
model that evaluates as it trains."""

from __future__ import annotations

import pytest
import torch

from frostline.core.errors import FrostlineError
from frostline.data import from_tensors, split
from frostline.data.batching import Encoded
from frostline.evaluation.mode_gap import train_eval_gap
from frostline.training import TrainConfig, fit, parse_strategy
from frostline.training.batchnorm import check_bn, resolve_bn
from tests import models


def _data(n: int = 48, size: int = 8):
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 3, size, size, generator=g) * 2 + 1 + y.view(-1, 1, 1, 1)  # far from N(0, 1): stats move
    s = split(from_tensors(x, y, ["a", "b"]), 0.25, 0.25, seed=0)
    return Encoded(s.train), Encoded(s.val)


def _stats(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.clone() for n, b in model.named_buffers() if "running" in n}


def _fit(bn: str, strategy: str = "partial:2", cache: bool = True):
    torch.manual_seed(0)
    model = models.TinyEfficientNet(num_classes=2)
    before = _stats(model)
    train, val = _data()
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.01, head_lr=0.05, patience=None, cache=cache, bn=bn, probe="sgd")
    result = fit(model, train, val, parse_strategy(strategy, model), cfg)
    return model, before, result, train


def test_eval_keeps_every_running_statistic_and_checksums_them():
    model, before, result, _ = _fit("eval")
    assert result.bn == "eval"
    after = _stats(model)
    for name in before:
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0, msg=name)
    assert model._blocks[3].bn.weight.requires_grad  # its affine weight still trains ...
    assert not torch.equal(model._blocks[3].bn.weight, torch.ones(8))  # ... and moved (initialised to ones)


def test_train_moves_the_trainable_statistics_only():
    model, before, result, _ = _fit("train")
    assert result.bn == "train"
    after = _stats(model)
    assert not torch.equal(after["_blocks.3.bn.running_mean"], before["_blocks.3.bn.running_mean"])
    torch.testing.assert_close(after["_blocks.0.bn.running_mean"], before["_blocks.0.bn.running_mean"], rtol=0, atol=0)
    torch.testing.assert_close(after["_bn0.running_var"], before["_bn0.running_var"], rtol=0, atol=0)


@pytest.mark.parametrize("cache", [True, False])
def test_reestimate_recomputes_the_statistics_on_the_training_split(cache):
    model, _, result, train = _fit("reestimate", cache=cache)
    assert "BatchNorm statistics re-estimated on the training split" in result.history[-1]["cache"]
    # the same statistics by hand: the first trainable BatchNorm's input over the training split, eval mode otherwise
    # (later ones see the earlier ones normalise with batch statistics during the pass, as precise BN does)
    bn = model._blocks[2].bn
    seen: list[torch.Tensor] = []
    handle = bn.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    model.eval()
    with torch.no_grad():
        for batch in train.batches(128):  # the engine's evaluation batch size: one cumulative average per batch
            model(batch.inputs)
    handle.remove()
    means = torch.stack([x.mean((0, 2, 3)) for x in seen]).mean(0)
    torch.testing.assert_close(bn.running_mean, means, atol=1e-5, rtol=1e-4)
    assert bn.momentum == 0.01  # put back after the pass


def test_resolve_and_check():
    assert resolve_bn(models.tiny_efficientnet(), "auto") == "eval"  # statistics of earlier training: kept
    fresh = models.TinyEfficientNet()  # never trained: mean 0, variance 1 everywhere, which eval mode would keep
    assert resolve_bn(fresh, "auto") == "train" and resolve_bn(fresh, "eval") == "eval"
    fresh.train()
    fresh(torch.randn(4, 3, 16, 16))  # one training-mode pass updates the statistics
    assert resolve_bn(fresh, "auto") == "eval"
    assert resolve_bn(models.mlp(), "auto") == "none"
    with pytest.raises(FrostlineError, match=r"--bn must be one of auto, eval, train, reestimate, got 'frozen'"):
        check_bn("frozen")
    with pytest.raises(FrostlineError, match=r"closest names: train"):
        check_bn("trian")


def _history(train_acc: float, epoch: int = 3) -> list[dict]:
    return [{"epoch": e, "train": {"loss": 0.1, "accuracy": train_acc}, "val": {"loss": 1.5, "accuracy": 0.4, "n": 90},
             "probe": None} for e in range(1, epoch + 1)]


def test_train_eval_gap_names_batchnorm_and_its_fix():
    found = train_eval_gap(_history(0.93), 3, {"accuracy": 0.62, "loss": 1.2, "n": 420},
                           {"mode": "train", "layers": 49, "momentum": 0.01})
    assert [f.code for f in found] == ["train-eval-gap"] and found[0].severity == "error"
    assert "62.0% in eval mode but 93.0% while training" in found[0].message
    assert "49 BatchNorm layers" in found[0].message and "momentum 0.01" in found[0].message
    assert "--bn eval" in found[0].fix and "--bn reestimate" in found[0].fix and "longer will not" in found[0].fix


def test_train_eval_gap_is_silent_within_noise_and_when_eval_is_better():
    assert train_eval_gap(_history(0.95), 3, {"accuracy": 0.97, "loss": 0.1, "n": 420}, {"mode": "none"}) == []
    assert train_eval_gap(_history(0.80), 3, {"accuracy": 0.72, "loss": 0.5, "n": 420}, {"mode": "train"}) == []
    # 12 points apart on 20 samples: the standard error is 14 points
    assert train_eval_gap(_history(0.80), 3, {"accuracy": 0.68, "n": 20}, {"mode": "train"}) == []


def test_train_eval_gap_without_batchnorm_blames_dropout():
    found = train_eval_gap(_history(0.95), 3, {"accuracy": 0.60, "n": 300}, {"mode": "none", "layers": 0})
    assert "BatchNorm is not the cause (the model has none)" in found[0].message and "dropout" in found[0].message


def test_a_run_with_lagging_batchnorm_statistics_gets_the_finding_and_eval_mode_does_not(tmp_path):
    """End to end: BatchNorm statistics of other data, momentum 0.01 (a pretrained CNN on new pictures). In train mode
    the model fits its training pictures by their batch statistics and fails in eval mode: train-eval-gap, naming
    BatchNorm. With --bn eval it trains on the statistics it is evaluated with: no gap to find."""
    import json

    from typer.testing import CliRunner

    from frostline.cli import app
    from tests.test_images import FACTORY, _folder

    data = _folder(tmp_path / "pics", per_class=30)
    found = {}
    for bn in ("train", "eval"):
        result = CliRunner().invoke(app, ["train", "--model", FACTORY.replace("tiny_efficientnet",
                                                                               "tiny_efficientnet_stale_bn"),
                                          "--data", data, "--strategy", "full", "--epochs", "4", "--batch-size", "8",
                                          "--lr", "3e-3", "--bn", bn, "--out", str(tmp_path / bn)])
        assert result.exit_code == 0, result.output
        m = json.loads((tmp_path / bn / "metrics.json").read_text())
        found[bn] = {d["code"]: d for d in m["diagnoses"]}
        assert m["run"]["bn"]["mode"] == bn and m["run"]["bn"]["momentum"] == pytest.approx(0.01)
    gap = found["train"]["train-eval-gap"]
    assert gap["numbers"]["train_mode_accuracy"] - gap["numbers"]["eval_mode_accuracy"] > 0.3
    assert "the cause is BatchNorm" in gap["message"] and "--bn eval" in gap["fix"]
    assert "under-trained" not in found["train"] and "overfitting" not in found["train"]
    assert "train-eval-gap" not in found["eval"]


def test_a_model_never_trained_trains_its_batchnorm_under_auto():
    """Eval mode would normalise with mean 0 and variance 1 forever: a from-scratch CNN must use batch statistics."""
    torch.manual_seed(0)
    model = models.TinyEfficientNet(num_classes=2)
    train, val = _data()
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.01, patience=None, bn="auto", probe="sgd")
    result = fit(model, train, val, parse_strategy("full", model), cfg)
    assert result.bn == "train"
    assert model._bn0.running_mean.abs().sum() > 0  # the statistics moved
