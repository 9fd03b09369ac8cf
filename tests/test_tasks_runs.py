"""Regression and multi-label runs end to end on a tiny BERT: the head, loss and Hugging Face problem_type follow
the task, metrics.json agrees with scikit-learn on the run's own predictions.csv, a reloaded run predicts what
the run wrote, and the findings speak of the task."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from frostline.runs.config import RunConfig
from frostline.runs.inference import load_run
from frostline.runs.training import train
from tests.conftest import HAM_WORDS, SPAM_WORDS


def _regression_file(path, n=120, seed=0):
    """score = the number of 'spam' words in the text, plus a little noise: learnable, fractional."""
    rng = random.Random(seed)
    lines = ["text\tscore"]
    for _ in range(n):
        k = rng.randint(0, 4)
        words = rng.choices(SPAM_WORDS, k=k) + rng.choices(HAM_WORDS, k=6 - k)
        rng.shuffle(words)
        lines.append(f"{' '.join(words)}\t{k + rng.uniform(-0.2, 0.2):.3f}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _multilabel_file(path, n=120, seed=0):
    """labels: 'a' when a spam word occurs, 'b' when the text is long, none for short ham texts (JSONL lists)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            spam = rng.random() < 0.5
            words = rng.choices(SPAM_WORDS if spam else HAM_WORDS, k=rng.choice([3, 9]))
            labels = (["a"] if spam else []) + (["b"] if len(words) > 5 else [])
            f.write(json.dumps({"text": " ".join(words), "label": labels}) + "\n")
    return str(path)


