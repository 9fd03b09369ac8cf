"""Every option is checked before the model or the data load; help texts list what is accepted; the positive
class rule; compare budgets per strategy."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from typer.testing import CliRunner

import frostline as fl
from frostline.cli import app
from frostline.evaluation.threshold import choose_positive
from frostline.models import load as fl_models
from frostline.runs.comparison import parse_strategies
from tests.conftest import make_text_file

runner = CliRunner()
fl_train = importlib.import_module("frostline.runs.training")  # the module (frostline.train is the function)
preparation = importlib.import_module("frostline.runs.preparation")


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if anything loads a model or reads the data."""

    def boom(*_a, **_k):
        raise AssertionError("loaded before the options were checked")

    monkeypatch.setattr(fl_models, "load_hf", boom)
    monkeypatch.setattr(fl_models, "_load_factory", boom)
    monkeypatch.setattr(preparation, "read_data", boom)


@pytest.mark.parametrize(("extra", "match"), [
    (["--strategy", "partal:2"], "unknown strategy 'partal:2'"),
    (["--strategy", "surgical"], "strategy 'surgical' needs a selector"),
    (["--lr", "0"], "lr must be > 0, got 0.0"),
    (["--epochs", "0"], "epochs must be >= 1, got 0"),
    (["--precision", "16"], "precision must be one of 32-true"),
    (["--accelerator", "tpu"], "accelerator must be one of auto, cpu, cuda"),
    (["--optimizer", "adamx"], "unknown optimizer 'adamx'"),
    (["--pooling", "avg"], "unknown pooling 'avg'"),
    (["--probe", "newton"], "probe must be one of auto, lbfgs, sgd"),
    (["--optimize", "f2"], "bad --optimize 'f2'"),
    (["--augment", "flip"], "unknown augmentation 'flip'"),
    (["--val-frac", "0.6", "--test-frac", "0.5"], "--val-frac \\+ --test-frac must leave training data"),
    (["--model", "minilm2"], "unknown model spec 'minilm2'"),
    (["--dropout", "1.5"], r"dropout must be a probability in \[0, 1\)"),
])
def test_bad_options_fail_before_anything_loads(tmp_path, no_loading, extra, match):
    data = make_text_file(tmp_path / "d.tsv", n=20)
    args = ["train", "--model", "tests.models:tiny_resnet", "--data", data, *extra, "--out", str(tmp_path / "r")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    import re

    assert re.search(match, result.output), result.output
    assert "Traceback" not in result.output and "loaded before" not in result.output


def test_compare_checks_every_strategy_and_budget_first(tmp_path, no_loading):
    data = make_text_file(tmp_path / "d.tsv", n=20)
    base = ["compare", "--model", "tests.models:tiny_resnet", "--data", data, "--out", str(tmp_path / "c")]
    result = runner.invoke(app, [*base, "--strategies", "linear-probe,full@lr=abc"])
    assert result.exit_code == 2 and "lr must be a number, got 'abc'" in result.output
    result = runner.invoke(app, [*base, "--strategies", "full@epochz=3"])
    assert result.exit_code == 2 and "unknown budget key 'epochz'" in result.output and "epochs" in result.output
    result = runner.invoke(app, [*base, "--strategies", "full@epochs=0"])
    assert result.exit_code == 2 and "epochs must be >= 1, got 0" in result.output


def test_missing_data_file_is_caught_before_loading(tmp_path, no_loading):
    result = runner.invoke(app, ["train", "--model", "minilm", "--data", str(tmp_path / "nope.tsv"),
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_yaml_types_are_checked(tmp_path, no_loading):
    conf = tmp_path / "run.yaml"
    conf.write_text("dedup: 'false'\n")
    result = runner.invoke(app, ["train", "--config", str(conf), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "dedup must be true or false, got 'false'" in result.output
    conf.write_text("epochs: true\n")
    result = runner.invoke(app, ["train", "--config", str(conf), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "epochs must be an integer, got True" in result.output


@pytest.mark.parametrize("command", ["train", "compare", "evaluate", "predict", "inspect", "check", "demo"])
def test_no_help_text_is_cut_off_at_80_columns(command):
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "80", "TERM": "dumb"})
    assert result.exit_code == 0 and "…" not in result.output, result.output


def test_help_lists_strategies_and_keeps_defaults_whole():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "100", "TERM": "dumb"})
    text = " ".join(result.output.replace("│", " ").split())
    assert "linear-probe | partial:N | full | gradual | discriminative[:F] | lp-ft[:K] | surgical:SELECTOR" in text
    assert "| lora:auto[:K] | ia3[:blocks=SEL] [:targets=NAMES] | bitfit" in text
    for default in ("[default: auto]", "[default: full]", "[default: 0.01]"):
        assert default in text, default
    assert "Default runs/latest, or runs/latest-2, -3... when that holds another run" in text
    assert "Unset: 1e-4, or the rate the strategy's paper used: lora 5e-4, ia3 3e-3, bitfit 1e-3" in text
    result = runner.invoke(app, ["compare", "--help"], env={"COLUMNS": "100", "TERM": "dumb"})
    assert "full@lr=3e-5@epochs=4" in " ".join(result.output.replace("│", " ").split())


def test_positive_class_rule():
    labels = ["ham", "spam"]
    assert choose_positive(labels, np.array([0, 0, 0, 1]), None) == (1, "the rarest class in training (1 of 4)")
    idx, why = choose_positive(["negative", "positive"], np.array([0, 1, 0, 1]), None)
    assert idx == 1 and "named like a positive class" in why
    idx, why = choose_positive(["no", "yes"], np.array([0, 1]), None)
    assert idx == 1
    idx, why = choose_positive(["cat", "dog"], np.array([0, 1]), None)
    assert idx == 1 and "set --positive-label" in why
    assert choose_positive(labels, np.array([0, 1]), "ham") == (0, "--positive-label")
    with pytest.raises(fl.FrostlineError, match="--positive-label 'spma' is not a class"):
        choose_positive(labels, np.array([0, 1]), "spma")


def test_strategy_budgets_parse():
    runs = parse_strategies("linear-probe,full@lr=3e-5@epochs=4")
    assert [r.label for r in runs] == ["linear-probe", "full@lr=3e-05@epochs=4"]
    assert runs[1].overrides == {"lr": 3e-5, "epochs": 4}
    yaml_runs = parse_strategies(["partial:2", {"strategy": "full", "lr": 3e-5}])
    assert yaml_runs[1].spec == "full" and yaml_runs[1].overrides == {"lr": 3e-5}
    with pytest.raises(fl.FrostlineError, match="listed twice"):
        parse_strategies("full,full")
    with pytest.raises(fl.FrostlineError, match="expected STRATEGY@key=value"):
        parse_strategies("full@lr")


def test_yaml_strategy_budgets_and_the_limit_alias(tmp_path, tiny_hf_dir):
    data = make_text_file(tmp_path / "d.tsv", n=60)
    conf = tmp_path / "cmp.yaml"
    conf.write_text(f"model: hf:{tiny_hf_dir}\ndata: {data}\ntext_column: 1\nlabel_column: 0\nlimit: 40\n"
                    "epochs: 1\nstrategies:\n  - linear-probe\n  - {strategy: full, lr: 3.0e-4, epochs: 2}\n")
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", "--config", str(conf), "--out", str(out)])
    assert result.exit_code == 0, result.output
    import json

    summary = json.loads((out / "compare.json").read_text())
    assert [r["strategy"] for r in summary["runs"]] == ["linear-probe", "full@lr=0.0003@epochs=2"]
    full = summary["runs"][1]["metrics"]
    assert full["run"]["budget"]["lr"] == 3e-4 and full["run"]["budget"]["epochs"] == 2
    assert sum(full["data"]["sizes"].values()) == 40  # limit: is --limit
    assert "full@lr=0.0003@epochs=2" in result.output


def test_unavailable_accelerator_and_repeated_budget_keys_fail_first(tmp_path, no_loading, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = make_text_file(tmp_path / "d.tsv", n=20)
    result = runner.invoke(app, ["train", "--model", "tests.models:tiny_resnet", "--data", data, "--accelerator",
                                 "cuda", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "--accelerator cuda: no CUDA GPU is available" in result.output
    assert not (tmp_path / "r").exists()  # no stub run folder left behind
    with pytest.raises(fl.FrostlineError, match="sets 'lr' twice"):
        parse_strategies("full@lr=1e-5@lr=2e-5")


def test_a_strategy_the_model_cannot_run_fails_before_scoring_anything(tmp_path, tiny_hf_dir, monkeypatch):
    def boom(*_a, **_k):
        raise AssertionError("scored the base model before checking the strategy")

    monkeypatch.setattr(preparation.Prepared, "base_metrics", boom)
    monkeypatch.setattr(preparation, "Encoded", boom)  # nor tokenised
    data = make_text_file(tmp_path / "d.tsv", n=40)
    for strategy, match in (("partial:9", "needs 9 blocks but the model has 4"),
                            ("surgical:encoder.layr.0", "encoder.layer.0")):
        result = runner.invoke(app, ["train", "--model", f"hf:{tiny_hf_dir}", "--data", data, "--text-column", "1",
                                     "--label-column", "0", "--strategy", strategy, "--out", str(tmp_path / "r")])
        assert result.exit_code == 2 and match in result.output, result.output


def test_narrow_terminal_comparison_keeps_every_number_whole():
    from rich.console import Console

    from frostline.reporting.terminal import compare_table

    m = {"strategy": "discriminative:0.8@lr=3e-05@epochs=4", "budget": "3/3 ep, 3e-5/0.01",
         "trainable": 22_566_146, "seconds": 61.0, "val_loss": 0.0213, "accuracy": 0.9833, "precision": 0.97,
         "recall": 0.95, "f1": 0.9604}
    base = {**m, "strategy": "base model", "budget": "-", "trainable": 0, "f1": 0.3555}
    for width in (80, 100, 120):
        console = Console(width=width, record=True)
        console.print(compare_table([base, m], width=width))
        text = console.export_text()
        assert "…" not in text and "0.9604" in text and "+0.6049" in text and "22.6M" in text, text


def test_multilabel_comparison_fits_120_columns_by_dropping_val_loss():
    from rich.console import Console

    from frostline.reporting.terminal import compare_table

    m = {"strategy": "linear-probe", "budget": "3/3 ep, 1e-4/0.01", "trainable": 3850, "seconds": 18.3,
         "val_loss": 0.3838, "task": "multilabel", "subset_accuracy": 0.1133, "micro_f1": 0.5760, "macro_f1": 0.5198,
         "hamming_loss": 0.2287}
    base = {**m, "strategy": "base model", "budget": "-", "trainable": 0, "micro_f1": 0.2866}
    for width, val_loss in ((120, False), (140, True)):
        console = Console(width=width, record=True)
        console.print(compare_table([base, m], width=width))
        text = console.export_text()
        assert max(len(line) for line in text.splitlines()) <= width
        assert "0.2287" in text and "+0.2894" in text and ("0.3838" in text) == val_loss, text


def test_a_comparison_that_failed_before_any_run_does_not_block_its_folder(tmp_path, tiny_hf_dir, text_file):
    out = tmp_path / "cmp"
    cfg = fl.RunConfig(model=f"hf:{tiny_hf_dir}", data=text_file, text_column="1", label_column="9",
                       epochs=1, out=str(out))
    with pytest.raises(fl.FrostlineError, match="label"):
        fl.compare(cfg, ["linear-probe"], echo=lambda _s: None)
    assert (out / "compare.json").is_file()
    fixed = fl.RunConfig(**{**cfg.to_dict(), "label_column": "0"})
    result = fl.compare(fixed, ["linear-probe"], echo=lambda _s: None)
    assert [r.strategy for r in result.runs] == ["linear-probe"]


def test_ctrl_c_says_the_run_resumes_only_when_there_is_something_to_resume(monkeypatch, tmp_path, text_file):
    from frostline.cli.application import resume_line

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fl_train, "train", interrupted)  # the command imports it when it runs
    out = str(tmp_path / "r")
    result = CliRunner().invoke(app, ["train", "--data", text_file, "--text-column", "1", "--label-column", "0",
                                      "--out", out])
    assert result.exit_code == 130
    assert "interrupted: stopped before anything was written: run the same command again to start" in result.output
    (tmp_path / "r").mkdir()
    assert resume_line(out) == f"{out} holds no complete epoch yet: run the same command again to start it"
    (tmp_path / "r" / "checkpoints" / "epoch-1").mkdir(parents=True)
    assert resume_line(out) == (f"{out} keeps its newest complete checkpoint (writes are atomic): run the same "
                                "command again to resume")


def test_an_ignored_ctrl_c_stays_ignored(monkeypatch):
    """A run started with SIGINT ignored (``nohup``, a background job of a script) is not made interruptible."""
    import signal

    from frostline.cli.application import friendly

    @friendly
    def command() -> object:
        return signal.getsignal(signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        assert command() is signal.SIG_IGN
        signal.signal(signal.SIGINT, signal.default_int_handler)
        assert command() is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_ctrl_c_in_predict_does_not_promise_a_resume(monkeypatch, tmp_path):
    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr("frostline.runs.inference.predict_file", interrupted)
    out = str(tmp_path / "p.csv")
    result = CliRunner().invoke(app, ["predict", "--checkpoint", str(tmp_path), "--data", str(tmp_path / "x.txt"),
                                      "--out", out])
    assert result.exit_code == 130, result.output
    assert f"interrupted: {out} holds no half-written file" in result.output and "resume" not in result.output
    result = CliRunner().invoke(app, ["predict", "--checkpoint", str(tmp_path), "--data", str(tmp_path / "x.txt"),
                                      "--out", "-"])
    assert result.exit_code == 130 and "interrupted: stopped; run the command again" in result.output



def test_run_config_takes_each_shared_default_from_the_engine_and_the_verdict():
    """One source per default: RunConfig's keys that TrainConfig or Thresholds also hold read their defaults there."""
    import ast
    from dataclasses import fields
    from pathlib import Path

    from frostline.evaluation.diagnose import Thresholds
    from frostline.runs import config

    assert fl.RunConfig().train_config() == fl.TrainConfig() and fl.RunConfig().thresholds() == Thresholds()
    shared = ({f.name for f in fields(fl.TrainConfig)} | {f.name for f in fields(Thresholds)}) - {"lr", "epochs",
                                                                                               "restore_best"}
    tree = ast.parse(Path(config.__file__).read_text())
    run_config = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RunConfig")
    literal = [n.target.id for n in run_config.body if isinstance(n, ast.AnnAssign) and n.target.id in shared
               and not (isinstance(n.value, ast.Attribute) and ast.unparse(n.value.value) in ("_TRAIN", "_VERDICT"))]
    assert literal == []
    assert {n.target.id for n in run_config.body if isinstance(n, ast.AnnAssign)} >= shared
