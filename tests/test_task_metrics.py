"""Regression and multi-label metrics equal scikit-learn's / SciPy's on random inputs; the task decides the loss,
the outputs and the Hugging Face problem_type; label columns are read as the task they show."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn import metrics as skm

from frostline.core.errors import FrostlineError
from frostline.core.task import Task
from frostline.data.targets import detect_task, encode_targets
from frostline.evaluation.multilabel import choose_label_thresholds, multilabel_metrics
from frostline.evaluation.regression import regression_metrics


@pytest.mark.parametrize("seed", range(5))
def test_regression_metrics_equal_sklearn_and_scipy(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(3, 2, 60)
    p = y + rng.normal(0, 1.5, 60)
    if seed == 4:
        p = np.round(p)  # ties in the ranks
    m = regression_metrics(y, p, train_mean=2.5)
    assert m["mse"] == pytest.approx(skm.mean_squared_error(y, p))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, p))
    assert m["r2"] == pytest.approx(skm.r2_score(y, p))
    assert m["spearman"] == pytest.approx(spearmanr(y, p).statistic)
    assert m["mean_baseline"]["r2"] == pytest.approx(skm.r2_score(y, np.full(60, 2.5)))
    assert m["mean_baseline"]["r2"] < 0  # the training mean is not the test mean


def test_regression_metrics_edge_cases():
    m = regression_metrics(np.ones(5), np.arange(5.0))
    assert m["r2"] is None and m["spearman"] is None  # constant targets: undefined, not 0 or nan
    with pytest.raises(FrostlineError, match="y_true has 3 values but y_pred has 2"):
        regression_metrics(np.ones(3), np.ones(2))


@pytest.mark.parametrize("seed", range(5))
def test_multilabel_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    t = (rng.random((50, 4)) < [0.5, 0.2, 0.05, 0.0]).astype(np.uint8)  # a rare label and one never present
    p = ((t + (rng.random((50, 4)) < 0.25)) % 2).astype(np.uint8)
    names = ["a", "b", "c", "d"]
    m = multilabel_metrics(t, p, names, loss=0.3)
    for avg in ("micro", "macro", "weighted", "samples"):
        pr, rc, f1, _ = skm.precision_recall_fscore_support(t, p, average=avg, zero_division=0)
        assert (m["precision"][avg], m["recall"][avg], m["f1"][avg]) == pytest.approx((pr, rc, f1)), avg
    pr, rc, f1, sup = skm.precision_recall_fscore_support(t, p, average=None, zero_division=0)
    assert list(m["f1"]["per_class"].values()) == pytest.approx(f1)
    assert list(m["support"].values()) == list(sup)
    assert m["subset_accuracy"] == pytest.approx(skm.accuracy_score(t, p))
    assert m["hamming_loss"] == pytest.approx(skm.hamming_loss(t, p))
    assert m["all_negative_hamming"] == pytest.approx(1 - t.mean())


def test_label_thresholds_maximise_validation_f1():
    rng = np.random.default_rng(0)
    t = (rng.random((200, 2)) < 0.3).astype(np.uint8)
    probs = np.clip(0.3 * t + rng.random((200, 2)) * 0.5, 0, 1)
    th = choose_label_thresholds(probs, t)
    for j in range(2):
        best = max(skm.f1_score(t[:, j], probs[:, j] >= c) for c in np.unique(probs[:, j]))
        assert skm.f1_score(t[:, j], probs[:, j] >= th[j]) == pytest.approx(best)
    # a label whose positives all score 0.3-0.45: 0.5 finds none of them, the chosen threshold finds all
    shy = np.r_[np.linspace(0.3, 0.45, 10), np.linspace(0.0, 0.25, 30)][:, None]
    truth = np.r_[np.ones(10), np.zeros(30)][:, None].astype(np.uint8)
    assert choose_label_thresholds(shy, truth)[0] == pytest.approx(0.3)
    assert choose_label_thresholds(np.full((5, 1), 0.9), np.zeros((5, 1)))[0] == 0.5  # nothing to tune on
    few = np.r_[np.ones(3), np.zeros(30)][:, None].astype(np.uint8)  # 3 positives: too few to tune on
    assert choose_label_thresholds(np.r_[np.full(3, 0.2), np.full(30, 0.1)][:, None], few)[0] == 0.5


def test_task_loss_outputs_and_problem_type():
    logits = torch.tensor([[0.2, -1.0], [1.5, 0.3]])
    clf = Task()
    assert clf.problem_type == "single_label_classification" and clf.outputs(["a", "b", "c"]) == 3
    torch.testing.assert_close(clf.loss_fn(logits, torch.tensor([0, 1])),
                               torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])))
    reg = Task.for_targets("regression", np.array([10.0, 20.0, 30.0]))
    assert (reg.mean, reg.std) == pytest.approx((20.0, np.std([10, 20, 30])))
    assert reg.problem_type == "regression" and reg.outputs(["price"]) == 1
    out = torch.tensor([[0.0], [1.0]])
    torch.testing.assert_close(reg.transform(out), torch.tensor([[20.0], [20.0 + reg.std]]))
    y = torch.tensor([20.0, 20.0 + reg.std])
    assert reg.loss_fn(out, y).item() == pytest.approx(0.0)  # standardised: a perfect prediction costs nothing
    huber = Task("regression", "huber", 0.0, 1.0)
    assert huber.loss_fn(torch.tensor([[3.0]]), torch.tensor([0.0])).item() == pytest.approx(2.5)
    ml = Task("multilabel", "bce")
    assert ml.problem_type == "multi_label_classification"
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(ml.loss_fn(logits, target),
                               torch.nn.functional.binary_cross_entropy_with_logits(logits, target))
    torch.testing.assert_close(ml.transform(logits), torch.sigmoid(logits))
    with pytest.raises(FrostlineError, match="loss 'mse' does not fit a multilabel task"):
        Task("multilabel", "mse")
    with pytest.raises(FrostlineError, match="a regression needs targets that vary"):
        Task.for_targets("regression", np.array([2.0, 2.0]))


def test_the_label_column_says_which_task():
    assert detect_task(["0.5", "1.25", "3"])[0] == "regression"
    assert detect_task(["1", "2", "3"]) == ("classification", "")
    kind, note = detect_task([str(i) for i in range(20)])
    assert kind == "classification" and "--task regression" in note
    assert detect_task(['["a", "b"]', "[]"])[0] == "multilabel"
    assert detect_task(["a|b", "c"])[0] == "multilabel"
    assert detect_task(["spam", "ham"]) == ("classification", "")
    y, names, kind, _ = encode_targets(['["x", "y"]', "y", "[]"], None, None, "f")
    assert kind == "multilabel" and names == ["x", "y"] and y.tolist() == [[1, 1], [0, 1], [0, 0]]
    y, names, kind, _ = encode_targets(["1.5", "2"], "regression", None, "f", column="price")
    assert names == ["price"] and y.tolist() == [1.5, 2.0]
    with pytest.raises(FrostlineError, match=r"f \(row 2\): target 'n/a' is not a finite number"):
        encode_targets(["1.5", "n/a"], "regression", None, "f", rows=[0, 1])
    with pytest.raises(FrostlineError, match=r"labels \['z'\] are not among the training labels \['x', 'y'\]"):
        encode_targets(["z|x"], "multilabel", ["x", "y"], "val.tsv")
    with pytest.raises(FrostlineError, match=r"--task 'regresion' is not a task.*regression"):
        encode_targets(["1"], "regresion", None, "f")


def test_the_ridge_probe_equals_sklearn_ridge_and_cross_validates_its_strength():
    from sklearn.linear_model import Ridge

    from frostline.training.probe.ridge import fit_ridge, fit_ridge_probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8))
    z = x @ rng.normal(size=8) + rng.normal(0, 0.5, 120)
    for alpha in (0.01, 1.0, 100.0):
        w, b = fit_ridge(x, z, alpha)
        ref = Ridge(alpha=alpha).fit(x, z)
        np.testing.assert_allclose(w, ref.coef_, rtol=1e-8, atol=1e-10)
        assert b == pytest.approx(ref.intercept_)
    w, b, fit = fit_ridge_probe(x[:90], z[:90], x[90:], z[90:])
    assert fit.solver == "ridge (closed form)" and fit.chosen_by == "5-fold cross-validation on train"
    chosen = min(fit.grid, key=lambda g: g["cv_loss"])
    assert chosen["C"] == fit.C and fit.grad_norm < 1e-8  # the normal equations hold at the solution
    assert fit.val_loss < 0.5 * float(np.var(z[90:]))  # it learned the linear signal


def test_the_multilabel_probe_equals_one_sklearn_logistic_regression_per_label():
    from sklearn.linear_model import LogisticRegression

    from frostline.training.probe.multilabel import fit_binary, fit_multilabel_probe

    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 6))
    y = np.stack([(x[:, 0] + rng.normal(0, 0.5, 150) > 0), (x[:, 1] - x[:, 2] > 0.5)], axis=1).astype(float)
    w, b, info = fit_binary(x, y, C=0.5)
    assert info["converged"]
    for j in range(2):
        ref = LogisticRegression(C=0.5, tol=1e-10, max_iter=10000).fit(x, y[:, j])
        np.testing.assert_allclose(w[j], ref.coef_[0], rtol=1e-4, atol=1e-5)
        assert b[j] == pytest.approx(ref.intercept_[0], abs=1e-5)
    w, b, fit = fit_multilabel_probe(x[:110], y[:110], x[110:], y[110:])
    assert min(fit.grid, key=lambda g: g["cv_loss"])["C"] == fit.C and fit.solver == "L-BFGS per label"
    assert fit.val_loss < 0.5  # far below the 0.69 of knowing nothing


def test_the_multilabel_grid_stops_past_its_minimum_with_the_same_choice(monkeypatch):
    from frostline.training.probe import multilabel as pm

    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 8))
    y = np.stack([x[:, 0] + rng.normal(0, 1.0, 200) > 0, x[:, 1] + rng.normal(0, 1.0, 200) > 0.5], 1).astype(float)
    w, _, fit = pm.fit_multilabel_probe(x[:150], y[:150], x[150:], y[150:])
    monkeypatch.setattr(pm, "PAST_MINIMUM", 99)
    w_all, _, fit_all = pm.fit_multilabel_probe(x[:150], y[:150], x[150:], y[150:])
    assert len(fit.grid) < len(fit_all.grid) == 13
    tried = len(fit.grid)
    assert fit.C == fit_all.C and [g["cv_loss"] for g in fit.grid] == [g["cv_loss"] for g in fit_all.grid[:tried]]
    np.testing.assert_allclose(w, w_all)


def test_a_shifted_target_mean_is_not_called_no_better_than_the_mean():
    from frostline.evaluation.predictions import Predictions
    from frostline.evaluation.task_audit import no_better_than_mean

    rng = np.random.default_rng(0)
    y = rng.normal(2.0, 1.0, 200)  # this data's mean is 2; the model trained where the mean was -1
    shifted = Predictions((0.3 * (y - 2.0) + 0.5)[:, None], y, np.arange(200), 0.0, kind="regression")
    found = no_better_than_mean(shifted, train_mean=-1.0)
    assert [f.code for f in found] == ["target-shift"] and found[0].numbers["r2"] <= 0
    noise = Predictions(rng.normal(2.0, 0.1, (200, 1)), y, np.arange(200), 0.0, kind="regression")
    assert [f.code for f in no_better_than_mean(noise, train_mean=2.0)] == ["no-better-than-mean"]
