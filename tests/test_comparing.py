"""What a comparison's evidence supports: the recommendation on validation (never test), Wilson and bootstrap
intervals, McNemar and paired-bootstrap tests, the samples a test split would need."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import f1_score, r2_score

import frostline as fl
from frostline.evaluation.comparing import _score, evidence, mcnemar
from frostline.evaluation.evidence import wilson

from .conftest import make_text_file

LABELS = ["ham", "spam"]


def _run_folder(tmp_path, name, y, pred, val_losses):
    out = tmp_path / name
    out.mkdir()
    pairs = enumerate(zip(y, pred, strict=True))
    rows = ["index,true,predicted"] + [f"{i},{LABELS[a]},{LABELS[b]}" for i, (a, b) in pairs]
    (out / "predictions.csv").write_text("\n".join(rows) + "\n")
    return {"strategy": name, "out": str(out), "val_losses": dict(enumerate(val_losses))}


def test_wilson_and_mcnemar_against_known_values():
    low, high = wilson(1.0, 3)  # not degenerate at the edge: 3 of 3 is not "100 % to 100 %"
    assert high == 1.0 and low == pytest.approx(0.4385, abs=1e-4)
    assert wilson(0.5, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    a = np.array([1, 1, 1, 1, 0, 1], bool)
    b = np.array([0, 0, 0, 0, 0, 1], bool)
    assert mcnemar(a, b) == pytest.approx(0.125)  # 4 discordant, all one way: 2 * 0.5**4


def test_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    p = np.where(rng.random(300) < 0.7, y, rng.integers(0, 3, 300))
    assert _score("classification", y, p, 3) == pytest.approx(f1_score(y, p, average="macro"))
    yr = rng.normal(size=80)
    pr = yr + rng.normal(size=80) * 0.5
    assert _score("regression", yr, pr, 1) == pytest.approx(r2_score(yr, pr))
    ym = rng.integers(0, 2, (40, 4))
    pm = np.where(rng.random((40, 4)) < 0.8, ym, 1 - ym)
    assert _score("multilabel", ym, pm, 4) == pytest.approx(f1_score(ym, pm, average="micro"))


def test_recommends_the_cheapest_within_noise_on_validation_not_the_best_on_test(tmp_path):
    rng = np.random.default_rng(1)
    n = 150
    y = rng.integers(0, 2, n)
    base_loss = rng.exponential(0.3, 200)
    cheap_pred = np.where(rng.random(n) < 0.90, y, 1 - y)
    big_pred = np.where(rng.random(n) < 0.93, y, 1 - y)  # a little better on test
    noise = rng.normal(0, 0.05, 200)
    noise -= noise.mean()  # the probe's mean validation loss is 0.004 above full's; 1.96 SE of the paired mean 0.007
    runs = [
        {**_run_folder(tmp_path, "linear-probe", y, cheap_pred, base_loss + noise + 0.004),
         "trainable": 770, "seconds": 3.0},
        {**_run_folder(tmp_path, "full", y, big_pred, base_loss), "trainable": 22_000_000, "seconds": 300.0},
    ]
    ev = evidence(runs, "classification", LABELS)
    assert ev["recommended"] == "linear-probe" and "within noise" in ev["why"]
    val = {r["strategy"]: r for r in ev["validation"]}
    assert val["full"]["diff"] == 0 and val["linear-probe"]["within_noise"]
    test = {r["strategy"]: r for r in ev["test"]}
    assert test["full"]["score"] > test["linear-probe"]["score"] and ev["best_on_test"] == "full"
    assert test["full"]["low"] < test["full"]["score"] < test["full"]["high"]
    acc = test["linear-probe"]["accuracy"]
    assert acc["value"] == pytest.approx((cheap_pred == y).mean())
    assert (acc["low"], acc["high"]) == pytest.approx(wilson(float((cheap_pred == y).mean()), n))
    vs = test["full"]["vs_recommended"]
    assert vs["accuracy_p"] == pytest.approx(mcnemar(big_pred == y, cheap_pred == y))
    assert not ev["separable"] and ev["samples_needed"] > n
    assert any("cannot separate them" in line and f"{ev['samples_needed']:,}" in line for line in ev["lines"])


def test_a_clearly_worse_validation_loss_is_not_within_noise(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 60)
    losses = rng.exponential(0.2, 300)
    runs = [{**_run_folder(tmp_path, "cheap", y, y, losses + 0.3), "trainable": 10, "seconds": 1.0},
            {**_run_folder(tmp_path, "costly", y, y, losses), "trainable": 1000, "seconds": 9.0}]
    ev = evidence(runs, "classification", LABELS)
    assert ev["recommended"] == "costly" and ev["why"].startswith("lowest validation loss")
    assert not {r["strategy"]: r for r in ev["validation"]}["cheap"]["within_noise"]


def test_compare_records_the_evidence_and_reports_it(tmp_path, tiny_hf_dir):
    data = make_text_file(tmp_path / "d.tsv", n=90)
    cfg = fl.RunConfig(model=f"hf:{tiny_hf_dir}", data=data, text_column="1", label_column="0", epochs=1,
                       out=str(tmp_path / "cmp"))
    result = fl.compare(cfg, "linear-probe,partial:1", echo=lambda _s: None)
    ev = json.loads((tmp_path / "cmp" / "compare.json").read_text())["evidence"]
    assert ev == json.loads(json.dumps(result.evidence))
    assert ev["recommended"] in ("linear-probe", "partial:1") and ev["n_val"] > 0
    assert [r["strategy"] for r in ev["test"]] == ["linear-probe", "partial:1"]
    for run in result.runs:
        assert (run.out / "validation.csv").read_text().startswith("index,loss\n")
    html = (tmp_path / "cmp" / "report.html").read_text()
    assert "What the evidence supports" in html and "cost against score" in html
    assert "confusion matrix of partial:1" in html


def test_multiclass_curves_are_per_class_and_named():
    from frostline.evaluation.threshold import curves
    from frostline.reporting import plots

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 25)
    probs = rng.dirichlet(np.ones(4), 100)
    probs[np.arange(100), y] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    c = curves(probs, y, 3)
    assert len(c["per_class"]) == 4 and all(0.5 < pc["average_precision"] <= 1 + 1e-9 for pc in c["per_class"])
    section = {"positive": "d", "curves": c, "default": {"threshold": None}}
    assert plots.pr_curve(section, "new.tsv", ["a", "b", "c", "d"]).startswith(b"\x89PNG")
    assert plots.pr_curve(section, "new.tsv", ["a", "b"]) is not None  # two names: the positive class's curve
