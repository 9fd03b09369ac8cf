"""Bad inputs: every user mistake is one clear error (one red line, exit status 2, no traceback), and what a run
can go on with is one warning."""

from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
import typer
import yaml
from rich.console import Console
from sklearn.model_selection import train_test_split
from typer.testing import CliRunner

from frostline.cli import app
from frostline.cli.application import friendly
from frostline.core.errors import FrostlineError
from frostline.data import from_tensors, limit, read_table, split
from frostline.data.batching import Encoded
from frostline.data.unlabelled import read_unlabelled
from frostline.reporting import plots
from frostline.reporting.page import findings_html, table
from frostline.reporting.terminal import class_table, confusion_table
from frostline.runs.config import build_config, load_yaml
from tests.conftest import make_image_folder

runner = CliRunner()
RESNET = "tests.models:tiny_resnet"


def _cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(result, match: str) -> None:
    assert result.exit_code == 2, result.output  # an uncaught exception would exit with 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and match in lines[0], result.output


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# 1. Files that are not UTF-8 text


def _latin(tmp_path: Path, name: str = "latin.csv") -> Path:
    p = tmp_path / name
    p.write_bytes("text,label\nhello,a\ncafé au lait,b\n".encode("latin-1"))
    return p


def test_latin1_csv_names_file_line_and_byte(tmp_path):
    with pytest.raises(FrostlineError, match=r"latin\.csv: not UTF-8 text: byte 0xe9 at line 3, byte 4 of the line "
                                             r"\(offset 22\).*re-save the file as UTF-8"):
        read_table(_latin(tmp_path))


def test_binary_and_utf16_files(tmp_path):
    png = tmp_path / "x.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10")
    with pytest.raises(FrostlineError, match=r"x\.csv: is a binary file.*expected a UTF-8 text file"):
        read_table(png)
    utf16 = tmp_path / "u.csv"
    utf16.write_text("text,label\nhi,a\n", encoding="utf-16")
    with pytest.raises(FrostlineError, match=r"u\.csv: is UTF-16 text; expected UTF-8"):
        read_table(utf16)


def test_utf8_with_byte_order_mark_reads_its_header(tmp_path):
    p = tmp_path / "bom.csv"
    p.write_bytes("text,label\nhé,a\nho,b\n".encode("utf-8-sig"))
    assert read_table(p).inputs == ["hé", "ho"]


def test_latin1_on_the_command_line(tmp_path):
    result = _cli("train", "--model", RESNET, "--data", _latin(tmp_path), "--out", tmp_path / "run")
    _one_line_error(result, "latin.csv: not UTF-8 text: byte 0xe9 at line 3")


@pytest.mark.parametrize("name", ["texts.txt", "texts.csv", "texts.jsonl"])
def test_unlabelled_reader_checks_utf8(tmp_path, name):
    p = tmp_path / name
    body = '{"text": "caf\xe9"}\n' if name.endswith("jsonl") else "text\ncaf\xe9\n"
    p.write_bytes(body.encode("latin-1"))
    with pytest.raises(FrostlineError, match=rf"{name}: not UTF-8 text: byte 0xe9 at line \d"):
        read_unlabelled(p)


# 2. JSON lines that are not JSON objects


@pytest.mark.parametrize(("line", "match"), [
    ("[1, 2]", r"line 2: expected a JSON object such as .*got a list: \[1, 2\]"),
    ("3", r"line 2: expected a JSON object .*got a number: 3"),
    ('"spam"', r"line 2: expected a JSON object .*got a string"),
    ("null", r"line 2: expected a JSON object .*got null"),
    ('{"text": "x", label: 1}', r"line 2: not valid JSON \(Expecting property name enclosed in double quotes"),
    ('{"text": "x", "label": [[1]]}', r"line 2: the label is list \[\[1\]\]; expected a string, a number, "
                                      r"true/false or a list of names \(multilabel\)"),
])
def test_jsonl_line_that_is_not_an_object(tmp_path, line, match):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a", "label": "x"}\n' + line + '\n{"text": "b", "label": "y"}\n')
    with pytest.raises(FrostlineError, match=r"d\.jsonl, " + match):
        read_table(p)


