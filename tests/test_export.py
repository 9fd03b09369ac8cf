"""--export: a finished run as a standalone model that plain transformers (or a plain state dict) loads, giving the
run's own predictions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import frostline as fl
from frostline.cli import app
from tests.conftest import make_text_file

runner = CliRunner()
TEXTS = ["free cash prize call now", "see you at lunch tomorrow", "win a prize"]


def _train(tmp_path: Path, tiny_hf_dir: str, name: str, *extra: str) -> Path:
    data = make_text_file(tmp_path / "d.tsv", n=80)
    out = tmp_path / name
    result = runner.invoke(app, ["train", "--model", f"hf:{tiny_hf_dir}", "--data", data, "--text-column", "1",
                                 "--label-column", "0", "--epochs", "2", "--batch-size", "8", "--lr", "1e-3",
                                 "--strategy", "partial:1", "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return out


def test_native_head_exports_for_auto_model_for_sequence_classification(tmp_path, tiny_hf_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = _train(tmp_path, tiny_hf_dir, "run")
    result = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(tmp_path / "exp")])
    assert result.exit_code == 0 and "transformers" in result.output, result.output
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "exp").eval()
    tok = AutoTokenizer.from_pretrained(tmp_path / "exp")
    assert model.config.id2label == {0: "ham", 1: "spam"}
    with torch.no_grad():
        probs = torch.softmax(model(**tok(TEXTS, padding=True, return_tensors="pt")).logits, -1).numpy()
    expected = fl.load_run(run).predict(TEXTS).probs
    assert abs(probs - expected).max() < 1e-5
    again = runner.invoke(app, ["export", "--checkpoint", str(run), "--out", str(tmp_path / "exp")])
    assert again.exit_code == 2 and "already holds" in again.output  # an export is not written over either


def test_pooled_encoder_exports_encoder_head_and_recipe(tmp_path, tiny_hf_dir):
    run = _train(tmp_path, tiny_hf_dir, "run", "--pooling", "mean")
    assert fl.export_run(run, tmp_path / "exp") == "transformers encoder + head"
    folder = tmp_path / "exp"
    meta = json.loads((folder / "head.json").read_text())
    assert meta["pooling"] == "mean" and meta["labels"] == ["ham", "spam"]
    # the recipe the export's README gives, run as written (on our texts): the run's own probabilities
    readme = (folder / "README.md").read_text()
    recipe = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert '["your text"]' in recipe
    namespace: dict = {}
    exec(recipe.replace('["your text"]', repr(TEXTS)), namespace)
    probs = namespace["probs"].numpy()
    assert abs(probs - fl.load_run(run).predict(TEXTS).probs).max() < 1e-5
    mask = os.umask(0)
    os.umask(mask)
    modes = {f.name: f.stat().st_mode & 0o777 for f in folder.rglob("*") if f.is_file()}
    assert set(modes.values()) == {0o666 & ~mask}, modes  # safetensors' own writer leaves 0600 (found by a tester)


def test_a_pooled_export_loads_without_warnings_and_refuses_the_wrong_loader(tmp_path, tiny_hf_dir):
    """Loading the export folder with AutoModelForSequenceClassification would put a random head on the encoder:
    it fails loudly; the documented loader prints no "newly initialized" warning (a user cannot tell it is harmless)."""
    import logging

    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    run = _train(tmp_path, tiny_hf_dir, "run", "--pooling", "mean")
    fl.export_run(run, tmp_path / "exp")
    with pytest.raises((OSError, ValueError), match=r"config\.json"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "exp")
    readme = (tmp_path / "exp" / "README.md").read_text()
    recipe = readme.split("```python\n", 1)[1].split("```", 1)[0].replace('["your text"]', repr(TEXTS))
    assert "add_pooling_layer=False" in recipe
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    hf_logging.get_logger("transformers").addHandler(handler)
    try:
        exec(recipe, {})
    finally:
        hf_logging.get_logger("transformers").removeHandler(handler)
    assert not [r for r in records if "newly initialized" in r or "MISSING" in r], records


def test_export_of_a_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(fl.FrostlineError, match="is not a frostline run folder"):
        fl.export_run(tmp_path, tmp_path / "exp")


def test_train_with_export_flag(tmp_path, tiny_hf_dir):
    run = _train(tmp_path, tiny_hf_dir, "run", "--export", str(tmp_path / "exp"))
    assert (tmp_path / "exp" / "config.json").is_file() and (tmp_path / "exp" / "model.safetensors").is_file()
    assert (run / "state.json").is_file()
