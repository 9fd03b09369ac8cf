"""The CLI: inspect and check print what the library computes; mistakes are one line, exit status 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from frostline.cli import app

runner = CliRunner()
RESNET = "tests.models:tiny_resnet"


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_inspect_tree_head_blocks():
    result = _run("inspect", RESNET)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "head: fc (torchvision; Linear 32 -> 5)" in out
    assert "blocks: 3 in <root> (layer1 .. layer3); stem: conv1, bn1" in out
    assert "block 2" in out and "train (1)" in out  # BatchNorm follows model mode before freezing


def test_inspect_freeze_preview_json():
    result = _run("inspect", RESNET, "--freeze", "all", "--freeze-except", "last:1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    plan = data["plan"]
    assert plan["head_kept"] == "fc"
    assert plan["pinned"] == ["conv1", "bn1", "layer1", "layer1.0", "layer1.1", "layer1.2", "layer2", "layer2.0",
                              "layer2.1", "layer2.2"]  # the frozen stem and stages, activations included
    assert plan["trainable"] == 16 * 32 * 9 + 64 + 32 * 5 + 5
    assert data["blocks"]["blocks"] == ["layer1", "layer2", "layer3"]


def test_inspect_shows_pinned_batchnorm():
    result = _run("inspect", RESNET, "--freeze", "stem")
    assert result.exit_code == 0, result.output
    assert "eval, pinned (1)" in result.output


def test_inspect_num_classes_and_depth():
    result = _run("inspect", RESNET, "--num-classes", "3", "--depth", "2")
    assert result.exit_code == 0, result.output
    assert "Linear 32 -> 3" in result.output and "layer1" in result.output


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("inspect", RESNET, "--freeze", "layer9"), "error: selector 'layer9' matches nothing"),
        (("inspect", "tests.models:nope"), "has no function 'nope'"),
        (("inspect", "tests.models:not_a_module"), "returned int, expected a torch.nn.Module"),
        (("inspect", "no_such_pkg:f"), "cannot import 'no_such_pkg'"),
        (("inspect", "resnet50"), "unknown model spec 'resnet50'"),
        (("inspect", "hf:./does-not-exist"), "hf model directory './does-not-exist' does not exist"),
        (("inspect", RESNET, "--freeze-except", "head"), "--freeze-except needs --freeze"),
        (("inspect", RESNET, "--freeze", "all", "--bn", "on"), "bn must be 'eval' or 'train', got 'on'"),
    ],
)
def test_user_mistakes_are_one_line(args, match):
    result = _run(*args)
    assert result.exit_code == 2
    assert match in result.output
    assert "Traceback" not in result.output


def test_check_reports_misuse_with_fix():
    result = _run("check", "tests.models:misused")
    assert result.exit_code == 1
    assert "module-requires-grad-attribute" in result.output and "parameter-attribute-typo" in result.output
    assert "fix: model.get_submodule('layer1').requires_grad_(False)" in result.output


def test_check_clean_and_nothing_trainable():
    assert _run("check", RESNET, "--freeze", "all").exit_code == 0
    result = _run("check", RESNET, "--freeze", "all", "--freeze", "head")
    assert result.exit_code == 1 and "nothing-trainable" in result.output


def test_the_process_ends_fast_but_runs_exit_handlers_and_flushes(tmp_path):
    import subprocess
    import sys

    marker = tmp_path / "atexit.txt"
    script = ("import atexit, sys, threading\n"
              "from frostline.cli.application import end_process\n"
              f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
              "sys.stdout.write('no newline yet'); sys.stderr.write('err too')\n"
              "if sys.argv[1] == 'thread':\n"
              "    threading.Thread(target=lambda: __import__('time').sleep(0.5)).start()\n"
              "end_process(int(sys.argv[2]))\n")
    for mode, code in (("plain", 3), ("thread", 0)):
        marker.unlink(missing_ok=True)
        done = subprocess.run([sys.executable, "-c", script, mode, str(code)], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == code, done.stderr
        assert done.stdout == "no newline yet" and done.stderr == "err too"
        assert marker.read_text() == "ran"  # exit handlers ran (train.log closed, temporary files removed)


def test_a_closed_output_pipe_does_not_stop_the_run(tmp_path, tiny_hf_dir):
    """`frostline train ... | head -3`: the reader goes away, the run still finishes and writes its folder."""
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import make_text_file

    data = make_text_file(tmp_path / "d.tsv", n=60)
    out = tmp_path / "run"
    exe = Path(sys.executable).parent / "frostline"
    p = subprocess.Popen([str(exe), "train", "--model", f"hf:{tiny_hf_dir}", "--data", str(data), "--text-column",
                          "1", "--label-column", "0", "--epochs", "2", "--out", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()  # nobody reads standard output any more: every write to it is a broken pipe
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 0, err
    assert (out / "metrics.json").is_file() and '"complete": true' in (out / "state.json").read_text()
