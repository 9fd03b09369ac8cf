"""Using a finished run: predict on unlabelled text and images (CLI and library), evaluate with findings, the
domain-shift line and overlap with the training data; nothing overwritten; no code imported from a run folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import frostline as fl
from frostline.cli import app
from frostline.runs.scoring import domain_shift
from tests.conftest import make_image_folder, make_text_file

runner = CliRunner()
MODELS_FILE = Path(__file__).resolve().parent / "models.py"


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, tiny_hf_dir):
    tmp = tmp_path_factory.mktemp("predict_text")
    data = make_text_file(tmp / "d.tsv", n=100)
    out = tmp / "run"
    result = _run("train", "--model", f"hf:{tiny_hf_dir}", "--data", data, "--text-column", "1", "--label-column",
                  "0", "--epochs", "2", "--batch-size", "8", "--lr", "1e-3", "--strategy", "partial:1",
                  "--pooling", "mean", "--optimize", "f1", "--out", out)
    assert result.exit_code == 0, result.output
    return out, data


def test_predict_unlabelled_text_file(tmp_path, text_run):
    run, _ = text_run
    texts = ["free cash prize now", "see you at lunch", "win txt claim urgent", "thanks love dinner"]
    (tmp_path / "new.txt").write_text("\n".join(texts) + "\n")
    out = tmp_path / "preds.csv"
    result = _run("predict", "--checkpoint", run, "--data", tmp_path / "new.txt", "--out", out)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert [r["input"] for r in rows] == texts
    assert set(rows[0]) == {"input", "predicted", "p_ham", "p_spam", "predicted_at_threshold"}
    # the library gives the same numbers in one call on raw texts, and the pooling came back with the run
    model = fl.load_run(run)
    assert isinstance(model.model, fl.PooledTextClassifier) and model.model.pooling.mode == "mean"
    lib = model.predict(texts)
    np.testing.assert_allclose(lib.probs[:, 1], [float(r["p_spam"]) for r in rows], rtol=1e-6)
    assert lib.predicted == [r["predicted"] for r in rows]
    th = json.loads((run / "metrics.json").read_text())["threshold"]["chosen"]["threshold"]
    assert lib.threshold["threshold"] == th
    assert lib.predicted_at_threshold == ["spam" if p >= th else "ham" for p in lib.probs[:, 1]]
    # the reloaded model reproduces the run's own test predictions (predictions.csv points back into the data file)
    _, data = text_run
    lines = Path(data).read_text().splitlines()
    saved = list(csv.DictReader((run / "predictions.csv").open()))
    again = model.predict([lines[int(r["index"])].split("\t", 1)[1] for r in saved])
    np.testing.assert_allclose(again.probs[:, 1], [float(r["p_spam"]) for r in saved], atol=1e-6)
    # never overwritten
    result = _run("predict", "--checkpoint", run, "--data", tmp_path / "new.txt", "--out", out)
    assert result.exit_code == 2 and "already exists" in result.output


def test_predict_table_column_and_stdout(tmp_path, text_run):
    run, _ = text_run
    table = tmp_path / "new.csv"
    table.write_text("id,message\n1,free prize now\n2,see you later\n")
    result = _run("predict", "--checkpoint", run, "--data", table)
    assert result.exit_code == 2 and "say which holds the text with --text-column" in result.output
    result = _run("predict", "--checkpoint", run, "--data", table, "--text-column", "message")
    assert result.exit_code == 0 and "2 predicted" in result.output and "free prize now" in result.output
    result = _run("predict", "--checkpoint", run, "--data", table, "--text-column", "message", "--out", "-")
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("input,predicted,p_ham,p_spam") and len(lines) == 3


def test_evaluate_gives_findings_roc_auc_domain_shift_and_overlap(tmp_path, text_run):
    run, data = text_run
    other = make_text_file(tmp_path / "other.tsv", n=60, seed=9)
    ev = tmp_path / "ev"
    result = _run("evaluate", "--checkpoint", run, "--data", other, "--out", ev)
    assert result.exit_code == 0, result.output
    m = json.loads((ev / "metrics.json").read_text())
    assert m["schema"] == "frostline.evaluate/1" and m["test"]["n"] == 60
    assert m["threshold"]["curves"]["roc_auc"] is not None and "chosen" in m["threshold"]
    codes = [d["code"] for d in m["diagnoses"]]
    assert "domain-shift" in codes and codes[-1].startswith("verdict-")
    assert m["run_test"]["n"] == 15 and m["overlap"]["checked"] and m["overlap"]["samples"] >= 0
    assert (ev / "report.html").is_file() and len(list(csv.DictReader((ev / "predictions.csv").open()))) == 60
    assert "ROC-AUC" in result.output and "domain-shift" in result.output
    # evaluating on the training file itself: the overlap with the run's own training data is found
    result = _run("evaluate", "--checkpoint", run, "--data", data, "--json")
    leak = json.loads(result.output)
    assert leak["overlap"]["samples"] > 0 and leak["diagnoses"][0]["code"] == "data-leakage"
    unseen = leak["overlap"]["unseen"]  # the verdict judges the samples the model never saw, as train does
    assert leak["diagnoses"][-1]["numbers"]["accuracy"] == unseen["accuracy"]
    assert f"on the {unseen['n']} samples not seen in training" in leak["diagnoses"][-1]["message"]
    # results are never written over
    result = _run("evaluate", "--checkpoint", run, "--data", other, "--out", ev)
    assert result.exit_code == 2 and "already holds another run's results" in result.output
    result = _run("evaluate", "--checkpoint", run, "--data", other, "--out", run)
    assert result.exit_code == 2 and "already holds another run's results" in result.output


def test_images_predict_and_factory_models_need_model_again(tmp_path, monkeypatch):
    folder = make_image_folder(tmp_path / "imgs", per_class=10)
    out = tmp_path / "run"
    result = _run("train", "--model", "tests.models:tiny_resnet", "--data", folder, "--image-size", "12",
                  "--strategy", "linear-probe", "--epochs", "1", "--batch-size", "4", "--out", out)
    assert result.exit_code == 0, result.output
    unlabelled = tmp_path / "new"
    unlabelled.mkdir()
    for i, f in enumerate(sorted(Path(folder).rglob("*.png"))[:5]):
        (unlabelled / f"x{i}.png").write_bytes(f.read_bytes())
    monkeypatch.chdir(tmp_path)  # another directory, where `tests.models` is not importable by name
    result = _run("predict", "--checkpoint", out, "--data", unlabelled)
    assert result.exit_code == 2
    assert "never imports code named by a run folder" in result.output and str(MODELS_FILE) in result.output
    result = _run("predict", "--checkpoint", out, "--data", unlabelled, "--model", f"{MODELS_FILE}:tiny_resnet",
                  "--out", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [r["input"] for r in rows] == [f"x{i}.png" for i in range(5)]
    # the library on PIL images and on a uint8 tensor gives the same probabilities
    from PIL import Image

    model = fl.load_run(out, model=f"{MODELS_FILE}:tiny_resnet")
    images = [Image.open(unlabelled / f"x{i}.png") for i in range(5)]
    by_pil = model.predict(images)
    np.testing.assert_allclose(by_pil.probs[:, 0], [float(r["p_blue"]) for r in rows], rtol=1e-5)
    x = torch.stack([torch.from_numpy(np.array(im.convert("RGB").resize((12, 12), Image.BILINEAR))).permute(2, 0, 1)
                     for im in images])
    np.testing.assert_allclose(model.predict(x).probs, by_pil.probs, rtol=1e-5)
    with pytest.raises(fl.FrostlineError, match="takes images, not text"):
        model.predict(["some text"])


def test_unfinished_or_missing_runs_are_clear_errors(tmp_path):
    result = _run("predict", "--checkpoint", tmp_path, "--data", tmp_path)
    assert result.exit_code == 2 and "is not a frostline run folder" in result.output
    (tmp_path / "state.json").write_text(json.dumps({"schema": "frostline.state/1", "complete": False, "config": {}}))
    with pytest.raises(fl.FrostlineError, match="holds an unfinished run"):
        fl.load_run(tmp_path)


def test_evaluate_from_another_directory_and_on_data_missing_a_class(tmp_path, tiny_hf_dir, monkeypatch):
    data = Path(make_text_file(tmp_path / "d.tsv", n=100))
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path)  # a relative --data, as users type it
    assert _run("train", "--model", f"hf:{tiny_hf_dir}", "--data", "d.tsv", "--text-column", "1", "--label-column",
                "0", "--epochs", "1", "--strategy", "linear-probe", "--out", "run").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = _run("evaluate", "--checkpoint", run, "--data", data, "--json")
    m = json.loads(result.output)
    assert m["overlap"]["checked"] and m["overlap"]["samples"] > 0  # found from any directory
    only_ham = tmp_path / "ham.tsv"
    only_ham.write_text("".join(line + "\n" for line in data.read_text().splitlines() if line.startswith("ham")))
    m = json.loads(_run("evaluate", "--checkpoint", run, "--data", only_ham, "--json").output)
    codes = [d["code"] for d in m["diagnoses"]]
    assert "classes-absent" in codes and m["test"]["macro_present"]["f1"] >= m["test"]["f1"]["macro"]
    absent = next(d for d in m["diagnoses"] if d["code"] == "classes-absent")
    assert "'spam' has no sample in this data" in absent["message"]


def test_evaluate_reads_the_data_before_loading_the_model(tmp_path, text_run, monkeypatch):
    from frostline.models import load as fl_models

    run, _ = text_run

    def boom(*_a, **_k):
        raise AssertionError("loaded the model before reading the data")

    monkeypatch.setattr(fl_models, "load_hf", boom)
    result = _run("evaluate", "--checkpoint", run, "--data", tmp_path / "nope.tsv")
    assert result.exit_code == 2 and "does not exist" in result.output
    bad = tmp_path / "bad.tsv"
    bad.write_text("label\ttext\nham\thi\n")
    result = _run("evaluate", "--checkpoint", run, "--data", bad, "--label-column", "lbl")
    assert result.exit_code == 2 and "no label column 'lbl'" in result.output
    result = _run("predict", "--checkpoint", run, "--data", bad, "--text-column", "txt")
    assert result.exit_code == 2 and "no text column 'txt'" in result.output


def test_stdout_csv_stays_clean_and_file_like_strings_are_refused(tmp_path, text_run, monkeypatch):
    from frostline.cli import status as status_module

    run, _ = text_run
    monkeypatch.setattr(status_module, "SLOW_SECONDS", 0.0)  # every step prints its status line
    (tmp_path / "new.txt").write_text("free prize now\nsee you\n")
    result = CliRunner().invoke(app, ["predict", "--checkpoint", str(run), "--data", str(tmp_path / "new.txt"),
                                      "--out", "-"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("input,predicted,") and len(lines) == 3  # status lines went to stderr
    assert "loading the run's model" in result.stderr
    model = fl.load_run(run)
    with pytest.raises(fl.FrostlineError, match=r"looks like a file name: pass Path\('new.txt'\)"):
        model.predict("new.txt")
    assert len(model.predict(tmp_path / "new.txt").names) == 2  # a Path reads the file


def test_column_numbers_out_of_range_and_too_long_texts_are_named(tmp_path, tiny_hf_dir):
    data = make_text_file(tmp_path / "d.tsv", n=40)
    base = ["train", "--model", f"hf:{tiny_hf_dir}", "--data", data, "--label-column", "0", "--out", tmp_path / "r"]
    result = _run(*base, "--text-column", "5")
    assert result.exit_code == 2 and "text column 5 does not exist: the rows have 2 column(s)" in result.output
    result = _run(*base, "--text-column", "1", "--max-length", "100")
    assert result.exit_code == 2 and "--max-length 100 is more than" in result.output and "(64 tokens)" in result.output


def test_domain_shift_keeps_the_uncertainty_of_a_perfect_score():
    """30 of 30 is not certainty: the interval keeps the uncertainty of 30 samples (Agresti-Caffo)."""
    perfect = {"accuracy": 1.0, "n": 30, "f1": {"macro": 1.0}}
    f = domain_shift(perfect, {"accuracy": 1.0, "n": 30, "f1_macro": 1.0})
    assert "+0.0 points (+/- 8.5 at 95%)" in f.message and "within noise" in f.message
    f = domain_shift({"accuracy": 0.0, "n": 30, "f1": {"macro": 0.0}}, {"accuracy": 1.0, "n": 30, "f1_macro": 1.0})
    assert f.code == "domain-shift" and f.severity == "warning"
