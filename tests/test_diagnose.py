"""Each diagnosis built from small synthetic predictions: it fires when it should, and only then."""

from __future__ import annotations

import numpy as np
import pytest

from frostline.diagnose import Thresholds, accuracy_paradox, diagnose_run, overfitting, underfitting, verdict
from frostline.metrics import classification_metrics

NAMES = ["ham", "spam"]


def _metrics(tp: int, fn: int, fp: int, tn: int, loss: float = 0.3) -> dict:
    y = np.array([1] * (tp + fn) + [0] * (fp + tn))
    yhat = np.array([1] * tp + [0] * fn + [1] * fp + [0] * tn)
    return classification_metrics(y, yhat, NAMES, loss)


def _codes(findings):
    return [f.code for f in findings]


def test_98_percent_accuracy_12_percent_recall_is_flagged():
    m = _metrics(tp=3, fn=22, fp=0, tn=1075)  # 25 spam of 1100
    assert m["accuracy"] == pytest.approx(0.98) and m["recall"]["per_class"]["spam"] == pytest.approx(0.12)
    (f,) = accuracy_paradox(m)
    assert f.code == "accuracy-paradox" and f.severity == "error"
    assert "98.0%" in f.message and "'spam'" in f.message and "recall 12.0%" in f.message
    assert f.numbers["majority_baseline"] == pytest.approx(1075 / 1100)
    assert f.numbers["balanced_accuracy"] == pytest.approx((0.12 + 1.0) / 2)
    assert 0 < f.numbers["mcc"] < 0.4


def test_85_percent_balanced_is_not_flagged():
    m = _metrics(tp=425, fn=75, fp=75, tn=425)
    assert m["accuracy"] == pytest.approx(0.85)
    assert accuracy_paradox(m) == []


def test_imbalanced_but_good_recall_is_not_flagged():
    assert accuracy_paradox(_metrics(tp=22, fn=3, fp=5, tn=1070)) == []


def test_moderate_recall_is_a_warning():
    (f,) = accuracy_paradox(_metrics(tp=10, fn=15, fp=0, tn=1075))
    assert f.severity == "warning" and f.numbers["class_recall"] == pytest.approx(0.4)


def test_majority_only_predictions():
    m = _metrics(tp=0, fn=0, fp=0, tn=10)
    m2 = classification_metrics(np.array([0] * 90 + [1] * 10), np.zeros(100, int), NAMES, 0.4)
    assert _codes(accuracy_paradox(m2)) == ["accuracy-paradox"]  # 90 % accuracy, spam recall 0
    assert accuracy_paradox(m) == []  # one class present: nothing to compare
    (f,) = underfitting([], m2, trainable=770, total=22_000_000)
    assert f.code == "single-class-predictions" and "'ham'" in f.message and "almost everything is frozen" in f.message


def _epoch(train_loss, val_loss, train_acc, val_acc):
    return {"train": {"loss": train_loss, "accuracy": train_acc}, "val": {"loss": val_loss, "accuracy": val_acc}}


def test_overfitting_rising_val_loss_and_gap_too_many_trainable():
    history = [_epoch(0.5, 0.40, 0.80, 0.82), _epoch(0.2, 0.42, 0.93, 0.84), _epoch(0.05, 0.55, 0.99, 0.83)]
    (f,) = overfitting(history, trainable=22_000_000, total=22_700_000, n_train=800)
    assert f.code == "overfitting" and f.numbers["val_loss_rising"]
    assert "rose for the last 2 epochs" in f.message and "train accuracy 99.0% vs validation 83.0%" in f.message
    assert "too many" in f.fix


def test_overfitting_head_only_says_too_few():
    history = [_epoch(0.3, 0.3, 0.9, 0.9), _epoch(0.1, 0.6, 0.99, 0.8)]
    (f,) = overfitting(history, trainable=770, total=22_700_000, n_train=300)
    assert "only the head trains" in f.fix and not f.numbers["val_loss_rising"]


def test_healthy_history_is_not_overfitting():
    history = [_epoch(0.5, 0.45, 0.8, 0.82), _epoch(0.3, 0.30, 0.9, 0.9), _epoch(0.2, 0.22, 0.93, 0.92)]
    assert overfitting(history, 100, 1000, 500) == []


def test_underfitting_loss_not_moving_and_flat_validation():
    history = [_epoch(0.693, 0.6931, 0.5, 0.5), _epoch(0.692, 0.6930, 0.5, 0.5), _epoch(0.6925, 0.6931, 0.5, 0.5)]
    codes = _codes(underfitting(history, None, trainable=10, total=1_000_000))
    assert codes == ["loss-not-moving", "validation-flat"]
    assert _codes(underfitting(history, None, trainable=0, total=10)) == ["nothing-trainable"]
    moving = [_epoch(0.69, 0.6, 0.5, 0.6), _epoch(0.4, 0.45, 0.8, 0.8)]
    assert underfitting(moving, None, 10, 100) == []


def test_verdict_thresholds_configurable():
    good = _metrics(tp=90, fn=10, fp=8, tn=92)
    assert verdict(good).code == "verdict-good"
    assert verdict(good, distrust=1).severity == "warning"
    assert verdict(good, Thresholds(good_accuracy=0.95)).code == "verdict-mixed"
    bad = _metrics(tp=1, fn=9, fp=0, tn=90)  # 91 % accuracy, spam recall 10 %
    v = verdict(bad)
    assert v.code == "verdict-bad" and "recall of 'spam' 10.0% < 20.0%" in v.message
    assert verdict(_metrics(tp=25, fn=25, fp=25, tn=25)).message.startswith("bad: accuracy 50.0% < 60.0%")


def test_diagnose_run_orders_errors_first_verdict_last():
    test = _metrics(tp=3, fn=22, fp=0, tn=1075)
    metrics = {"test": test, "history": [_epoch(0.3, 0.3, 0.9, 0.9)], "params": {"trainable": 770, "total": 10**7},
               "data": {"sizes": {"train": 1000}}}
    found = diagnose_run(metrics)
    assert _codes(found)[0] == "accuracy-paradox" and found[-1].code == "verdict-bad"
