"""Distributed runs: 2 CPU processes (gloo) launched by ``frostline train --devices 2`` on a tiny model, against one
process with the same global batch: same history, same weights, frozen tensors verified on every rank, only
rank 0 writing; and the pieces (shards of a batch, gathering) on their own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import frostline as fl
from frostline.data.batching import Batch
from frostline.training.distributed import Dist, shard
from tests.conftest import make_text_file, make_tiny_hf_dir

FROSTLINE = str(Path(sys.executable).parent / "frostline")
#: float32 all-reduce adds the two halves' gradients in another order than one process does
WEIGHT_ATOL = 1e-4


@pytest.fixture(scope="module")
def no_dropout_model(tmp_path_factory) -> str:
    """A tiny BERT without dropout, so that two processes and one draw nothing differently."""
    path = tmp_path_factory.mktemp("tiny_bert_nodrop")
    make_tiny_hf_dir(path)
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(cfg))
    return str(path)


def _train(args: list[str], devices: int, out: Path) -> subprocess.CompletedProcess:
    cmd = [FROSTLINE, "train", *args, "--devices", str(devices), "--accelerator", "cpu", "--precision", "32-true",
           "--out", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("strategy", ["full", "partial:1", "gradual"])
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path, no_dropout_model, strategy):
    data = make_text_file(tmp_path / "d.tsv", n=90)
    args = ["--model", f"hf:{no_dropout_model}", "--data", data, "--text-column", "1", "--label-column", "0",
            "--strategy", strategy, "--epochs", "3", "--batch-size", "8", "--lr", "3e-3", "--patience", "5"]
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = _train(args, 1, one)
    r2 = _train(args, 2, two)
    assert r1.returncode == 0, r1.stderr[-3000:]
    assert r2.returncode == 0, r2.stderr[-3000:]
    assert r2.stdout.count("run folder:") == 1  # rank 1 prints nothing
    m1, m2 = (json.loads((p / "metrics.json").read_text()) for p in (one, two))
    for h1, h2 in zip(m1["history"], m2["history"], strict=True):
        assert h2["train"]["loss"] == pytest.approx(h1["train"]["loss"], rel=1e-5)
        assert h2["val"]["loss"] == pytest.approx(h1["val"]["loss"], rel=1e-5)
        assert h2["val"]["accuracy"] == h1["val"]["accuracy"]
        assert h1.get("verified_ranks") is None and len(h2["verified_ranks"]) == 2
        assert h2["verified_ranks"][0] == h2["verified_ranks"][1] == h1["frozen_verified"] == h2["frozen_verified"]
    if strategy != "full":  # the frozen part was checksummed and verified on both ranks
        assert sum(h["verified_ranks"][1] for h in m2["history"]) > 0
    assert m2["test"]["accuracy"] == m1["test"]["accuracy"] and m2["best_epoch"] == m1["best_epoch"]
    w1, w2 = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert sorted(w1) == sorted(w2)
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) <= WEIGHT_ATOL
    assert not list(two.glob("**/*.tmp*")) and not (two / "checkpoints").exists()


def test_a_distributed_run_resumes_and_reuses_on_another_number_of_processes(tmp_path, no_dropout_model):
    """The number of processes is not part of a run's identity: a finished 2-process run is reused by one."""
    data = make_text_file(tmp_path / "d.tsv", n=60)
    args = ["--model", f"hf:{no_dropout_model}", "--data", data, "--text-column", "1", "--label-column", "0",
            "--strategy", "partial:1", "--epochs", "2", "--batch-size", "8"]
    r2 = _train(args, 2, tmp_path / "run")
    assert r2.returncode == 0, r2.stderr[-3000:]
    r1 = _train(args, 1, tmp_path / "run")
    assert r1.returncode == 0 and "run already complete" in " ".join(r1.stdout.split()), r1.stderr[-2000:]


def test_bad_distributed_options_are_clear_errors():
    with pytest.raises(fl.FrostlineError, match="--devices must be a whole number >= 1, got 0"):
        fl.RunConfig(data=None, devices=0).validate()
    with pytest.raises(fl.FrostlineError, match="--distributed must be one of auto, ddp, fsdp, got 'dp'"):
        fl.RunConfig(data=None, distributed="dp").validate()
    with pytest.raises(fl.FrostlineError, match="fsdp needs CUDA GPUs"):
        fl.RunConfig(data=None, distributed="fsdp", accelerator="cpu").validate()


def test_shards_of_a_global_batch_average_to_its_mean():
    ids = torch.tensor([[2, 5, 6, 0], [2, 7, 0, 0], [2, 5, 6, 8], [2, 9, 0, 0], [2, 5, 0, 0]])
    batch = Batch({"input_ids": ids, "attention_mask": (ids > 0).long()}, torch.tensor([0, 1, 0, 1, 1]),
                  np.array([10, 11, 12, 13, 14]))
    parts = [shard(batch, Dist(None, r, 2, ())) for r in range(2)]
    (a, wa), (b, wb) = parts
    assert a.positions.tolist() == [10, 12, 14] and b.positions.tolist() == [11, 13]
    assert a.inputs["input_ids"].shape == (3, 4) and b.inputs["input_ids"].shape == (2, 2)  # padding trimmed
    losses = torch.tensor([0.3, 0.9, 0.5, 0.2, 0.7])
    local = [losses[[0, 2, 4]].mean() * wa, losses[[1, 3]].mean() * wb]
    assert float(sum(local) / 2) == pytest.approx(float(losses.mean()))  # DDP's average = the global mean
    (c, wc) = shard(Batch(ids[:1], torch.tensor([1]), np.array([3])), Dist(None, 1, 2, ()))
    assert wc == 0.0 and c.positions.tolist() == [3]  # an empty slice takes part with weight 0


def test_an_interrupted_two_process_run_resumes_exactly(tmp_path, no_dropout_model):
    """Kill both processes after the first checkpoint; the same command resumes and ends where one process does."""
    import os
    import signal
    import time

    data = make_text_file(tmp_path / "d.tsv", n=400)
    args = ["--model", f"hf:{no_dropout_model}", "--data", data, "--text-column", "1", "--label-column", "0",
            "--strategy", "gradual", "--epochs", "4", "--batch-size", "4", "--lr", "3e-3", "--patience", "9"]
    out = tmp_path / "two"
    cmd = [FROSTLINE, "train", *args, "--devices", "2", "--accelerator", "cpu", "--precision", "32-true",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (out / "checkpoints" / "epoch-0001").is_dir():
        time.sleep(0.05)
    killed = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert killed, "the run ended before it could be interrupted"
    resumed = _train(args, 2, out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming after epoch" in " ".join(resumed.stdout.split())
    one = tmp_path / "one"
    assert _train(args, 1, one).returncode == 0
    w1, w2 = load_file(one / "model.safetensors"), load_file(out / "model.safetensors")
    assert sorted(w1) == sorted(w2)
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) <= WEIGHT_ATOL