def test_jsonl_errors_in_predict_reader_and_cli(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a", "label": "x"}\n[1, 2]\n')
    with pytest.raises(FrostlineError, match=r"d\.jsonl, line 2: expected a JSON object"):
        read_unlabelled(p)
    _one_line_error(_cli("train", "--model", RESNET, "--data", p, "--out", tmp_path / "r"),
                    "d.jsonl, line 2: expected a JSON object")


# 3. JSON labels of mixed types


def _jsonl(tmp_path: Path, labels: list) -> Path:
    p = tmp_path / "data.jsonl"
    p.write_text("".join(json.dumps({"text": f"t{i}", "label": y}) + "\n" for i, y in enumerate(labels)))
    return p


def test_number_and_string_labels_are_one_class_with_a_warning(tmp_path):
    p = _jsonl(tmp_path, [0, "0", 0.0, 1, 1, 1])
    with pytest.warns(UserWarning, match=r"labels of mixed types in .*data\.jsonl: 0 \(int\), '0' \(str\), 0\.0 "
                                         r"\(float\) counted as one class '0'"):
        ds = read_table(p)
    assert ds.label_names == ["0", "1"] and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_booleans_beside_numbers_warn(tmp_path):
    with pytest.warns(UserWarning, match=r"false \(bool\) is a class of its own, not 1/0"):
        ds = read_table(_jsonl(tmp_path, [0, 1, False, 1]))
    assert ds.label_names == ["0", "1", "false"]


def test_pure_booleans_and_int_valued_floats_are_quiet(tmp_path, no_warnings):
    assert read_table(_jsonl(tmp_path, [True, False, True])).label_names == ["false", "true"]
    ds = read_table(_jsonl(tmp_path, [0, 0.0, 1, 1.0, 2.5, 2.5]), task="classification")
    assert ds.label_names == ["0", "1", "2.5"] and ds.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert read_table(_jsonl(tmp_path, [0, 0.0, 1, 1.0, 2.5, 2.5])).task == "regression"  # a fraction: a number


# 4. Stratification with classes too small to stratify


def _tensors(labels: list[int], names: list[str] | None = None):
    return from_tensors(torch.arange(len(labels) * 2, dtype=torch.float32).view(-1, 2), labels, names)


def test_a_single_sample_class_goes_to_train_and_the_rest_stays_stratified():
    y = [0] * 20 + [1] * 20 + [2]
    with pytest.warns(UserWarning, match=r"too few samples to stratify \(class '2': 1 sample, 1 in train\)"):
        s = split(_tensors(y), 0.2, 0.2, seed=0)
    assert s.train.class_counts() == {"0": 12, "1": 12, "2": 1}
    assert s.val.class_counts() == {"0": 4, "1": 4, "2": 0} and s.test.class_counts() == {"0": 4, "1": 4, "2": 0}


def test_splits_are_unchanged_when_every_class_has_two_samples(no_warnings):
    y = np.array([0] * 17 + [1] * 9 + [2] * 2)
    s = split(_tensors(y.tolist()), 0.15, 0.15, seed=3)
    rest, test = train_test_split(np.arange(len(y)), train_size=0.15, random_state=3, stratify=y)[::-1]
    assert s.test.ids.tolist() == sorted(test.tolist())
    assert sorted([*s.train.ids, *s.val.ids]) == sorted(rest.tolist())


def test_a_class_without_training_samples_warns():
    with pytest.warns(UserWarning, match=r"no training sample \(class 'c': 0 samples\): the model cannot learn it"):
        split(_tensors([0] * 10 + [1] * 10, ["a", "b", "c"]), 0.2, 0.2)


def test_too_little_data_to_stratify_is_one_error():
    with pytest.raises(FrostlineError, match=r"cannot split stratified: --test-frac 0.15 is 1 of 12 samples; .* "
                                             r"each of the 2 classes on both sides: use more data or change "
                                             r"--test-frac"):
        split(_tensors([0] * 6 + [1] * 6), 0.15, 0.15)
    with pytest.raises(FrostlineError, match=r"cannot split: --test-frac 0.15 is 0 of 6 samples, which leaves 0 on "
                                             r"one side and 6 on the other"):
        split(_tensors([0] * 3 + [1] * 3), 0.15, 0.15)


def test_limit_keeps_single_sample_classes():
    small = limit(_tensors([0] * 30 + [1] * 30 + [2]), 20, seed=0)
    assert small.class_counts()["2"] == 1 and len(small) == 20


# 5. from_tensors dtypes and labels


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_from_tensors_converts_floats_to_float32(dtype):
    ds = from_tensors(torch.randn(4, 3).to(dtype), [0, 1, 0, 1])
    assert ds.inputs.dtype == torch.float32 and ds.kind == "tensor"


def test_from_tensors_uint8_images():
    ds = from_tensors(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]))
    assert ds.kind == "image" and Encoded(ds).batch(np.array([0, 1])).inputs.dtype == torch.float32


def test_features_of_other_float_types_batch_as_float32():
    ds = _tensors([0, 1])
    ds.inputs = ds.inputs.double()  # e.g. a tensor handed to predict
    assert Encoded(ds).batch(np.array([0, 1])).inputs.dtype == torch.float32


