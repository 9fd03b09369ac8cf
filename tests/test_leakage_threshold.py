"""Leakage counts and de-duplication; thresholds chosen on validation match a brute-force search."""

from __future__ import annotations

import html
import shutil
import unicodedata

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

import frostline as fl
from frostline.data import Dataset, Splits, from_tensors, read_image_folder
from frostline.data.leakage import check_splits, dedup, normalize_text, within
from frostline.evaluation.diagnose import leakage as leakage_findings
from frostline.evaluation.threshold import choose_threshold, curves, parse_objective, positive_index, predict_at
from tests.conftest import make_image_folder


def _text(texts, labels):
    return Dataset("text", list(texts), np.array(labels), ["a", "b"], np.arange(len(texts)), "mem")


def test_normalize_text():
    assert normalize_text("  Hello,   WORLD!! &lt;3 ") == normalize_text("hello world <3") == "hello world 3"
    # emoticons and other mostly-symbol texts keep their symbols: ':-)' and ':(' are not the same sample
    assert normalize_text(":-)") == ":-)" != normalize_text(":(") and normalize_text("0:-3") == "0:-3"
    assert normalize_text("&LT;3") == "<3" != normalize_text("3")


def _per_character(text):  # the rule as written, one character at a time (the ASCII fast path must equal it)
    folded = html.unescape(text).casefold()
    visible = [ch for ch in folded if not ch.isspace()]
    if 2 * sum(ch.isalnum() for ch in visible) <= len(visible):
        return " ".join(folded.split())
    return " ".join("".join(" " if unicodedata.category(ch)[0] in "PS" else ch for ch in folded).split())


def test_normalize_text_fast_path_equals_the_rule():
    texts = ["Ok...", "Ok... C ya...\n", "a_b c-d", "x\x1c\x1dab", "a\x1fb!!", "$100 + 50% = win", "ÀB c—d!",
             "naïve café :)", "\u00a0hi\u2003there", "", "   ", "&amp; you &lt;3", "1:2", "...", "A&B"]
    rng = np.random.default_rng(0)
    alphabet = [*"ab1 ._-!?:)(<3&;\t\n\x0b\x1c", "é", "—", "\u00a0"]
    texts += ["".join(rng.choice(alphabet, size=int(rng.integers(0, 12)))) for _ in range(2000)]
    assert [normalize_text(t) for t in texts] == [_per_character(t) for t in texts]


def test_exact_and_near_across_splits():
    train = _text(["Free prize now", "see you", "ok"], [1, 0, 0])
    val = _text(["free prize NOW!", "new one"], [1, 0])          # near duplicate only
    test = _text(["see you", "ok", "unique"], [0, 1, 0])          # 2 exact; "ok" with another label
    report = check_splits(Splits(train, val, test), source=_text(
        [*train.inputs, *val.inputs, *test.inputs], [*train.labels, *val.labels, *test.labels]))
    assert report.exact == {"train-val": 0, "train-test": 2, "val-test": 0}
    assert report.near == {"train-val": 1, "train-test": 2, "val-test": 0}
    assert report.leaked == 3 and report.copies == 2 and report.duplicated == 2
    assert report.near_copies == 3 and report.conflicting == 1
    assert {tuple(e["in"]) for e in report.examples} == {("train", "val"), ("train", "test")}
    findings = leakage_findings(report)
    assert [f.code for f in findings] == ["data-leakage", "conflicting-labels"]
    assert "2 test and 1 validation samples also occur" in findings[0].message and "--dedup" in findings[0].fix
    assert report.positions == {"val": [0], "test": [0, 1]}
    assert report.conflict_examples == [{"sample": "ok", "labels": ["a", "b"]}]
    assert "e.g. 'ok': a, b" in findings[1].message


def test_dedup_keeps_first_normalised():
    ds = _text(["Hi there", "hi  there!", "bye", "Hi there"], [0, 0, 1, 0])
    kept, dropped = dedup(ds)
    assert kept.inputs == ["Hi there", "bye"] and dropped == 2 and list(kept.ids) == [0, 2]
    assert dedup(ds, near=False)[1] == 1


def test_image_content_hashes(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=3)
    shutil.copy(tmp_path / "imgs" / "red" / "0.png", tmp_path / "imgs" / "red" / "copy.png")
    ds = read_image_folder(root, image_size=8)
    copies, duplicated, _, _ = within(ds)
    assert (copies, duplicated) == (1, 1)


def test_tensor_hashes():
    x = torch.randn(6, 4)
    x[5] = x[0]
    assert within(from_tensors(x, [0, 1, 0, 1, 0, 0]))[:2] == (1, 1)


@pytest.mark.parametrize(("spec", "expected"), [
    ("f1", "f1"), ("recall@precision>=0.95", "recall@precision>=0.95"),
    ("precision @ recall >= .9", "precision@recall>=0.9"),
])
def test_parse_objective(spec, expected):
    assert str(parse_objective(spec)) == expected


