"""Scoring passes reuse the head's inputs while the body is unchanged, and give the full pass's numbers."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import frostline as fl
from frostline.data.batching import Encoded
from frostline.models.heads import find_head
from frostline.runs import prepare
from frostline.training.head_inputs import HeadInputs
from frostline.training.prediction import predict
from tests.conftest import make_text_file


def _setup(tiny_hf_dir, tmp_path):
    loaded = fl.load_model(f"hf:{tiny_hf_dir}", num_classes=2, pooling="mean")
    ds = fl.read_table(make_text_file(tmp_path / "d.tsv", n=40), "1", "0")
    return loaded.model, Encoded(ds, loaded.tokenizer, max_length=16)


def test_reused_head_inputs_give_the_full_pass(tiny_hf_dir, tmp_path):
    model, enc = _setup(tiny_hf_dir, tmp_path)
    reuse = HeadInputs(model, find_head(model).name)
    full = predict(model, enc, 8)
    first = predict(model, enc, 8, reuse=reuse)  # a full pass that keeps the inputs
    again = predict(model, enc, 8, reuse=reuse)  # the head alone
    assert reuse.hits == 1 and len(reuse.entries) == 1
    assert np.array_equal(first.probs, full.probs) and np.array_equal(again.probs, full.probs)
    assert again.loss == full.loss and np.array_equal(again.labels, full.labels)

    head = model.get_submodule(find_head(model).name)
    with torch.no_grad():  # a new head (a trained probe): still reused, and equal to a full pass
        for p in head.parameters():
            p.add_(torch.randn_like(p))
    probed = predict(model, enc, 8, reuse=reuse)
    assert reuse.hits == 2
    np.testing.assert_allclose(probed.probs, predict(model, enc, 8).probs, rtol=0, atol=1e-6)
    assert not np.allclose(probed.probs, full.probs)

    with torch.no_grad():  # the body changed (a fine-tuned block): a full pass again
        next(p for n, p in model.named_parameters() if "encoder" in n).add_(0.5)
    changed = predict(model, enc, 8, reuse=reuse)
    assert reuse.hits == 2
    assert np.array_equal(changed.probs, predict(model, enc, 8).probs)

    with torch.autocast("cpu", dtype=torch.bfloat16):  # another precision: not the fp32 inputs
        predict(model, enc, 8, reuse=reuse)
    assert reuse.hits == 2


class _Scaled(nn.Module):
    """A model whose output is not its head's: something runs after the head."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.fc = nn.Linear(6, 5), nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.body(x))) * 2.0


def test_output_after_the_head_is_never_reused():
    model = _Scaled()
    enc = Encoded(fl.data.from_tensors(torch.randn(20, 6), [0, 1] * 10))
    reuse = HeadInputs(model, "fc")
    full = predict(model, enc, 8)
    predict(model, enc, 8, reuse=reuse)
    again = predict(model, enc, 8, reuse=reuse)
    assert not reuse.usable and reuse.hits == 0
    assert np.array_equal(again.probs, full.probs)


def test_a_linear_probe_run_scores_from_the_base_passes(tiny_hf_dir, tmp_path):
    data = make_text_file(tmp_path / "d.tsv", n=80)
    cfg = fl.RunConfig(model=f"hf:{tiny_hf_dir}", data=data, text_column="1", label_column="0", epochs=2,
                       batch_size=8, strategy="linear-probe", pooling="mean", out=str(tmp_path / "run"))
    prepared = prepare(cfg, echo=lambda _s: None)
    m = fl.train(cfg, prepared, echo=lambda _s: None).metrics
    assert prepared.head_inputs.hits == 2  # the kept epoch's validation and test passes ran the head alone
    model = prepared.loaded.model  # holds the kept epoch's weights: a full pass gives the same numbers
    test = predict(model, prepared.test, cfg.eval_batch_size, task=prepared.task)
    assert abs(m["test"]["loss"] - test.loss) < 1e-6 and m["test"]["accuracy"] == float(
        (test.preds == test.labels).mean())
    assert m["test"]["loss"] != m["base"]["test"]["loss"]  # the probe's head, not the base's