@pytest.mark.parametrize(("x", "y", "match"), [
    (torch.zeros(4, 3, dtype=torch.int64), [0, 1, 0, 1], r"x is torch.int64 of shape \(4, 3\); expected float32 "
                                                          r"features .* or uint8 images of shape \(N, 3, H, W\)"),
    (torch.zeros(4, 8, dtype=torch.uint8), [0, 1, 0, 1], r"x is torch.uint8 of shape \(4, 8\); expected float32"),
    (torch.zeros(2, 2, dtype=torch.complex64), [0, 1], r"x is torch.complex64"),
    ([[0.0], [1.0]], [0, 1], r"x must be a tensor of shape \(N, ...\) with N >= 1 samples, got list"),
    (torch.zeros(0, 3), [], r"x must be a tensor .* got torch.float32 of shape \(0, 3\)"),
    (torch.zeros(4, 3), [0.0, 1.0, 0.0, 1.0], r"y is torch.float64 of shape \(4,\); expected integer class indices"),
    (torch.zeros(4, 3), torch.tensor([0.0, 1, 0, 1]), r"y is torch.float32"),
    (torch.zeros(2, 3), ["a", "b"], r"y holds <U1 values; expected integer class indices 0..K-1"),
    (torch.zeros(4, 3), [0, 1, 2, -1], r"y must hold class indices in 0..2 \(3 classes\), got -1..2"),
    (torch.zeros(2, 3), torch.eye(2, dtype=torch.long), r"x has 2 samples but y has 2 labels \(torch.int64 of shape "
                                                         r"\(2, 2\)\); expected one class index per sample"),
])
def test_from_tensors_errors(x, y, match):
    with pytest.raises(FrostlineError, match=match):
        from_tensors(x, y)


def test_from_tensors_labels_beyond_the_names():
    with pytest.raises(FrostlineError, match=r"y must hold class indices in 0..1 \(2 classes\), got 0..2"):
        from_tensors(torch.zeros(3, 2), [0, 1, 2], ["a", "b"])


# 6. Labels that look like markup: plots, HTML, terminal tables

ODD_LABELS = ["$5 off", "a_b^c", "100%", "<b>x</b>", "$\\frac{$", "[/b]"]


def test_plots_draw_any_label_literally():
    with matplotlib.rc_context({"text.parse_math": True, "text.usetex": True}):  # whatever the caller set
        png = plots.confusion_heatmap(np.eye(len(ODD_LABELS), dtype=int).tolist(), ODD_LABELS)
        pr = {"curves": {"pr": {"recall": [0, 1], "precision": [1, 0.5], "threshold": [0.5]}, "roc_auc": 0.5,
                         "average_precision": 0.5, "positive_rate": 0.5}, "positive": "$\\frac{$",
              "default": {"threshold": 0.5}}
        assert plots.pr_curve(pr).startswith(b"\x89PNG")
        assert matplotlib.rcParams["text.usetex"]  # the caller's settings are left alone
    assert png.startswith(b"\x89PNG")


def test_html_and_terminal_tables_escape_labels():
    page = table(["class"], [[n] for n in ODD_LABELS]) + findings_html(
        [{"severity": "warning", "code": "c", "message": "class <b>x</b> is bad", "fix": "-"}])
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    metrics = {"accuracy": 0.5, "n": 6, "loss": 1.0, "support": {n: 1 for n in ODD_LABELS},
               "confusion_matrix": np.eye(len(ODD_LABELS), dtype=int).tolist(),
               **{k: {"per_class": {n: 0.5 for n in ODD_LABELS}, "macro": 0.5, "weighted": 0.5}
                  for k in ("precision", "recall", "f1")}}
    console = Console(record=True, width=200)
    console.print(class_table(metrics))
    console.print(confusion_table(metrics, ODD_LABELS))
    text = console.export_text()
    assert all(text.count(n) == 3 for n in ODD_LABELS), text  # a class-table row, a column and a row


