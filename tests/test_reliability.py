"""What a run folder promises: it never makes frostline run code, results are never written over, damaged files are
clear errors, a non-finite loss stops the run, files honour the umask, and a run stores only what training
changed (docs/reliability.md lists each promise with its test)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import frostline as fl
from frostline.cli import app
from frostline.runs.config import RunConfig
from frostline.runs.folder import state_checksum
from frostline.runs.training import train
from frostline.training import NonFiniteLoss
from tests.conftest import make_text_file

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def quiet(_s: str) -> None:
    pass


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_hf_dir):
    """A finished partial:1 run on the tiny BERT (shared, never modified by the tests: they copy it)."""
    tmp = tmp_path_factory.mktemp("rel")
    data = make_text_file(tmp / "d.tsv", n=80)
    cfg = RunConfig(model=f"hf:{tiny_hf_dir}", data=data, text_column="1", label_column="0", strategy="partial:1",
                    epochs=2, batch_size=8, lr=1e-3, out=str(tmp / "run"))
    train(cfg, echo=quiet)
    return cfg


def _copy(run_dir: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, dest)
    return dest


def test_run_folder_code_is_never_imported(tmp_path, run, monkeypatch):
    folder = _copy(Path(run.out), tmp_path / "downloaded")
    marker = tmp_path / "pwned"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\nimport torch\ndef make():\n"
                                    "    return torch.nn.Linear(2, 2)\n")
    state = json.loads((folder / "state.json").read_text())
    state["config"]["model"] = "evil:make"  # a crafted state naming code, its checksum recomputed
    (folder / "state.json").write_text(json.dumps({**state, "state_sha256": state_checksum(state)}))
    monkeypatch.chdir(folder)  # evaluated from inside the folder, where evil.py is importable by name
    data = make_text_file(tmp_path / "new.tsv", n=20, seed=3)
    for cmd in (["evaluate", "--checkpoint", ".", "--data", data],
                ["predict", "--checkpoint", ".", "--data", data, "--text-column", "1"]):
        result = _run(*cmd)
        assert result.exit_code == 2 and "never imports code named by a run folder" in result.output, result.output
    assert not marker.exists() and "evil" not in sys.modules
    assert str(folder) not in sys.path and os.getcwd() not in sys.path


def test_file_spec_in_a_run_folder_is_not_run_either(tmp_path, run):
    folder = _copy(Path(run.out), tmp_path / "r")
    marker = tmp_path / "pwned"
    (folder / "m.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    state = json.loads((folder / "state.json").read_text())
    state["config"]["model"] = f"{folder / 'm.py'}:make"
    (folder / "state.json").write_text(json.dumps({**state, "state_sha256": state_checksum(state)}))
    with pytest.raises(fl.FrostlineError, match=r"built by a function .*Pass the --model you trained it with"):
        fl.load_run(folder)  # the folder's own path is never offered as the flag to pass
    assert not marker.exists()


def test_results_are_never_written_over(tmp_path, run):
    data = make_text_file(tmp_path / "new.tsv", n=20, seed=3)
    before = {p.name: p.read_bytes() for p in Path(run.out).iterdir() if p.is_file()}
    result = _run("evaluate", "--checkpoint", run.out, "--data", data, "--out", run.out)
    assert result.exit_code == 2 and "already holds another run's results" in result.output
    result = _run("compare", "--model", run.model, "--data", run.data, "--text-column", "1", "--label-column", "0",
                  "--strategies", "linear-probe", "--epochs", "1", "--out", run.out)
    assert result.exit_code == 2 and "holds a single run" in result.output
    assert {p.name: p.read_bytes() for p in Path(run.out).iterdir() if p.is_file()} == before
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own file")
    result = _run("train", "--model", run.model, "--data", run.data, "--text-column", "1", "--label-column", "0",
                  "--epochs", "1", "--out", mine)
    assert result.exit_code == 2 and "files frostline did not write (notes.txt)" in result.output
    result = _run("evaluate", "--checkpoint", run.out, "--data", data, "--out", mine)
    assert result.exit_code == 2 and "notes.txt" in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_files_honour_the_umask(tmp_path, run):
    from frostline.core import atomic

    mask = os.umask(0)
    os.umask(mask)  # the umask the run was written under (whatever this machine's is)
    for name in ("report.html", "metrics.json", "model.safetensors", "state.json"):
        assert (Path(run.out) / name).stat().st_mode & 0o777 == 0o666 & ~mask, name  # not mkstemp's 0o600
    old = os.umask(0o027)
    try:
        assert atomic.write_text(tmp_path / "x.txt", "x").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_damaged_results_are_clear_errors_not_silently_used(tmp_path, run):
    folder = _copy(Path(run.out), tmp_path / "r")
    raw = bytearray((folder / "model.safetensors").read_bytes())
    raw[-3] ^= 0x01  # one bit flipped in a weight
    (folder / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(fl.FrostlineError, match=r"model.safetensors is damaged or was changed"):
        fl.load_run(folder)
    with pytest.raises(fl.FrostlineError, match=r"model.safetensors is damaged or was changed"):
        train(RunConfig(**{**run.to_dict(), "out": str(folder)}), echo=quiet)  # not "reused" without a word
    (folder / "model.safetensors").write_bytes(bytes(raw[: len(raw) // 2]))  # truncated
    with pytest.raises(fl.FrostlineError, match="damaged or was changed"):
        fl.load_run(folder)
    (folder / "state.json").write_text("{not json")
    result = _run("evaluate", "--checkpoint", folder, "--data", run.data)
    assert result.exit_code == 2 and "cannot read state.json" in result.output and "Traceback" not in result.output
    (folder / "state.json").write_text(json.dumps({"schema": "frostline.state/1", "complete": True,
                                                   "config": {"epochs": "three"}, "label_names": ["a", "b"]}))
    with pytest.raises(fl.FrostlineError, match=r"state.json is damaged: --epochs must be an integer"):
        fl.load_run(folder)  # a state of the first format (no checksum) is still checked value by value


def test_an_edited_or_bit_flipped_state_is_refused(tmp_path, run):
    folder = _copy(Path(run.out), tmp_path / "r")
    good = (folder / "state.json").read_text()
    for old, new in (('"ham"', '"iam"'), ('"partial:1"', '"qartial:1"'), ('"complete": true', '"complete": false')):
        assert old in good
        (folder / "state.json").write_text(good.replace(old, new, 1))  # a flipped bit, or a hand edit
        with pytest.raises(fl.FrostlineError, match=r"state.json is damaged or was edited"):
            fl.load_run(folder)
    (folder / "state.json").write_text(good)
    assert fl.load_run(folder).label_names == ["ham", "spam"]


def test_a_run_stores_only_what_training_changed(run, tiny_hf_dir):
    saved = load_file(str(Path(run.out) / "model.safetensors"))
    full = fl.load_run(run.out).model.state_dict()
    assert set(saved) < set(full)  # embeddings and frozen blocks come from the base model
    assert all(k.startswith(("bert.encoder.layer.3.", "bert.pooler.", "classifier.")) for k in saved), sorted(saved)
    state = json.loads((Path(run.out) / "state.json").read_text())
    assert len(state["base"]["sha256"]) == 64 and set(state["files"]) >= {"model.safetensors", "metrics.json"}


def test_a_different_base_model_is_refused(tmp_path, run, tiny_hf_dir):
    import shutil

    from transformers import BertForSequenceClassification

    other = tmp_path / "other_base"
    shutil.copytree(tiny_hf_dir, other)
    model = BertForSequenceClassification.from_pretrained(other)
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[0, 0] += 1.0
    model.save_pretrained(other)
    with pytest.raises(fl.FrostlineError, match=r"is not the base model run .* was trained from"):
        fl.load_run(run.out, model=f"hf:{other}")


def test_non_finite_loss_stops_at_once_with_a_clear_error(tmp_path, tiny_hf_dir):
    data = make_text_file(tmp_path / "d.tsv", n=60)
    out = tmp_path / "nan"
    result = _run("train", "--model", f"hf:{tiny_hf_dir}", "--data", data, "--text-column", "1", "--label-column",
                  "0", "--strategy", "full", "--epochs", "3", "--lr", "1e6", "--head-lr", "1e6", "--clip", "1e9",
                  "--optimizer", "sgd", "--out", out)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "training loss is nan" in result.output or "training loss is inf" in result.output
    assert "in epoch " in result.output and "learning rate" in result.output and "lower --lr" in result.output
    state = (out / "state.json").read_text()
    assert "NaN" not in state and "Infinity" not in state and json.loads(state)["complete"] is False
    assert not (out / "metrics.json").exists()


def test_library_fit_raises_on_non_finite_loss(tiny_hf_dir, tmp_path):
    cfg = RunConfig(model=f"hf:{tiny_hf_dir}", data=make_text_file(tmp_path / "d.tsv", n=40), text_column="1",
                    label_column="0", strategy="full", epochs=3, lr=1e6, head_lr=1e6, clip=None, optimizer="sgd",
                    patience=None)
    prepared = fl.prepare(cfg, echo=quiet)
    with pytest.raises(NonFiniteLoss, match=r"in epoch \d at step \d+: training stopped"):
        fl.fit(prepared.loaded.model, prepared.train, prepared.val, fl.parse_strategy("full", prepared.loaded.model),
               cfg.train_config())


def test_damaged_checkpoint_falls_back_to_the_one_before(tmp_path, tiny_hf_dir):
    from frostline.core import atomic

    data = make_text_file(tmp_path / "d.tsv", n=60)
    cfg = RunConfig(model=f"hf:{tiny_hf_dir}", data=data, text_column="1", label_column="0", strategy="full",
                    epochs=3, batch_size=16, lr=1e-3, out=str(tmp_path / "r"))
    whole = train(RunConfig(**{**cfg.to_dict(), "out": str(tmp_path / "whole")}), echo=quiet)

    def stop(name: str) -> None:
        if name == "epoch-0002:pruned":
            raise KeyboardInterrupt

    atomic.fault_hook = stop
    try:
        with pytest.raises(KeyboardInterrupt):
            train(cfg, echo=quiet)
    finally:
        atomic.fault_hook = None
    last = tmp_path / "r" / "checkpoints" / "epoch-0002" / "optimizer.pt"
    last.write_bytes(last.read_bytes()[:-10])  # a damaged newest checkpoint
    notes: list[str] = []
    resumed = train(cfg, echo=notes.append)
    assert any("checkpoint epoch-0002 is damaged (optimizer.pt does not match its recorded SHA-256)" in n
               for n in notes), notes
    assert resumed.resumed_from == 1
    for f in ("model.safetensors", "predictions.csv"):
        assert (tmp_path / "r" / f).read_bytes() == (whole.out / f).read_bytes()


def test_float16_precision_on_cpu_is_an_error_not_a_silent_switch(tmp_path, tiny_hf_dir):
    result = _run("train", "--model", f"hf:{tiny_hf_dir}", "--data", make_text_file(tmp_path / "d.tsv"),
                  "--precision", "16-mixed", "--accelerator", "cpu", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "--precision 16-mixed needs a CUDA GPU" in result.output


def test_an_image_folder_given_to_a_text_model_is_one_line(tmp_path, tiny_hf_dir):
    from tests.conftest import make_image_folder

    folder = make_image_folder(tmp_path / "imgs", per_class=12)
    result = _run("train", "--model", f"hf:{tiny_hf_dir}", "--data", folder, "--out", tmp_path / "r")
    assert result.exit_code == 2 and "holds images but model" in result.output and "is a text model" in result.output
    assert not (tmp_path / "r").exists()  # nothing written for a run that could not start


def test_train_never_writes_into_a_folder_that_holds_no_run(tmp_path, run):
    args = ["train", "--model", run.model, "--data", run.data, "--text-column", "1", "--label-column", "0",
            "--epochs", "1"]
    ev = tmp_path / "ev"
    assert _run("evaluate", "--checkpoint", run.out, "--data", run.data, "--out", ev).exit_code == 0
    own = {"cfg": {"config.yaml": "# my notes\nepochs: 1\n"}, "ck": {"checkpoints/my_important.ckpt": "x"},
           "hidden": {".draft.tmp": "x", ".tmpABCDEF": "y"}}
    for name, files in own.items():
        for rel, text in files.items():
            (tmp_path / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / rel).write_text(text)
    for folder in [ev, *(tmp_path / n for n in own)]:
        before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        result = _run(*args, "--out", folder)
        assert result.exit_code == 2 and "frostline does not write over them" in result.output, (folder, result.output)
        assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    mine = tmp_path / "cmp"
    mine.mkdir()
    (mine / "report.html").write_text("my report")
    result = _run("compare", *args[1:], "--strategies", "linear-probe", "--out", mine)
    assert result.exit_code == 2 and (mine / "report.html").read_text() == "my report"


def test_more_bad_inputs_are_one_line(tmp_path, run, tiny_hf_dir):
    import shutil

    data = make_text_file(tmp_path / "d.tsv", n=20)
    for extra, match in ((["--seed", "-1"], "--seed must be an integer in"),
                         (["--text-column", "0", "--label-column", "0"], "are the same column")):
        result = _run("train", "--model", run.model, "--data", data, *extra, "--out", tmp_path / "x")
        assert result.exit_code == 2 and match in result.output, result.output
    result = _run("predict", "--checkpoint", run.out, "--data", data, "--text-column", "1", "--batch-size", "0")
    assert result.exit_code == 2 and "--batch-size must be an integer >= 1" in result.output
    broken = tmp_path / "broken"
    shutil.copytree(tiny_hf_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    result = _run("inspect", f"hf:{broken}")
    assert result.exit_code == 2 and "the weights file is damaged, truncated" in result.output, result.output
    folder = _copy(Path(run.out), tmp_path / "r")
    (folder / "model.safetensors").unlink()
    with pytest.raises(fl.FrostlineError, match=r"model\.safetensors is missing from this finished run"):
        fl.load_run(folder)


def test_non_finite_numbers_in_options_are_one_line(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("lr: .inf\n")
    result = _run("train", "--config", conf, "--data", make_text_file(tmp_path / "d.tsv"), "--out", tmp_path / "r")
    assert result.exit_code == 2 and "--lr must be a finite number, got inf" in result.output, result.output
