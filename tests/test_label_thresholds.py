"""Per-label thresholds tuned on validation are kept only where, judged out of fold, they beat 0.5 beyond noise."""

from __future__ import annotations

import numpy as np

from frostline.evaluation.multilabel import choose_label_thresholds, judged_label_thresholds


def test_a_real_gain_is_kept_and_noise_falls_back_to_half():
    rng = np.random.default_rng(0)
    n = 800
    y = np.zeros((n, 2), np.uint8)
    y[:, 0] = rng.random(n) < 0.3
    y[:, 1] = rng.random(n) < 0.3
    probs = np.empty((n, 2))
    # label 0: scores shrunk toward 0 (positives around 0.35): 0.5 misses most positives, ~0.2 catches them
    probs[:, 0] = np.clip(np.where(y[:, 0], 0.35, 0.08) + rng.normal(0, 0.06, n), 0, 1)
    # label 1: well calibrated and separated at 0.5; any tuned threshold only fits noise
    probs[:, 1] = np.clip(np.where(y[:, 1], 0.8, 0.2) + rng.normal(0, 0.12, n), 0, 1)
    tuned = choose_label_thresholds(probs, y)
    assert tuned[0] < 0.3 and tuned[1] != 0.5  # tuning moves both
    kept, record = judged_label_thresholds(probs, y)
    assert kept[0] == tuned[0] and record[0]["kept"] and record[0]["p_not_better"] < 0.05
    assert record[0]["out_of_fold_f1"] > record[0]["f1_at_half"] + 0.2
    assert kept[1] == 0.5 and not record[1]["kept"] and "not better than 0.5" in record[1]["why"]


def test_too_few_positives_keep_half():
    y = np.zeros((40, 1), np.uint8)
    y[:3, 0] = 1
    kept, record = judged_label_thresholds(np.linspace(0, 1, 40)[:, None], y)
    assert kept[0] == 0.5 and "fewer than 10 positives" in record[0]["why"]
