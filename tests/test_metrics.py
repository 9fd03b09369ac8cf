"""Metrics equal scikit-learn's on the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    matthews_corrcoef,
    precision_recall_fscore_support,
)

import frostline as fl
from frostline.evaluation.metrics import classification_metrics, headline


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [2, 3, 5])
def test_equals_sklearn(seed, k):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, k, 200))
    if k == 5:
        y_pred[y_pred == 4] = 3  # a class never predicted: precision 0 by zero_division=0
    names = [f"c{i}" for i in range(k)]
    m = classification_metrics(y_true, y_pred, names, loss=0.5)
    labels = list(range(k))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for avg in ("macro", "weighted"):
        pa, ra, fa, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        assert m["precision"][avg] == pytest.approx(pa, abs=1e-12)
        assert m["recall"][avg] == pytest.approx(ra, abs=1e-12)
        assert m["f1"][avg] == pytest.approx(fa, abs=1e-12)
    assert [m["precision"]["per_class"][n] for n in names] == pytest.approx(p, abs=1e-12)
    assert [m["recall"]["per_class"][n] for n in names] == pytest.approx(r, abs=1e-12)
    assert [m["f1"]["per_class"][n] for n in names] == pytest.approx(f, abs=1e-12)
    assert [m["support"][n] for n in names] == s.tolist()
    assert m["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert headline(m)["f1"] == m["f1"]["macro"] and m["loss"] == 0.5 and m["n"] == 200
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert m["mcc"] == pytest.approx(matthews_corrcoef(y_true, y_pred))
    assert m["majority_baseline"] == pytest.approx(np.bincount(y_true).max() / 200)


def test_absent_class_in_truth():
    m = classification_metrics(np.array([0, 0, 1]), np.array([0, 2, 1]), ["a", "b", "c"])
    assert m["recall"]["per_class"]["c"] == 0.0 and m["support"]["c"] == 0


def test_errors():
    with pytest.raises(fl.FrostlineError, match="y_true has 2 labels but y_pred has 3"):
        classification_metrics(np.array([0, 1]), np.array([0, 1, 1]), ["a", "b"])
    with pytest.raises(fl.FrostlineError, match=r"y_pred holds class 2 outside 0..1"):
        classification_metrics(np.array([0, 1]), np.array([0, 2]), ["a", "b"])
