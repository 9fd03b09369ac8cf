"""Parameter-efficient strategies on PEFT: what they adapt, that the base stays bit-identical, that the frozen prefix
below the adapted blocks is cached, and that a run folder (adapters and head only) predicts, resumes, exports
merged and compares like any other run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import frostline as fl
from frostline.cli import app
from frostline.core.errors import FrostlineError
from frostline.runs.config import RunConfig
from frostline.training import TrainConfig, fit, parse_strategy
from frostline.training.adapters import adapter_param, base_name
from tests import models
from tests.conftest import interrupted_then_resumed, make_text_file
from tests.test_auto_strategies import _vectors
from tests.test_importance import Stack

runner = CliRunner()
LAYER = "bert.encoder.layer"


def _targets(spec: str, model=None) -> list[str]:
    model = model or models.tiny_bert()
    return list(parse_strategy(spec, model).adapters.targets)


def test_lora_defaults_to_query_and_value_of_every_block_and_blocks_restricts_them():
    assert _targets("lora") == [f"{LAYER}.{i}.attention.self.{n}" for i in range(4) for n in ("query", "value")]
    s = parse_strategy("lora:r=4:alpha=8:dropout=0:blocks=last:1:targets=key,output.dense", models.tiny_bert())
    assert (s.adapters.r, s.adapters.alpha, s.adapters.dropout) == (4, 8.0, 0.0)
    assert list(s.adapters.targets) == [f"{LAYER}.3.attention.self.key", f"{LAYER}.3.attention.output.dense",
                                        f"{LAYER}.3.output.dense"]
    assert _targets("lora:blocks=0") == [f"{LAYER}.0.attention.self.query", f"{LAYER}.0.attention.self.value"]


def test_ia3_scales_keys_values_and_the_feed_forward_layers():
    s = parse_strategy("ia3", models.tiny_bert())
    assert set(s.adapters.targets) == {f"{LAYER}.{i}.{n}" for i in range(4) for n in (
        "attention.self.key", "attention.self.value", "attention.output.dense", "output.dense")}  # PEFT's BERT table
    assert set(s.adapters.feedforward) == {f"{LAYER}.{i}.{n}" for i in range(4)
                                           for n in ("attention.output.dense", "output.dense")}


def test_in_a_cnn_lora_adapts_the_ungrouped_convolutions_of_the_blocks():
    assert _targets("lora", models.TinyResNet()) == ["layer1.0", "layer2.0", "layer3.0"]


@pytest.mark.parametrize(("spec", "message"), [
    ("lora:rank=4", r"unknown key 'rank'; lora takes r, alpha, dropout, blocks, targets"),
    ("lora:r=0", r"r must be an integer >= 1, got '0'"),
    ("lora:dropout=1", r"dropout must be a probability in \[0, 1\), got '1'"),
    ("lora:targets=qurey", r"targets 'qurey' matches no layer in the chosen blocks; .* named dense, key, query, "
                           r"value; closest names: query"),
    ("lora:targets=LayerNorm", r"targets 'LayerNorm' names LayerNorm layers .*which PEFT does not adapt"),
    ("lora:blocks=7", r"'lora:blocks=7': blocks=7 is out of range: the model has 4 blocks \(0-3\)"),
    ("lora:", r"nothing after the last ':'; write 'lora' alone or add options"),
    ("lora:auto:0", r"expected 'lora:auto\[:K\]' with K >= 1 blocks"),
    ("lora:auto:5", r"'lora:auto:5' needs K in 1\.\.4: the model has 4 blocks"),
    ("lora:r=4:r=8", r"'r' is given twice"),
    ("bitfit:2", r"bitfit takes no options"),
    ("lroa", r"unknown strategy 'lroa'.*closest names: lora"),
])
def test_bad_peft_strategies_are_one_clear_error(spec, message):
    with pytest.raises(FrostlineError, match=message):
        parse_strategy(spec, models.tiny_bert())


def _loaded_and_splits(tmp_path, tiny_hf_dir):
    from frostline.data import Encoded, split
    from frostline.data.tables import read_table

    loaded = fl.load_model(f"hf:{tiny_hf_dir}")
    s = split(read_table(make_text_file(tmp_path / "d.tsv", n=64), "1", "0"), 0.25, 0.25, seed=0)
    return loaded.model, Encoded(s.train, loaded.tokenizer), Encoded(s.val, loaded.tokenizer)


def test_lora_keeps_the_base_bit_identical_and_trains_only_adapters_and_head(tmp_path, tiny_hf_dir):
    model, train, val = _loaded_and_splits(tmp_path, tiny_hf_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy = parse_strategy("lora:blocks=last:1", model)
    result = fit(model, train, val, strategy, TrainConfig(epochs=2, batch_size=8, lr=5e-3, patience=None))
    after = dict(model.named_parameters())
    adapters = [n for n in after if adapter_param(n)]
    assert adapters == [f"{LAYER}.3.attention.self.{m}.lora_{ab}.default.weight" for m in ("query", "value")
                        for ab in "AB"]
    assert all(not torch.equal(after[n], torch.zeros_like(after[n])) for n in adapters if "lora_B" in n)
    for n, p in after.items():
        if not adapter_param(n) and not n.startswith("classifier."):
            assert torch.equal(p, before[base_name(n)]), n  # frozen means unchanged, bit for bit
    assert result.trainable_params == 2 * (8 * 32 + 32 * 8) + 32 * 2 + 2
    assert "cached" in result.history[0]["cache"] and f"{LAYER}.3" in result.history[0]["cache"]
    strategy.detach(model)
    assert set(dict(model.named_parameters())) == set(before)  # the plain model again


def test_lora_auto_adapts_the_blocks_importance_ranks_highest():
    torch.manual_seed(0)
    model = Stack((0.3, 0.0, 3.0, 0.3))
    train, val = _vectors()
    strategy = parse_strategy("lora:auto:1", model)
    fit(model, train, val, strategy, TrainConfig(epochs=1, batch_size=8, lr=1e-2, patience=None, probe="sgd"))
    assert list(strategy.adapters.targets) == ["layers.2.fc"]
    assert strategy.choice()["importance"]["parts"][3]["name"] == "block 2"


def test_bitfit_trains_biases_and_the_head_only(tmp_path, tiny_hf_dir):
    model, train, val = _loaded_and_splits(tmp_path, tiny_hf_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    fit(model, train, val, parse_strategy("bitfit", model), TrainConfig(epochs=1, batch_size=8, lr=1e-2))
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.endswith(".bias") or n.startswith("classifier.") for n in changed)
    assert any(n.startswith(LAYER) for n in changed)


def _cfg(tmp_path, tiny_hf_dir, strategy: str, name: str = "r", **kw) -> RunConfig:
    data = make_text_file(tmp_path / "d.tsv", n=80)
    return RunConfig(model=f"hf:{tiny_hf_dir}", data=data, text_column="1", label_column="0", strategy=strategy,
                     epochs=kw.pop("epochs", 3), batch_size=8, lr=kw.pop("lr", 5e-3), out=str(tmp_path / name), **kw)


def test_a_lora_run_folder_holds_adapters_and_head_and_predicts_exports_and_evaluates(tmp_path, tiny_hf_dir):
    result = fl.train(_cfg(tmp_path, tiny_hf_dir, "lora"), echo=lambda _s: None)
    saved = load_file(str(result.out / "model.safetensors"))
    assert saved and all(adapter_param(n) or n.startswith("classifier.") for n in saved)
    state = json.loads((result.out / "state.json").read_text())
    assert state["adapters"]["kind"] == "lora" and len(state["adapters"]["targets"]) == 8
    assert state["plan"]["trainable"] == 4 * 2 * (8 * 32 + 32 * 8) + 32 * 2 + 2
    m = result.metrics
    assert m["run"]["budget"]["lr"] == 5e-3 and m["run"]["auto"]["adapters"]["r"] == 8
    run = fl.load_run(result.out)
    texts = ["free cash prize call now", "see you at lunch tomorrow"]
    probs = run.predict(texts).probs
    rows = [r for r in (result.out / "predictions.csv").read_text().splitlines()[1:]]
    assert len(rows) == m["test"]["n"] and probs.shape == (2, 2)
    export = tmp_path / "export"
    assert fl.export_run(result.out, export) == "transformers"  # merged; its logits checked against the run's
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    merged = AutoModelForSequenceClassification.from_pretrained(export).eval()
    assert not any("lora" in n for n, _ in merged.named_parameters())
    tok = AutoTokenizer.from_pretrained(export)
    with torch.no_grad():
        p = torch.softmax(merged(**tok(texts, padding=True, return_tensors="pt")).logits, -1).numpy()
    assert abs(p - probs).max() < 1e-4
    ev = runner.invoke(app, ["evaluate", "--checkpoint", str(result.out), "--data", str(tmp_path / "d.tsv"),
                             "--text-column", "1", "--label-column", "0", "--out", str(tmp_path / "ev")])
    assert ev.exit_code == 0 and "accuracy" in ev.output, ev.output


def test_a_run_folder_whose_adapter_record_names_another_layer_is_refused(tmp_path, tiny_hf_dir):
    result = fl.train(_cfg(tmp_path, tiny_hf_dir, "lora:blocks=last:1", epochs=1), echo=lambda _s: None)
    state_file = result.out / "state.json"
    state = json.loads(state_file.read_text())
    state["adapters"]["targets"] = ["os.system"]
    from frostline.runs.folder import RunFolder

    RunFolder(result.out).write_state(state)
    with pytest.raises(FrostlineError, match=r"adapts 'os.system', which is not an adaptable layer of this model"):
        fl.load_run(result.out)


@pytest.mark.parametrize("strategy", ["lora:blocks=last:1", "ia3"])
def test_an_interrupted_peft_run_resumes_exactly(tmp_path, tiny_hf_dir, strategy):
    whole, resumed = interrupted_then_resumed(_cfg(tmp_path, tiny_hf_dir, strategy, epochs=3), "epoch-0002:renamed")
    assert resumed.resumed_from == 2
    for f in ("model.safetensors", "predictions.csv"):
        assert (resumed.out / f).read_bytes() == (whole.out / f).read_bytes(), f


def test_compare_runs_peft_strategies_beside_the_others_from_the_same_base(tmp_path, tiny_hf_dir):
    cfg = _cfg(tmp_path, tiny_hf_dir, "full", name="cmp", epochs=1, lr=None)
    result = fl.compare(cfg, ["lora:blocks=last:1", "partial:1", "bitfit", "linear-probe"], echo=lambda _s: None)
    by = {r.strategy: r.metrics for r in result.runs}
    assert by["lora:blocks=last:1"]["run"]["budget"]["lr"] == 5e-4  # the LoRA paper's rate, --lr unset
    assert by["bitfit"]["run"]["budget"]["lr"] == 1e-3 and by["partial:1"]["run"]["budget"]["lr"] == 1e-4
    assert by["lora:blocks=last:1"]["run"]["budget"]["epochs"] == 1  # --epochs given: it holds for all
    # the strategy after LoRA started from the plain base model: its saved tensors name no adapter
    assert not any(adapter_param(n) for n in load_file(str(result.runs[1].out / "model.safetensors")))
    assert by["lora:blocks=last:1"]["base"]["test"] == by["partial:1"]["base"]["test"]


def test_inspect_shows_what_a_strategy_adapts_and_trains(tiny_hf_dir):
    result = runner.invoke(app, ["inspect", f"hf:{tiny_hf_dir}", "--strategy", "lora:blocks=last:1"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "strategy lora:blocks=last:1: LoRA r=8 alpha=16 dropout 0.1 on 2 layers" in text
    assert f"{LAYER}.3.attention.self.query" in text and "trainable 1,090 of" in text
    result = runner.invoke(app, ["inspect", f"hf:{tiny_hf_dir}", "--strategy", "lora:auto:1"])
    assert result.exit_code == 2 and "chooses its blocks from importance scores on your data" in result.output


def test_lora_refuses_convolutions_it_cannot_rebuild_and_ia3_adapts_them():
    utils = pytest.importorskip("efficientnet_lite_pytorch.utils")
    from torch import nn

    class SamePadded(nn.Module):  # EfficientNet-Lite's convolutions: TF "SAME" padding, another constructor
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.Sequential(*[utils.Conv2dStaticSamePadding(4, 4, 3, image_size=8) for _ in range(2)])
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.blocks(x).mean((2, 3)))

    model = SamePadded()
    with pytest.raises(FrostlineError, match=r"convolutions are Conv2dStaticSamePadding, which PEFT's LoRA cannot "
                                             r"rebuild .*ia3, bitfit or partial:N train them"):
        parse_strategy("lora", model)
    s = parse_strategy("ia3", model)
    assert list(s.adapters.targets) == ["blocks.0", "blocks.1"]
    x = torch.rand(2, 4, 8, 8)
    before = model(x)
    s.attach(model, 0)
    torch.testing.assert_close(model(x), before)  # (IA)3 starts as the identity
    s.detach(model)


def test_lora_on_a_cnn_trains_its_convolutions(tmp_path):
    from tests.conftest import make_image_folder

    data = make_image_folder(tmp_path / "pics", per_class=8)
    result = fl.train(RunConfig(model="tests.models:tiny_efficientnet", data=data, strategy="lora", epochs=1,
                                batch_size=8, out=str(tmp_path / "r")), echo=lambda _s: None)
    saved = load_file(str(result.out / "model.safetensors"))
    assert any(".lora_A." in n for n in saved) and all(adapter_param(n) or "lora" not in n for n in saved)
    probs = fl.load_run(result.out, model="tests.models:tiny_efficientnet").predict(Path(data) / "red" / "0.png").probs
    assert probs.shape == (1, 2)
