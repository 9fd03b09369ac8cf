"""train / compare / evaluate from the command line: run folder contents, predictions.csv agrees with
metrics.json, YAML config, and one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
)
from typer.testing import CliRunner

from frostline.cli import app
from tests.conftest import make_image_folder, make_text_file

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def text_args(tmp_path, tiny_hf_dir):
    data = make_text_file(tmp_path / "d.tsv", n=100)
    return ["--model", f"hf:{tiny_hf_dir}", "--data", data, "--text-column", "1", "--label-column", "0",
            "--epochs", "2", "--batch-size", "8", "--lr", "1e-3"]


def test_train_writes_complete_run_folder(tmp_path, text_args):
    out = tmp_path / "run"
    result = _run("train", *text_args, "--strategy", "partial:2", "--out", out)
    assert result.exit_code == 0, result.output
    assert "partial:2: epochs" in result.output and "confusion matrix" in result.output
    files = {p.name for p in out.iterdir()}
    assert files == {"config.yaml", "metrics.json", "predictions.csv", "validation.csv", "model.safetensors",
                     "state.json", "train.log", "report.html"}
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["strategy"] == "partial:2" and cfg["epochs"] == 2
    m = json.loads((out / "metrics.json").read_text())
    assert m["schema"] == "frostline.metrics/1" and m["run"]["strategy"] == "partial:2"
    assert len(m["history"]) == 2 and all(h["seconds"] > 0 for h in m["history"])
    assert m["params"]["trainable"] < m["params"]["total"]
    assert [p["trainable"] for p in m["parts"]] == [False, False, False, True, True, True, True]
    assert m["data"]["sizes"] == {"train": 70, "val": 15, "test": 15}
    assert "val" in m["history"][0] and "train" in m["history"][0]
    state = json.loads((out / "state.json").read_text())
    assert state["complete"] and state["label_names"] == ["ham", "spam"] and state["plan"]["frozen"] > 0
    assert (out / "train.log").read_text().count("epoch ") == 2


def test_metrics_json_equals_sklearn_on_predictions_csv(tmp_path, text_args):
    out = tmp_path / "run"
    result = _run("train", *text_args, "--strategy", "full", "--optimize", "f1", "--out", out)
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == m["test"]["n"] == 15
    assert list(rows[0]) == ["index", "true", "predicted", "p_ham", "p_spam", "predicted_at_threshold"]
    labels = m["labels"]
    y = np.array([labels.index(r["true"]) for r in rows])
    yhat = np.array([labels.index(r["predicted"]) for r in rows])
    probs = np.array([[float(r["p_ham"]), float(r["p_spam"])] for r in rows])
    assert np.allclose(probs.sum(1), 1, atol=1e-6) and np.array_equal(probs.argmax(1), yhat)
    p, r, f, _ = precision_recall_fscore_support(y, yhat, labels=[0, 1], zero_division=0)
    assert [m["test"]["precision"]["per_class"][n] for n in labels] == pytest.approx(p)
    assert [m["test"]["recall"]["per_class"][n] for n in labels] == pytest.approx(r)
    assert [m["test"]["f1"]["per_class"][n] for n in labels] == pytest.approx(f)
    assert m["test"]["confusion_matrix"] == confusion_matrix(y, yhat, labels=[0, 1]).tolist()
    assert m["test"]["accuracy"] == pytest.approx((y == yhat).mean())
    t = m["test"]
    assert t["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, yhat))
    assert t["mcc"] == pytest.approx(matthews_corrcoef(y, yhat))
    assert t["majority_baseline"] == pytest.approx(np.bincount(y).max() / len(y))
    # Curves and the chosen operating threshold, from the probability columns.
    th = m["threshold"]
    pos = labels.index(th["positive"])
    assert th["positive"] == "spam"  # the rarer class by default
    assert th["curves"]["roc_auc"] == pytest.approx(roc_auc_score(y == pos, probs[:, pos]))
    assert th["curves"]["average_precision"] == pytest.approx(average_precision_score(y == pos, probs[:, pos]))
    at = np.array([labels.index(r["predicted_at_threshold"]) for r in rows])
    assert np.array_equal(at, np.where(probs[:, pos] >= th["chosen"]["threshold"], pos, 1 - pos))
    chosen = th["chosen"]["test"]
    p2, r2, f2, _ = precision_recall_fscore_support(y, at, labels=[0, 1], zero_division=0)
    assert [chosen["f1"]["per_class"][n] for n in labels] == pytest.approx(f2)
    assert [chosen["recall"]["per_class"][n] for n in labels] == pytest.approx(r2)
    assert [chosen["precision"]["per_class"][n] for n in labels] == pytest.approx(p2)
    assert chosen["confusion_matrix"] == confusion_matrix(y, at, labels=[0, 1]).tolist()
    assert m["diagnoses"][-1]["code"].startswith("verdict-")
    source_ids = {int(r["index"]) for r in rows}
    assert len(source_ids) == 15 and max(source_ids) < 100  # rows point back into the data file


def test_compare_prints_table_with_base_row(tmp_path, text_args):
    out = tmp_path / "cmp"
    result = _run("compare", *text_args, "--strategies", "linear-probe,gradual", "--out", out)
    assert result.exit_code == 0, result.output
    assert "base model" in result.output and "linear-probe" in result.output
    assert "gradual" in result.output
    summary = json.loads((out / "compare.json").read_text())
    assert [r["strategy"] for r in summary["runs"]] == ["linear-probe", "gradual"]
    assert (out / "linear-probe" / "metrics.json").is_file() and (out / "gradual" / "model.safetensors").is_file()
    lp = summary["runs"][0]["metrics"]
    assert lp["params"]["trainable"] == 32 * 2 + 2  # head only
    # Same split and starting weights for every strategy and the base row.
    assert lp["data"] == summary["runs"][1]["metrics"]["data"]
    assert summary["base"]["test"]["n"] == lp["test"]["n"]


def test_evaluate_checkpoint(tmp_path, text_args):
    out = tmp_path / "run"
    assert _run("train", *text_args, "--strategy", "linear-probe", "--out", out).exit_code == 0
    other = make_text_file(tmp_path / "other.tsv", n=40, seed=9)
    result = _run("evaluate", "--checkpoint", out, "--data", other, "--json", "--out", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)["test"]
    assert metrics["n"] == 40 and sum(metrics["support"].values()) == 40
    assert len(list(csv.DictReader((tmp_path / "ev" / "predictions.csv").open()))) == 40


def test_yaml_config_and_flags_win(tmp_path, text_args):
    conf = tmp_path / "run.yaml"
    conf.write_text(yaml.safe_dump({"strategy": "linear-probe", "epochs": 1, "batch-size": 4, "seed": 3}))
    out = tmp_path / "run"
    result = _run("train", "--config", conf, *text_args, "--out", out)  # text_args sets --epochs 2
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["strategy"], cfg["epochs"], cfg["batch_size"], cfg["seed"]) == ("linear-probe", 2, 8, 3)


def test_image_folder_with_factory_model(tmp_path):
    folder = make_image_folder(tmp_path / "imgs", per_class=10)
    out = tmp_path / "run"
    result = _run("train", "--model", "tests.models:tiny_resnet", "--data", folder, "--image-size", "12",
                  "--strategy", "partial:1", "--epochs", "1", "--batch-size", "4", "--out", out)
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["labels"] == ["blue", "red"] and m["head"]["num_classes"] == 2


def test_augment_option_turns_the_cache_off_and_text_rejects_it(tmp_path, text_args):
    folder = make_image_folder(tmp_path / "imgs", per_class=10)
    out = tmp_path / "run"
    result = _run("train", "--model", "tests.models:tiny_resnet", "--data", folder, "--image-size", "12",
                  "--strategy", "linear-probe", "--epochs", "1", "--batch-size", "4", "--augment", "hflip,crop:2",
                  "--out", out)
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["history"][0]["cache"].startswith("plain loop: training images are augmented (hflip,crop:2)")
    result = _run("train", *text_args, "--augment", "hflip", "--out", tmp_path / "t")
    assert result.exit_code == 2 and "needs images (N, C, H, W); got text data" in result.output
    result = _run("train", "--model", "tests.models:tiny_resnet", "--data", folder, "--augment", "flip",
                  "--out", tmp_path / "u")
    assert result.exit_code == 2 and "unknown augmentation 'flip'" in result.output


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--strategy", "partal:2"], "unknown strategy 'partal:2'"),
        (["--epochs", "0"], "epochs must be >= 1, got 0"),
        (["--schedule", "cosin"], "unknown schedule 'cosin'"),
        (["--text-column", "txt"], "no text column 'txt'; the header has ['ham', "),
        (["--text-column", "txt", "--no-header"], "is a name but the file has no header"),
    ],
)
def test_train_errors_are_one_line(tmp_path, text_args, extra, match):
    result = _run("train", *text_args, *extra, "--out", tmp_path / "r")
    assert result.exit_code == 2, result.output
    assert match in result.output and "Traceback" not in result.output


def test_missing_data_and_bad_yaml(tmp_path):
    result = _run("train", "--model", "tests.models:tiny_resnet", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "no data given" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("epoch: 3\n")
    result = _run("train", "--config", bad, "--out", tmp_path / "r")
    assert result.exit_code == 2 and "unknown key 'epoch'" in result.output and "epochs" in result.output
    assert _run("evaluate", "--checkpoint", tmp_path, "--data", bad).exit_code == 2


def test_different_run_in_folder_is_refused(tmp_path, text_args):
    out = tmp_path / "run"
    assert _run("train", *text_args, "--strategy", "linear-probe", "--out", out).exit_code == 0
    result = _run("train", *text_args, "--strategy", "full", "--out", out)
    assert result.exit_code == 2 and "holds a different run (differs in: strategy)" in result.output
    assert Path(out, "model.safetensors").is_file()


def test_dedup_flag_removes_leakage_finding(tmp_path, tiny_hf_dir):
    rows = [f"{'spam' if i % 4 == 0 else 'ham'}\t{'win cash now' if i % 4 == 0 else 'see you at lunch'} {i % 7}"
            for i in range(80)]  # only 7 x 2 distinct texts: heavy duplication
    data = tmp_path / "dups.tsv"
    data.write_text("\n".join(rows) + "\n")
    args = ["--model", f"hf:{tiny_hf_dir}", "--data", data, "--text-column", "1", "--label-column", "0",
            "--epochs", "1", "--batch-size", "8", "--val-frac", "0.2", "--test-frac", "0.2"]
    assert _run("train", *args, "--strategy", "linear-probe", "--out", tmp_path / "a").exit_code == 0
    leaky = json.loads((tmp_path / "a" / "metrics.json").read_text())
    codes = [d["code"] for d in leaky["diagnoses"]]
    assert codes[:2] == ["small-test-split", "data-leakage"] and leaky["leakage"]["copies"] == 80 - 14
    result = _run("train", *args, "--dedup", "--strategy", "linear-probe", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    clean = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert "data-leakage" not in [d["code"] for d in clean["diagnoses"]]
    assert clean["data"]["dedup_dropped"] == 80 - 14 and clean["leakage"]["leaked"] == 0


def test_dedup_says_which_conflicting_labels_it_resolved(tmp_path, tiny_hf_dir):
    rows = [f"{'spam' if i % 3 == 0 else 'ham'}\tmessage number {i}" for i in range(60)]
    rows += ["ham\tok see you", "spam\tOK, see you!"]  # the same message (after normalising) with two labels
    data = tmp_path / "conf.tsv"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "r"
    result = _run("train", "--model", f"hf:{tiny_hf_dir}", "--data", data, "--text-column", "1", "--label-column",
                  "0", "--epochs", "1", "--strategy", "linear-probe", "--dedup", "--out", out)
    assert result.exit_code == 0, result.output
    m = json.loads((out / "metrics.json").read_text())
    (f,) = [d for d in m["diagnoses"] if d["code"] == "conflicting-labels"]
    assert "'ok see you': ham, spam" in f["message"] and "--dedup kept the first label of each" in f["message"]
