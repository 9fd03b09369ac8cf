"""Importance scores where the answer is known: a block the loss cannot see scores zero, the block the loss rests on
most scores highest, the model comes back untouched, and Fisher masks keep exactly the top share."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from frostline.core.errors import FrostlineError
from frostline.data import Encoded, from_tensors
from frostline.freezing.importance import fisher_elements, importance_scores, top_fraction_mask


class Scaled(nn.Module):
    """A residual block whose branch is multiplied by ``scale``: 0 means the loss cannot see its weights."""

    def __init__(self, dim: int, scale: float) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * torch.tanh(self.fc(x))


class Stack(nn.Module):
    def __init__(self, scales: tuple[float, ...], dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Linear(8, dim)
        self.layers = nn.ModuleList(Scaled(dim, s) for s in scales)
        self.norm = nn.BatchNorm1d(dim)
        self.fc = nn.Linear(dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for layer in self.layers:
            h = layer(h)
        return self.fc(self.norm(h))


def _data(n: int = 96) -> Encoded:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return Encoded(from_tensors(x, y, ["a", "b"]))


def _model(scales: tuple[float, ...]) -> Stack:
    torch.manual_seed(0)
    return Stack(scales)


def test_a_block_the_loss_cannot_see_scores_zero_and_the_one_it_rests_on_scores_highest():
    model = _model((0.3, 0.0, 3.0, 0.3))
    scores = importance_scores(model, _data(), batches=3, batch_size=32)
    by = {p.name: p for p in scores.parts}
    assert [p.name for p in scores.parts] == ["stem", "block 0", "block 1", "block 2", "block 3", "post", "head"]
    assert by["block 1"].rgn == by["block 1"].fisher == by["block 1"].relevance == 0.0
    for kind in ("rgn", "fisher", "relevance"):
        blocks = scores.ranked(kind, blocks_only=True)
        assert blocks[0].name == "block 2" and blocks[-1].name == "block 1", kind
    assert scores.top(2, "rgn", blocks_only=True)[0] == "block 2"
    assert sum(p.relevance for p in scores.parts) == pytest.approx(1.0)
    assert scores.batches == 3 and scores.samples == 96 and scores.seconds > 0


def test_rgn_is_the_gradient_norm_over_the_weight_norm_averaged_over_batches():
    model, data = _model((0.5, 1.0)), _data(64)
    scores = importance_scores(model, data, batches=2, batch_size=32, seed=3, per_tensor=True)
    from frostline.freezing.importance import score_batches

    expected = 0.0
    w = model.layers[1].fc.weight.detach().norm() ** 2 + model.layers[1].fc.bias.detach().norm() ** 2
    model.eval()
    for pos in score_batches(data, 2, 32, 3):
        b = data.batch(pos)
        model.zero_grad()
        nn.functional.cross_entropy(model(b.inputs), b.labels).backward()
        g = model.layers[1].fc.weight.grad.norm() ** 2 + model.layers[1].fc.bias.grad.norm() ** 2
        expected += float((g / w).sqrt()) / 2
    assert {p.name: p.rgn for p in scores.parts}["block 1"] == pytest.approx(expected, rel=1e-5)
    assert set(scores.tensors) == {n for n, _ in model.named_parameters()}


def test_scoring_leaves_the_model_as_it_was():
    model = _model((0.3, 1.0))
    model.train()
    model.embed.requires_grad_(False)
    model.fc.weight.grad = torch.ones_like(model.fc.weight)
    before = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm running stats included
    first = importance_scores(model, _data(), batches=2, batch_size=16)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and not model.embed.weight.requires_grad and model.layers[0].fc.weight.requires_grad
    assert torch.equal(model.fc.weight.grad, torch.ones_like(model.fc.weight)) and model.embed.weight.grad is None
    again = importance_scores(model, _data(), batches=2, batch_size=16)
    assert [p.__dict__ for p in first.parts] == [p.__dict__ for p in again.parts]  # the same draw, eval mode


def test_bad_requests_are_one_clear_error():
    model, data = _model((0.3, 1.0)), _data()
    scores = importance_scores(model, data, batches=1, batch_size=8)
    with pytest.raises(FrostlineError, match=r"cannot choose 3 of the model's 2 blocks: K must be 1\.\.2"):
        scores.top(3, blocks_only=True)
    with pytest.raises(FrostlineError, match=r"unknown importance score 'fischer'; expected one of rgn, fisher, "
                                             r"relevance; closest names: fisher"):
        scores.ranked("fischer")
    with pytest.raises(FrostlineError, match=r"batches >= 1 and batch_size >= 1, got 0 and 8"):
        importance_scores(model, data, batches=0, batch_size=8)


def test_fisher_masks_keep_exactly_the_top_share_and_match_per_sample_squared_gradients():
    model, data = _model((0.3, 1.0)), _data(40)
    names = ["layers.0.fc.weight", "layers.1.fc.weight"]
    fisher = fisher_elements(model, data, names, samples=40)
    model.eval()
    expected = torch.zeros_like(model.layers[1].fc.weight)
    for i in range(40):
        b = data.batch([i])
        model.zero_grad()
        nn.functional.cross_entropy(model(b.inputs), b.labels).backward()
        expected += model.layers[1].fc.weight.grad ** 2
    assert torch.allclose(fisher["layers.1.fc.weight"], expected / 40, rtol=1e-5, atol=1e-12)
    masks = top_fraction_mask(fisher, 10.0)
    trainable = sum(int((~m).sum()) for m in masks.values())
    assert trainable == round(2 * 16 * 16 * 0.10)
    kept = torch.cat([fisher[n][~masks[n]] for n in names])
    dropped = torch.cat([fisher[n][masks[n]] for n in names])
    assert kept.min() >= dropped.max()
    with pytest.raises(FrostlineError, match=r"in \(0, 100\] percent, got 0"):
        top_fraction_mask(fisher, 0)


def test_importance_command_table_json_and_plot(tmp_path, tiny_hf_dir):
    import json

    from typer.testing import CliRunner

    from frostline.cli import app
    from tests.conftest import make_text_file

    data = make_text_file(tmp_path / "d.tsv", n=80)
    base = ["importance", f"hf:{tiny_hf_dir}", "--data", data, "--text-column", "1", "--label-column", "0"]
    result = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "imp")])
    assert result.exit_code == 0, result.output
    assert "surgical:auto:2 would train: block" in result.output and "cost: 4 batches, 32 samples" in result.output
    saved = json.loads((tmp_path / "imp" / "importance.json").read_text())
    assert [p["name"] for p in saved["parts"]][:2] == ["stem", "block 0"] and saved["samples"] == 32
    assert (tmp_path / "imp" / "importance.png").read_bytes()[:4] == b"\x89PNG"
    parsed_rgn = json.loads(CliRunner().invoke(app, [*base, "--json"]).stdout)
    shown = CliRunner().invoke(app, [*base, "--json", "--top", "1", "--score", "fisher"])
    assert shown.exit_code == 0
    parsed = json.loads(shown.stdout)  # stdout holds the JSON alone
    assert parsed["chosen_by"] == "fisher" and len(parsed["chosen"]) == 1
    assert parsed["parts"] == saved["parts"]  # the same split, head and batches: the same scores
    bad = CliRunner().invoke(app, [*base, "--score", "fishr"])
    assert bad.exit_code == 2 and "unknown importance score 'fishr'" in bad.output
    assert saved["chosen"] == parsed_rgn["chosen"] and saved["chosen_by"] == "rgn"  # the file keeps the choice
    import frostline.runs.importance as imp_mod

    def no_scoring(*_a, **_k):
        raise AssertionError("scored before the --out check")

    monkey = pytest.MonkeyPatch()
    monkey.setattr(imp_mod, "prepare", no_scoring)
    try:
        again = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "imp")])
    finally:
        monkey.undo()
    assert again.exit_code == 2 and "already holds earlier importance scores" in again.output  # checked first
    for flag in ("--batches", "--batch-size"):
        zero = CliRunner().invoke(app, [*base, flag, "0"])
        assert zero.exit_code == 2 and f"{flag} must be an integer >= 1" in zero.output


def test_inspect_adds_the_importance_column(tmp_path, tiny_hf_dir):
    from typer.testing import CliRunner

    from frostline.cli import app
    from tests.conftest import make_text_file

    data = make_text_file(tmp_path / "d.tsv", n=80)
    result = CliRunner().invoke(app, ["inspect", f"hf:{tiny_hf_dir}", "--importance", "--data", data,
                                      "--text-column", "1", "--label-column", "0"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "importance (rgn)" in result.output and "importance: 4 batches, 32 samples" in result.output
    missing = CliRunner().invoke(app, ["inspect", f"hf:{tiny_hf_dir}", "--importance"])
    assert missing.exit_code == 2 and "--importance needs --data FILE" in missing.output
    stray = CliRunner().invoke(app, ["inspect", f"hf:{tiny_hf_dir}", "--data", data])
    assert stray.exit_code == 2 and "--data is for --importance" in stray.output