def _rows(out):
    with open(out / "predictions.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("strategy", ["partial:1", "linear-probe"])
def test_a_regression_run_end_to_end(tmp_path, tiny_hf_dir, strategy):
    data = _regression_file(tmp_path / "r.tsv")
    cfg = RunConfig(model=f"hf:{tiny_hf_dir}", data=data, label_column="score", strategy=strategy, epochs=3,
                    batch_size=8, lr=1e-3, out=str(tmp_path / "run"))
    notes = []
    result = train(cfg, echo=notes.append)
    assert any("regression" in n for n in notes)  # the user is told what was chosen
    m = json.loads((result.out / "metrics.json").read_text())
    assert m["task"]["kind"] == "regression" and m["task"]["problem_type"] == "regression"
    assert m["head"]["num_classes"] == 1
    rows = _rows(result.out)
    y, p = np.array([float(r["true"]) for r in rows]), np.array([float(r["predicted"]) for r in rows])
    assert m["test"]["mse"] == pytest.approx(skm.mean_squared_error(y, p))
    assert m["test"]["r2"] == pytest.approx(skm.r2_score(y, p))
    assert abs(m["task"]["mean"] - 2.0) < 0.5  # standardised with the training targets, reported in their units
    assert 0 < p.mean() < 4.5
    if strategy == "linear-probe":  # a convex head on frozen features: solved exactly, once
        assert m["history"][0]["plan"].endswith("(ridge)") and m["run"]["budget"]["probe"]["solver"].startswith("ridge")
    codes = [d["code"] for d in m["diagnoses"]]
    assert codes[-1].startswith("verdict-") and "accuracy-paradox" not in codes
    runm = load_run(result.out)
    assert runm.model.config.problem_type == "regression"
    texts = [line.split("\t")[0] for line in Path(data).read_text().splitlines()[1:]]
    again = runm.predict([texts[int(rows[0]["index"])]])
    assert again.predicted[0] == pytest.approx(float(rows[0]["predicted"]), abs=1e-4)
    if strategy == "partial:1":  # the export holds the target's scaling: plain transformers gives the value
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from frostline.runs.export import export_run

        export_run(result.out, tmp_path / "exported")
        exported = AutoModelForSequenceClassification.from_pretrained(tmp_path / "exported").eval()
        tok = AutoTokenizer.from_pretrained(tmp_path / "exported")
        import torch

        with torch.no_grad():
            value = exported(**tok([texts[int(rows[0]["index"])]], return_tensors="pt")).logits[0, 0].item()
        assert value == pytest.approx(float(rows[0]["predicted"]), abs=1e-4)
        assert exported.config.problem_type == "regression"


@pytest.mark.parametrize("strategy", ["full", "linear-probe"])
def test_a_multilabel_run_end_to_end(tmp_path, tiny_hf_dir, strategy):
    data = _multilabel_file(tmp_path / "m.jsonl")
    cfg = RunConfig(model=f"hf:{tiny_hf_dir}", data=data, strategy=strategy, epochs=4, batch_size=8, lr=1e-3,
                    head_lr=0.05, out=str(tmp_path / "run"))
    result = train(cfg, echo=lambda _s: None)
    m = json.loads((result.out / "metrics.json").read_text())
    assert m["task"]["kind"] == "multilabel" and m["labels"] == ["a", "b"] and m["head"]["num_classes"] == 2
    rows = _rows(result.out)
    t = np.array([[n in r["true"].split("|") for n in ("a", "b")] for r in rows], dtype=int)
    p = np.array([[n in r["predicted"].split("|") for n in ("a", "b")] for r in rows], dtype=int)
    assert m["test"]["f1"]["micro"] == pytest.approx(skm.f1_score(t, p, average="micro", zero_division=0))
    assert m["test"]["hamming_loss"] == pytest.approx(skm.hamming_loss(t, p))
    assert m["test"]["f1"]["micro"] > (0.8 if strategy == "full" else 0.6)  # the labels are readable from the words
    if strategy == "linear-probe":
        assert m["run"]["budget"]["probe"]["solver"] == "L-BFGS per label" and m["run"]["budget"]["converged"]
    assert set(m["threshold"]["label_thresholds"]) == {"a", "b"}
    runm = load_run(result.out)
    assert runm.model.config.problem_type == "multi_label_classification"
    assert runm.predict(["x"]).task == "multilabel"


def test_task_options_are_checked(tmp_path):
    from frostline.core.errors import FrostlineError

    with pytest.raises(FrostlineError, match="--loss 'huber' is not a loss of a multilabel task"):
        RunConfig(data=None, task="multilabel", loss="huber").validate()
    with pytest.raises(FrostlineError, match="--task 'regress' is not a task"):
        RunConfig(task="regress").validate()
    data = _regression_file(tmp_path / "r.tsv", n=40)
    with pytest.raises(FrostlineError, match="a regression task has no positive class"):
        from frostline.runs import prepare
        prepare(RunConfig(data=data, label_column="score", optimize="f1", out=str(tmp_path / "o")))


def test_label_columns_as_users_write_them(tmp_path):
    from frostline.core.errors import FrostlineError
    from frostline.data import read_table

    csv_file = tmp_path / "m.csv"
    csv_file.write_text("text,labels\nflood and rain,weather|water\nhello there,\nfire now,fire\n")
    ds = read_table(csv_file, "text", "labels")  # an empty multi-label cell is a sample with no label, kept
    assert ds.task == "multilabel" and len(ds) == 3 and ds.labels.tolist() == [[0, 1, 1], [0, 0, 0], [1, 0, 0]]
    one = tmp_path / "one.tsv"
    one.write_text("text\tlabel\n" + "".join(f"t{i}\t{i * 0.5}\n" for i in range(12)))
    with pytest.raises(FrostlineError, match=r"no label in 'label' is a list.*--task regression"):
        read_table(one, "text", "label", task="multilabel")
    stray = tmp_path / "stray.tsv"
    stray.write_text("text\tscore\n" + "".join(f"t{i}\t{i * 0.5 + 0.25}\n" for i in range(20)) + "t\tn/a\n")
    with pytest.raises(FrostlineError, match=r"\(row 21\): target 'n/a' is not a finite number"):
        read_table(stray, "text", "score")  # mostly numbers with fractions: a regression with one bad row


def test_evaluate_and_predict_commands_on_a_regression_run(tmp_path, tiny_hf_dir):
    from typer.testing import CliRunner

    from frostline.cli import app

    data = _regression_file(tmp_path / "r.tsv")
    cfg = RunConfig(model=f"hf:{tiny_hf_dir}", data=data, label_column="score", strategy="linear-probe", epochs=1,
                    batch_size=8, out=str(tmp_path / "run"))
    train(cfg, echo=lambda _s: None)
    other = _regression_file(tmp_path / "o.tsv", n=40, seed=5)
    ev = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "run"), "--data", other,
                                  "--label-column", "score", "--out", str(tmp_path / "ev")])
    assert ev.exit_code == 0, ev.output
    assert "R^2" in ev.output and "verdict-" in ev.output
    texts = tmp_path / "t.txt"
    texts.write_text("free cash now\nsee you at lunch\n")
    pr = CliRunner().invoke(app, ["predict", "--checkpoint", str(tmp_path / "run"), "--data", str(texts)])
    assert pr.exit_code == 0, pr.output
    assert "2 predicted (values" in pr.output