@pytest.mark.parametrize(("spec", "match"), [
    ("f2", r"bad --optimize 'f2'.*closest names: f1"), ("recall@recall>=0.9", "bad --optimize"),
    ("recall@precision>=1.5", r"the bound must be in \(0, 1\]"),
])
def test_parse_objective_errors(spec, match):
    with pytest.raises(fl.FrostlineError, match=match):
        parse_objective(spec)


def _scores(seed=0, n=400):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.2).astype(int)
    p1 = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
    return np.stack([1 - p1, p1], 1), y


def _at(probs, y, t):
    yhat = predict_at(probs, 1, t)
    return (precision_score(y, yhat, zero_division=0), recall_score(y, yhat), f1_score(y, yhat))


def _table(probs, y):
    """Precision, recall, F1 of the positive class at every distinct threshold, by brute force (NumPy)."""
    ts = np.unique(probs[:, 1])
    pred = probs[:, 1][None, :] >= ts[:, None]
    tp = (pred & (y == 1)).sum(1)
    prec = np.divide(tp, pred.sum(1), out=np.zeros(len(ts)), where=pred.sum(1) > 0)
    rec = tp / (y == 1).sum()
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros(len(ts)), where=(prec + rec) > 0)
    return ts, {"precision": prec, "recall": rec, "f1": f1}


@pytest.mark.parametrize("seed", range(3))
def test_best_f1_threshold_matches_brute_force(seed):
    probs, y = _scores(seed)
    chosen = choose_threshold(probs, y, 1, parse_objective("f1"))
    best = _table(probs, y)[1]["f1"].max()
    assert chosen["f1"] == pytest.approx(best) and _at(probs, y, chosen["threshold"])[2] == pytest.approx(best)


@pytest.mark.parametrize("spec", ["recall@precision>=0.8", "precision@recall>=0.9"])
def test_constrained_threshold_matches_brute_force(spec):
    probs, y = _scores(1)
    obj = parse_objective(spec)
    chosen = choose_threshold(probs, y, 1, obj)
    _, table = _table(probs, y)
    feasible = table[obj.constraint] >= obj.minimum
    assert chosen["met"] and chosen[obj.constraint] >= obj.minimum
    assert chosen[obj.maximize] == pytest.approx(table[obj.maximize][feasible].max())
    got = dict(zip(("precision", "recall", "f1"), _at(probs, y, chosen["threshold"]), strict=True))
    assert got[obj.constraint] >= obj.minimum  # and it holds when applied with predict_at


def test_unreachable_constraint_is_reported():
    probs, y = _scores(2)
    chosen = choose_threshold(probs, y, 1, parse_objective("recall@precision>=1.0"))
    assert chosen["met"] is False or chosen["precision"] == 1.0


def test_curves_and_multiclass_one_vs_rest():
    probs, y = _scores(0)
    c = curves(probs, y, 1)
    assert c["roc_auc"] == pytest.approx(roc_auc_score(y, probs[:, 1]))
    assert 0 < c["average_precision"] <= 1 and len(c["pr"]["threshold"]) <= 200
    rng = np.random.default_rng(0)
    p3 = rng.dirichlet([1, 1, 1], 90)
    y3 = np.arange(90) % 3
    c3 = curves(p3, y3, 2)
    assert c3["roc_auc_ovr_macro"] == pytest.approx(roc_auc_score(y3, p3, multi_class="ovr"))
    assert set(predict_at(p3, 2, 0.0)) == {2} and 2 not in set(predict_at(p3, 2, 1.01))


def test_positive_index():
    assert positive_index(["ham", "spam"], np.array([0, 0, 0, 1]), None) == 1
    assert positive_index(["ham", "spam"], np.array([0, 1]), "ham") == 0
    with pytest.raises(fl.FrostlineError, match=r"--positive-label 'spma' is not a class.*closest names: spam"):
        positive_index(["ham", "spam"], np.array([0, 1]), "spma")


def test_a_few_validation_copies_are_an_info_and_many_a_warning():
    from frostline.data.leakage import LeakageReport
    from frostline.evaluation.data_findings import leakage

    sizes = {"train": 2100, "val": 450, "test": 450}
    few = LeakageReport(exact={"train-val": 2}, near={"train-val": 2}, positions={"val": [3, 9], "test": []},
                        sizes=sizes)
    [f] = leakage(few)
    assert f.severity == "info" and "2 validation samples of 450" in f.message and "too few to move" in f.message
    many = LeakageReport(exact={"train-val": 20}, near={"train-val": 20}, positions={"val": list(range(20)),
                                                                                     "test": []}, sizes=sizes)
    [f] = leakage(many)
    assert f.severity == "warning" and f.numbers["val_share"] == pytest.approx(20 / 450)
