"""``--log mlflow|tensorboard|csv``: what each tracker holds is read back with its own API (MLflow's ``search_runs``
and metric history, TensorBoard's ``EventAccumulator``, the CSV file) and equals the run's ``metrics.json``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import frostline as fl
from frostline.core.errors import FrostlineError
from frostline.runs.config import RunConfig
from tests.conftest import interrupted_then_resumed, make_text_file


def _cfg(tmp_path: Path, tiny_hf_dir: str, out: str = "r", **kw) -> RunConfig:
    data = make_text_file(tmp_path / "d.tsv", n=60)
    return RunConfig(model=f"hf:{tiny_hf_dir}", data=data, text_column="1", label_column="0", strategy="partial:1",
                     epochs=3, batch_size=8, lr=1e-3, out=str(tmp_path / out), **kw)


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow puts artifacts in ./mlruns next to a sqlite store: not in the repository
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "frostline-tests")
    return uri


def test_every_tracker_reads_back_the_runs_numbers(tmp_path, tiny_hf_dir, mlflow_store):
    import mlflow
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = fl.train(_cfg(tmp_path, tiny_hf_dir, log=["mlflow", "tensorboard", "csv"]), echo=lambda _s: None)
    m = result.metrics
    val_losses = [h["val"]["loss"] for h in m["history"]]
    runs = mlflow.search_runs(experiment_names=["frostline-tests"])
    assert len(runs) == 1 and runs["params.strategy"][0] == "partial:1" and runs["params.lr"][0] == "0.001"
    assert runs["metrics.test/accuracy"][0] == pytest.approx(m["test"]["accuracy"])
    client = mlflow.tracking.MlflowClient()
    history = client.get_metric_history(runs["run_id"][0], "val/loss")
    assert [h.value for h in sorted(history, key=lambda h: h.step)] == pytest.approx(val_losses)
    assert {a.path for a in client.list_artifacts(runs["run_id"][0])} == {"report.html", "metrics.json",
                                                                          "predictions.csv"}
    events = EventAccumulator(str(result.out / "tensorboard" / "version_0"))
    events.Reload()
    assert [e.value for e in events.Scalars("val/loss")] == pytest.approx(val_losses, rel=1e-6)
    assert events.Scalars("test/accuracy")[-1].value == pytest.approx(m["test"]["accuracy"], rel=1e-6)
    rows = list(csv.DictReader((result.out / "logs" / "version_0" / "metrics.csv").open()))
    assert [float(r["val/loss"]) for r in rows if r.get("val/loss")] == pytest.approx(val_losses)


def test_a_resumed_run_logs_into_the_same_mlflow_run_each_epoch_once(tmp_path, tiny_hf_dir, mlflow_store):
    import mlflow

    _whole, resumed = interrupted_then_resumed(_cfg(tmp_path, tiny_hf_dir, log=["mlflow"]), "epoch-0002:renamed")
    assert resumed.resumed_from == 2
    runs = mlflow.search_runs(experiment_names=["frostline-tests"])
    assert len(runs) == 2  # the whole run and the interrupted-then-resumed one
    run_id = json.loads((resumed.out / "tracking.json").read_text())["mlflow_run_id"]
    steps = [h.step for h in mlflow.tracking.MlflowClient().get_metric_history(run_id, "val/loss")]
    assert sorted(steps) == [1, 2, 3]


def test_a_bad_or_missing_tracker_is_one_error(tmp_path, tiny_hf_dir, monkeypatch):
    with pytest.raises(FrostlineError, match=r"--log must be one of mlflow, tensorboard, csv, got 'mlfow'"):
        _cfg(tmp_path, tiny_hf_dir, log=["mlfow"]).validate()
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(FrostlineError, match=r'--log mlflow needs the mlflow package: pip install "frostline\[mlfl'):
        _cfg(tmp_path, tiny_hf_dir, log=["mlflow"]).validate()
