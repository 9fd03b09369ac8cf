"""Cases of the hostile catalogue (15/18): rows dropped only with a word, plain Sequential models, constant targets,
huge labels, YAML bombs, two processes on one folder, links in a run folder, NaN inputs, Ctrl-C at any instant."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import frostline as fl
from frostline.cli import app
from frostline.core.errors import FrostlineError
from tests.conftest import make_text_file

runner = CliRunner()
SEQ_MODELS = '''
from torch import nn
def one():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 2))
def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 12, 16), nn.ReLU(), nn.Linear(16, 2))
'''


def _train(tmp_path: Path, data: str, *extra: str, model: str | None = None, name: str = "r"):
    args = ["train", "--data", data, "--epochs", "1", "--batch-size", "8", "--out", str(tmp_path / name), *extra]
    return runner.invoke(app, [*args, "--model", model] if model else args)


def _bad_rows_file(tmp_path: Path) -> str:
    lines = ["text\tlabel"] + [f"{'free cash prize' if i % 3 else 'see you at lunch'} {i}\t{'spam' if i % 3 else 'ham'}"
                               for i in range(40)]
    lines[4] = "\tspam"  # row 3: an empty text
    lines[8] = "hello there\t"  # row 7: an empty label
    lines[12] = "only one column"  # row 11: too few columns
    path = tmp_path / "bad.tsv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_dropped_rows_are_said_in_the_terminal_the_log_the_metrics_and_the_report(tmp_path, tiny_hf_dir):
    data = _bad_rows_file(tmp_path)
    result = _train(tmp_path, data, "--strategy", "linear-probe", model=f"hf:{tiny_hf_dir}")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    line = (f"3 of 40 rows of {data} were dropped: 1 with an empty text (row 3); 1 with fewer than 2 columns "
            "(row 11); 1 with an empty label (row 7)")
    assert f"warning: {line}" in text
    run = tmp_path / "r"
    assert line in (run / "train.log").read_text()
    m = json.loads((run / "metrics.json").read_text())
    assert m["data"]["skipped_rows"] == 3
    assert m["data"]["dropped"]["data"]["reasons"] == {"with an empty text": ["row 3"],
                                                       "with fewer than 2 columns": ["row 11"],
                                                       "with an empty label": ["row 7"]}
    assert "1 with an empty label (row 7)" in (run / "report.html").read_text()
    stop = _train(tmp_path, data, "--strategy", "linear-probe", "--on-bad-rows", "error", model=f"hf:{tiny_hf_dir}",
                  name="r2")
    assert stop.exit_code == 2 and "--on-bad-rows error: 3 of 40 rows" in " ".join(stop.output.split())
    assert not (tmp_path / "r2").exists()


def test_empty_and_nan_regression_targets_are_dropped_alike(tmp_path):
    rows = ["text\tscore"] + [f"word {i}\t{i / 7:.3f}" for i in range(30)]
    rows[3], rows[5], rows[9] = "word a\t", "word b\tnan", "word c\tNaN"
    path = tmp_path / "reg.tsv"
    path.write_text("\n".join(rows) + "\n")
    ds = fl.read_table(path, "text", "score")
    assert ds.task == "regression" and len(ds) == 27
    assert ds.dropped == {"with an empty or non-finite (NaN, inf) target": ["row 2", "row 4", "row 8"]}
    jsonl = tmp_path / "reg.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": f"w {i}", "label": i / 3}) for i in range(12))
                     + '\n{"text": "x", "label": NaN}\n{"text": "y", "label": null}\n')
    ds = fl.read_table(jsonl)
    assert len(ds) == 12 and ds.dropped == {"with an empty or non-finite (NaN, inf) target": ["row 12", "row 13"]}


def test_an_unreadable_picture_is_a_dropped_row_with_its_name(tmp_path):
    from tests.conftest import make_image_folder

    root = Path(make_image_folder(tmp_path / "pics", per_class=6))
    data = (root / "red" / "0.png").read_bytes()
    (root / "red" / "broken.png").write_bytes(data[: len(data) // 2])  # a truncated PNG
    ds = fl.read_image_folder(root, 16)
    assert list(ds.dropped.values()) == [[os.path.join("red", "broken.png")]]
    from frostline.data.dataset import dropped_summary

    assert dropped_summary(ds).startswith(f"1 of 13 pictures in {root} were dropped: 1 unreadable pictures")


def test_read_table_on_a_folder_says_it_is_a_folder(tmp_path):
    with pytest.raises(FrostlineError, match=r"is a folder; read_table reads one CSV, TSV or JSONL file"):
        fl.read_table(tmp_path)


@pytest.mark.parametrize("factory", ["one", "mlp"])
def test_a_plain_sequential_trains_with_every_kind_of_strategy(tmp_path, factory):
    from tests.conftest import make_image_folder

    (tmp_path / "seq.py").write_text(SEQ_MODELS)
    data = make_image_folder(tmp_path / "pics", per_class=8)
    for strategy in ("linear-probe", "partial:1", "full"):
        result = _train(tmp_path, data, "--strategy", strategy, "--image-size", "12",
                        model=f"{tmp_path / 'seq.py'}:{factory}", name=f"{factory}-{strategy}")
        assert result.exit_code == 0, (strategy, result.output)
    loaded = fl.load_model(f"{tmp_path / 'seq.py'}:{factory}")
    blocks = fl.discover_blocks(loaded.model)
    assert blocks.blocks == (("0",) if factory == "one" else ("1",))
    shown = runner.invoke(app, ["inspect", f"{tmp_path / 'seq.py'}:{factory}"], env={"COLUMNS": "160"})
    assert "block 0" in shown.output and "blocks: 1 in <root>" in shown.output


def test_a_constant_multilabel_target_is_an_error_finding_and_never_good():
    from frostline.evaluation.task_audit import constant_target

    same = np.array([[1, 0, 1]] * 8, dtype=np.uint8)
    found = constant_target("multilabel", same, ["a", "b", "c"])
    assert [f.code for f in found] == ["constant-target"] and found[0].severity == "error"
    assert "every one of the 8 training rows has the same labels ('a', 'c'; never 'b')" in found[0].message
    varied = same.copy()
    varied[0, 1] = 1
    found = constant_target("multilabel", varied, ["a", "b", "c"])
    assert [f.code for f in found] == ["constant-labels"] and "'a', 'c' are on in every one" in found[0].message
    assert constant_target("regression", np.full(5, 2.5), ["y"])[0].numbers == {"value": 2.5, "rows": 5}


def test_a_run_on_a_constant_multilabel_column_is_not_called_good(tmp_path, tiny_hf_dir):
    path = tmp_path / "ml.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"free cash {i}", "label": ["x", "y"]}) for i in range(40)) + "\n")
    result = _train(tmp_path, str(path), "--strategy", "linear-probe", "--task", "multilabel",
                    model=f"hf:{tiny_hf_dir}")
    assert result.exit_code == 0, result.output
    codes = [d["code"] for d in json.loads((tmp_path / "r" / "metrics.json").read_text())["diagnoses"]]
    assert "constant-target" in codes and "verdict-good" not in codes


def test_a_very_long_label_is_shortened_in_plots_and_tables_and_kept_whole_in_json(tmp_path, tiny_hf_dir):
    long = "x" * 20_000
    lines = ["text\tlabel"] + [f"{'free cash' if i % 2 else 'see you'} {i}\t{long if i % 2 else 'short'}"
                               for i in range(30)]
    path = tmp_path / "long.tsv"
    path.write_text("\n".join(lines) + "\n")
    result = _train(tmp_path, str(path), "--strategy", "linear-probe", model=f"hf:{tiny_hf_dir}")
    assert result.exit_code == 0, result.output[-2000:]
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert long in m["labels"]
    report = (tmp_path / "r" / "report.html").read_text()
    assert "x" * 47 + "…" in report and long not in report


def test_a_report_that_fails_to_draw_never_loses_the_finished_run(tmp_path, tiny_hf_dir, monkeypatch):
    from frostline.reporting import html

    def boom(*_a, **_k):
        raise MemoryError("drawing needed too much memory")

    monkeypatch.setattr(html, "run_report", boom)
    data = make_text_file(tmp_path / "d.tsv", n=40)
    result = _train(tmp_path, data, "--text-column", "1", "--label-column", "0", "--strategy", "linear-probe",
                    model=f"hf:{tiny_hf_dir}")
    assert result.exit_code == 0, result.output
    assert "report.html could not be drawn (MemoryError: drawing needed too much memory)" in result.output
    run = tmp_path / "r"
    assert json.loads((run / "state.json").read_text())["complete"] is True
    assert "could not be drawn" in (run / "report.html").read_text()
    assert fl.load_run(run).predict(["free cash"]).probs.shape == (1, 2)


def test_yaml_aliases_are_refused_before_any_value_is_used(tmp_path):
    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
    bomb.append("epochs: *i")
    conf = tmp_path / "bomb.yaml"
    conf.write_text("\n".join(bomb) + "\n")
    t0 = time.perf_counter()
    result = runner.invoke(app, ["train", "--config", str(conf), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "do not accept aliases" in result.output
    assert time.perf_counter() - t0 < 5 and len(result.output) < 1000


def test_an_error_never_echoes_a_huge_value_whole():
    err = FrostlineError("bad value " + "y" * 10_000_000)
    assert len(str(err)) < 2100 and "characters not shown" in str(err)
    from frostline.runs.config import RunConfig

    with pytest.raises(FrostlineError) as info:
        RunConfig(optimizer="z" * 100_000).validate()
    assert len(str(info.value)) < 400 and "100,002 characters" in str(info.value)


def test_a_link_in_a_run_folder_is_refused_never_written_through(tmp_path, tiny_hf_dir):
    data = make_text_file(tmp_path / "d.tsv", n=40)
    outside = tmp_path / "outside.txt"
    outside.write_text("mine\n")
    run = tmp_path / "r"
    run.mkdir()
    (run / "train.log").symlink_to(outside)
    result = _train(tmp_path, data, "--text-column", "1", "--label-column", "0", "--strategy", "linear-probe",
                    model=f"hf:{tiny_hf_dir}")
    assert result.exit_code == 2 and "is a symbolic link" in result.output
    assert outside.read_text() == "mine\n"
    from frostline.runs.folder import RunFolder

    (run / "train.log").unlink()
    (run / "train.log").symlink_to(outside)
    with pytest.raises(FrostlineError, match="is a symbolic link"):
        RunFolder(run).log("a line")
    assert outside.read_text() == "mine\n"


def test_nan_inputs_are_named_before_training_not_blamed_on_the_learning_rate():
    x = torch.randn(20, 4)
    x[3, 1] = float("nan")
    x[7, 0] = float("inf")
    ds = fl.from_tensors(x, (x[:, 0] > 0).long().clamp(0, 1), ["a", "b"])
    from frostline.data import Encoded

    with pytest.raises(FrostlineError, match=r"inputs of 2 sample\(s\) hold NaN or infinite values \(rows 3, 7\)"):
        Encoded(ds)


def _cli_process(tmp_path: Path, *args: str) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "frostline"
    return subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})


@pytest.mark.parametrize("after", [0.15, 0.3, 0.7, 1.2])
def test_ctrl_c_at_any_instant_is_one_line_and_status_130(tmp_path, after):
    data = make_text_file(tmp_path / "d.tsv", n=40)
    proc = _cli_process(tmp_path, "train", "--data", data, "--text-column", "1", "--label-column", "0",
                        "--strategy", "linear-probe", "--out", str(tmp_path / "r"))
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "RecursionError" not in err, err
    assert len([line for line in err.splitlines() if line.startswith("interrupted")]) == 1, err


def test_a_second_process_on_the_same_run_folder_is_refused_with_the_first_ones_pid(tmp_path):
    from frostline.core.lock import folder_lock

    out = tmp_path / "r"
    script = (f"import time; from frostline.core.lock import folder_lock\n"
              f"with folder_lock({str(out)!r}, 'trains a run'):\n    print('held', flush=True); time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FrostlineError, match=rf"is in use: frostline process {holder.pid} trains a run there"), \
                folder_lock(out, "trains a run"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(out, "trains a run"):  # kill -9 left no stale lock
        pass
    fresh = tmp_path / "fresh"
    with folder_lock(fresh, "trains a run"):
        assert fresh.is_dir()
    assert not fresh.exists()  # made for the lock and still empty: removed again
