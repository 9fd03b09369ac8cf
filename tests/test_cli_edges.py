"""The command line's first-hour edges: --delimiter, --precision auto, --limit past the data, a default run folder
that does not collide, predict on a table at the run's text column, --model for inspect / importance / check, the
process count in metrics.json, evaluate's overlap check with --val-data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import frostline as fl
from frostline.cli import app
from frostline.core.errors import FrostlineError
from frostline.data.tables import read_table
from frostline.training.records import kept_trainable

from .conftest import make_text_file

runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, list(args))


def test_delimiter_reads_a_semicolon_file_and_the_error_names_the_separator(tmp_path):
    path = make_text_file(tmp_path / "semi.csv", n=20, sep=";", header=("label", "text"))
    with pytest.raises(FrostlineError, match=r"looks separated by ';': pass --delimiter ';'"):
        read_table(path)
    ds = read_table(path, delimiter=";")
    assert len(ds) == 20 and ds.label_names == ["ham", "spam"] and " " in ds.inputs[0]
    assert len(read_table(path, delimiter="semicolon")) == 20
    with pytest.raises(FrostlineError, match=r"--delimiter must be one character .* got ';;'"):
        fl.RunConfig(data=path, delimiter=";;").validate()
    assert fl.RunConfig(data=path, delimiter="\\t").validate().delimiter == "\t"


def test_precision_auto_is_the_unset_option():
    assert fl.RunConfig(precision="auto").validate().precision is None
    assert fl.RunConfig(precision="AUTO").validate().precision is None
    with pytest.raises(FrostlineError, match=r"--precision must be one of .* \(or auto\), got 'fast'"):
        fl.RunConfig(precision="fast").validate()


def test_the_kept_epochs_trainable_count_is_reported():
    history = [{"epoch": 1, "trainable": 22_600_000}, {"epoch": 2, "trainable": 3_550_000}]
    assert kept_trainable(history, 1) == 22_600_000
    assert kept_trainable(history, 2) == 3_550_000


@pytest.fixture
def tiny_run(tmp_path, tiny_hf_dir, monkeypatch):
    """A finished linear-probe run trained from the command line without --out, in a fresh working directory."""
    monkeypatch.chdir(tmp_path)
    data = make_text_file(tmp_path / "train.tsv", n=60, header=("label", "body"))
    args = ["train", "--model", f"hf:{tiny_hf_dir}", "--data", data, "--text-column", "body",
            "--label-column", "label", "--strategy", "linear-probe", "--epochs", "1", "--limit", "500"]
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    return args, result, data


def test_default_out_resumes_the_same_run_and_gives_another_run_a_new_folder(tiny_run):
    args, first, _ = tiny_run
    assert "--limit 500 is more than the 60 samples" in first.output
    metrics = json.loads(Path("runs/latest/metrics.json").read_text())
    assert metrics["run"]["processes"] == {"total": 1, "nodes": 1}
    again = _cli(*args)  # the same run: reused from runs/latest, not retrained
    assert again.exit_code == 0 and "run already complete" in again.output
    other = _cli(*args[:-2], "--seed", "3")
    assert other.exit_code == 0, other.output
    assert "runs/latest holds another run: this one goes to runs/latest-2" in other.output
    assert json.loads(Path("runs/latest-2/metrics.json").read_text())["run"]["seed"] == 3
    assert json.loads(Path("runs/latest/metrics.json").read_text()) == metrics  # the first run is untouched


def test_predict_reads_a_table_at_the_runs_text_column(tiny_run, tmp_path):
    new = tmp_path / "new.csv"
    new.write_text("id,body\n1,free prize winner\n2,see you at lunch\n")
    result = _cli("predict", "--checkpoint", "runs/latest", "--data", str(new), "--out", "preds.csv")
    assert result.exit_code == 0, result.output
    rows = Path("preds.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("free prize winner")
    semi = tmp_path / "new-semi.csv"
    semi.write_text("id;body\n1;free prize winner\n")
    result = _cli("predict", "--checkpoint", "runs/latest", "--data", str(semi), "--delimiter", ";")
    assert result.exit_code == 0, result.output


def test_evaluate_checks_overlap_against_the_recorded_val_data(tmp_path, tiny_hf_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = make_text_file(tmp_path / "train.tsv", n=60, seed=1)
    val = make_text_file(tmp_path / "val.tsv", n=30, seed=2)
    cfg = fl.RunConfig(model=f"hf:{tiny_hf_dir}", data=train, val_data=val, text_column="1", label_column="0",
                       strategy="linear-probe", epochs=1, out=str(tmp_path / "run"))
    fl.train(cfg, echo=lambda _s: None)
    result = fl.evaluate(tmp_path / "run", val, text_column="1", label_column="0")
    assert result["overlap"]["checked"], result["overlap"]
    assert result["overlap"]["samples"] > 0  # the validation file was seen in training: its samples overlap
    Path(val).write_text(Path(val).read_text() + "spam free prize\n")
    changed = fl.evaluate(tmp_path / "run", train, text_column="1", label_column="0")
    assert not changed["overlap"]["checked"]
    assert "--val-data file" in changed["overlap"]["note"] and "changed since training" in changed["overlap"]["note"]


def test_inspect_importance_and_check_take_model_as_an_option_or_positional(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outside the repository: the README's example model ships with frostline
    result = _cli("check", "frostline.models.examples:misused")
    assert result.exit_code == 1 and "module-requires-grad-attribute" in result.output
    assert "parameter-attribute-typo" in result.output
    result = _cli("check", "--model", "frostline.models.examples:misused")
    assert result.exit_code == 1 and "module-requires-grad-attribute" in result.output
    result = _cli("inspect", "--model", "frostline.models.examples:misused")
    assert result.exit_code == 0 and "head: fc" in result.output
    result = _cli("inspect")
    assert result.exit_code != 0 and "no model given" in result.output
    result = _cli("inspect", "frostline.models.examples:misused", "--model", "minilm")
    assert result.exit_code != 0 and "two models given" in result.output
    result = _cli("importance", "--data", "missing.tsv")
    assert result.exit_code != 0 and "no model given" in result.output


def test_every_option_is_described_and_flags_show_no_type():
    import typer

    command = typer.main.get_command(app)
    missing = [f"{name} {p.name}" for name, sub in command.commands.items() for p in sub.params
               if not getattr(p, "help", None)]
    assert missing == []
    for name in ("train", "compare", "evaluate", "predict", "inspect"):
        shown = runner.invoke(app, [name, "--help"], env={"COLUMNS": "200"}).output
        assert "--no-cache" in shown or name != "train"
        assert "<bool>" not in shown, name


def test_a_missing_column_suggests_the_header_names_in_flag_order(tmp_path):
    path = make_text_file(tmp_path / "sms.tsv", n=20, header=("Label", "SMS"))
    with pytest.raises(FrostlineError, match=r"it looks like --text-column SMS --label-column Label"):
        read_table(path)


PREDICT_MODULES = """
import sys
from frostline.cli import app
sys.argv = ["frostline", *sys.argv[1:]]
try:
    app()
except SystemExit:
    pass
sys.stderr.write("loaded: " + ",".join(m for m in ("matplotlib", "sklearn") if m in sys.modules) + "\\n")
"""


def test_predict_loads_no_report_library(tiny_run, tmp_path):
    """A command imports what it uses: predict needs no matplotlib and no scikit-learn."""
    import subprocess
    import sys

    (tmp_path / "new.txt").write_text("good movie\nbad film\n")
    done = subprocess.run([sys.executable, "-c", PREDICT_MODULES, "predict", "--checkpoint", "runs/latest", "--data",
                           str(tmp_path / "new.txt"), "--out", "-"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 3  # the header and one row per text
    assert done.stderr.strip().endswith("loaded:"), done.stderr


def test_every_command_names_what_it_loads_first():
    from frostline.cli import app
    from frostline.cli.application import COMMAND_MODULES

    assert sorted(COMMAND_MODULES) == sorted(c.callback.__name__ for c in app.registered_commands)