def test_train_with_odd_class_names_writes_the_report(tmp_path):
    root = Path(make_image_folder(tmp_path / "imgs", per_class=10, size=8))
    (root / "blue").rename(root / "$5 off")
    (root / "red").rename(root / "a_b^c <i>")
    result = _cli("train", "--model", RESNET, "--data", root, "--image-size", "8", "--epochs", "1",
                  "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "run" / "report.html").read_text()
    assert "$5 off" in page and "a_b^c &lt;i&gt;" in page and "<i>" not in page


# 7. Output places that cannot be written


def _image_args(tmp_path: Path) -> list[object]:
    data = make_image_folder(tmp_path / "imgs", per_class=10, size=8)
    return ["train", "--model", RESNET, "--data", data, "--image-size", "8", "--epochs", "1"]


def test_out_is_a_file_or_below_a_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = _image_args(tmp_path)
    result = _cli(*args, "--out", afile)
    assert result.exit_code == 2 and "afile" in result.output and "Traceback" not in result.output
    _one_line_error(_cli(*args, "--out", afile / "run"), f"--out '{afile / 'run'}' cannot be made: '{afile}' is a "
                                                         "file, not a folder")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_out_in_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        _one_line_error(_cli(*_image_args(tmp_path), "--out", ro / "run"), "no permission to write in")
    finally:
        ro.chmod(0o700)


def _raising(exc: BaseException):
    @friendly
    def command(out: str = "runs/x") -> None:
        raise exc

    return command


@pytest.mark.parametrize(("exc", "line"), [
    (OSError(errno.ENOSPC, "No space left on device"),
     "error: cannot write: No space left on device (disk full; free space and run the same command again to resume)"),
    (OSError(errno.ENOSPC, "No space left on device", "runs/x/model.safetensors"),
     "error: cannot write runs/x/model.safetensors: No space left on device (disk full; free space"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/run"),
     "error: cannot write /ro/run: Permission denied (no permission; choose a place you can write to"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "a/file/run"),
     "error: cannot write a/file/run: Not a directory (a file is in the way where a folder is needed"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/run"),
     "error: cannot write /mnt/run: Read-only file system (a read-only file system"),
    (RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)"),
     "error: cannot write runs/x: No space left on device (disk full; free space and run the same command again"),
])
def test_friendly_turns_file_errors_into_one_line(capsys, exc, line):
    with pytest.raises(typer.Exit) as info:
        _raising(exc)(out="runs/x")
    assert info.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1 and "Traceback" not in err


def test_friendly_keeps_tracebacks_of_bugs_and_shows_warnings_as_lines(capsys):
    with pytest.raises(ConnectionResetError):
        _raising(ConnectionResetError(errno.ECONNRESET, "reset"))()
    with pytest.raises(KeyError):
        _raising(KeyError("bug"))()

    @friendly
    def warns() -> None:
        warnings.warn("class 'x' has 1 sample [/b]", UserWarning, stacklevel=1)

    warns()
    assert capsys.readouterr().err == "warning: class 'x' has 1 sample [/b]\n"


# 8. Configuration values of the wrong type


def _config(tmp_path: Path, text: str):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return build_config(load_yaml(p), {}).validate()


@pytest.mark.parametrize(("text", "match"), [
    ("epochs: true", r"--epochs must be an integer, got True \(a boolean\)"),
    ("epochs: '3'", r"--epochs must be an integer, got '3' \(a string\)"),
    ('dedup: "false"', r"--dedup must be true or false, got 'false' \(a string\)"),
    ("lr: abc", r"--lr must be a number, got 'abc' \(a string\)"),
    ("precision: fp16", r"--precision must be one of 32-true, .* got 'fp16'; did you mean 16-mixed\?"),
    ("strategy: 5", r"--strategy must be a string, got 5 \(an integer\)"),
    ("patience: [1]", r"--patience must be an integer, got \[1\] \(a list\)"),
])
def test_config_values_of_the_wrong_type(tmp_path, text, match):
    with pytest.raises(FrostlineError, match=match):
        _config(tmp_path, text)


def test_config_numbers_written_as_strings_and_nulls(tmp_path):
    assert yaml.safe_load("lr: 1e-3") == {"lr": "1e-3"}  # YAML 1.1: a string
    cfg = _config(tmp_path, "lr: 1e-3\nhead_lr: '2e-2'\npatience: null\nclip: null\n")
    assert (cfg.lr, cfg.head_lr, cfg.patience, cfg.clip) == (1e-3, 2e-2, None, None)


def test_config_type_error_on_the_command_line(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: true\n")
    result = _cli("train", "--model", RESNET, "--data", tmp_path, "--config", tmp_path / "c.yaml",
                  "--out", tmp_path / "r")
    _one_line_error(result, "--epochs must be an integer, got True (a boolean)")


def test_config_file_not_utf8(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_bytes("model: caf\xe9\n".encode("latin-1"))
    with pytest.raises(FrostlineError, match=r"c\.yaml: not UTF-8 text: byte 0xe9 at line 1"):
        load_yaml(p)


def test_out_without_write_permission_even_as_root(tmp_path, monkeypatch):
    monkeypatch.setattr("frostline.runs.config.os.access", lambda path, mode: False)
    _one_line_error(_cli(*_image_args(tmp_path), "--out", tmp_path / "ro" / "run"),
                    f"--out '{tmp_path / 'ro' / 'run'}' cannot be made: no permission to write in '{tmp_path}'")


def test_cli_console_prints_invalid_markup_as_written():
    from frostline.cli.application import LiteralSafeConsole

    console = LiteralSafeConsole(record=True, width=100)
    console.print("predicted '[/b]' for every sample")  # a class named [/b] in a finding
    assert console.export_text() == "predicted '[/b]' for every sample\n"
