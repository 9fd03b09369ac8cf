"""Regression and multi-label runs against scikit-learn, on the same frozen features and the same split.

    .venv/bin/python benchmarks/task_reference.py                       # both bundled sets, 3,000 samples, seed 0
    .venv/bin/python benchmarks/task_reference.py --size 2000 --seeds 0,1 --strategies linear-probe,partial:2

Data (``frostline.data.bundled``; read as files, no package code imported):

* ``vader-lexicon``: 7,517 words / emoticons with the mean of 10 sentiment ratings (-4..4), ``vaderSentiment==3.3.2``,
  MIT. Its raters' noise bounds what any model can reach: the split-half reliability of the mean rating.
* ``nrc-emotion``: 6,468 words with 1-10 of 10 emotion / sentiment labels, ``nrclex==4.1.0``, research use only.

For each set, frostline runs each strategy (all-MiniLM-L6-v2, its mean pooling, duplicates dropped, train 70 % /
validation 15 % / test 15 %), and scikit-learn fits on the pooled features of the same split (the input of the
run's classifier): ``RidgeCV`` (alpha by 5-fold CV) for regression, one ``LogisticRegressionCV`` per label (C by
5-fold CV, log-loss) for multi-label. Multi-label scores are given at the 0.5 threshold for both (same rule) and at
frostline's per-label thresholds chosen on validation (what a frostline user reads).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from probe_reference import features

import frostline as fl
from frostline.data import split_half_ceiling
from frostline.runs import prepare
from frostline.training.probe.logistic import DEFAULT_CS


def regression_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr
    from sklearn.metrics import mean_squared_error, r2_score
    return {"r2": float(r2_score(y, p)), "rmse": float(np.sqrt(mean_squared_error(y, p))),
            "spearman": float(spearmanr(y, p).statistic)}


def multilabel_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score, hamming_loss
    return {"micro_f1": float(f1_score(y, p, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y, p, average="macro", zero_division=0)),
            "hamming": float(hamming_loss(y, p))}


def sklearn_rows(task: str, x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.model_selection import KFold
    if task == "regression":
        m = RidgeCV(alphas=np.logspace(-3, 4, 15), cv=KFold(5, shuffle=True, random_state=0)).fit(x["train"],
                                                                                                   y["train"])
        return {"sklearn RidgeCV": {**regression_scores(y["test"], m.predict(x["test"])), "alpha": float(m.alpha_)}}
    pred = np.zeros_like(y["test"])
    for j in range(y["train"].shape[1]):
        m = LogisticRegressionCV(Cs=list(DEFAULT_CS), cv=KFold(5, shuffle=True, random_state=0),
                                 scoring="neg_log_loss", max_iter=5000).fit(x["train"], y["train"][:, j])
        pred[:, j] = m.predict_proba(x["test"])[:, 1] >= 0.5
    return {"sklearn LogisticRegressionCV per label (0.5)": multilabel_scores(y["test"], pred)}


def run(name: str, size: int, seed: int, strategies: list[str], tmp: Path) -> dict[str, Any]:
    data = fl.write_bundled(name, tmp / f"{name}{'.tsv' if name == 'vader-lexicon' else '.jsonl'}", overwrite=True)
    rows: dict[str, dict[str, float]] = {}
    prepared = None
    for strategy in strategies:
        cfg = fl.RunConfig(model="minilm", data=str(data), dedup=True, max_samples=size, seed=seed, epochs=3,
                           batch_size=32, strategy=strategy, out=str(tmp / f"{name}-{size}-{seed}-{strategy}"))
        t0 = time.perf_counter()
        result = fl.train(cfg, echo=lambda _s: None)
        seconds = time.perf_counter() - t0
        if prepared is None:
            prepared = prepare(cfg, echo=lambda _s: None)
        test = prepared.splits.test
        out = fl.load_run(cfg.out).predict(list(test.inputs))
        if result.metrics["task"]["kind"] == "regression":
            rows[f"frostline {strategy}"] = {**regression_scores(test.labels, np.asarray(out.predicted)),
                                             "seconds": seconds}
        else:
            at_half = np.asarray(out.probs) >= 0.5
            rows[f"frostline {strategy} (0.5)"] = {**multilabel_scores(test.labels, at_half), "seconds": seconds}
            t = result.metrics["test"]
            rows[f"frostline {strategy} (val thresholds)"] = {"micro_f1": t["f1"]["micro"],
                                                              "macro_f1": t["f1"]["macro"],
                                                              "hamming": t["hamming_loss"]}
    assert prepared is not None
    x = features(prepared)
    y = {n: getattr(prepared.splits, n).labels for n in ("train", "val", "test")}
    rows.update(sklearn_rows(prepared.splits.train.task, x, y))
    return {"data": name, "seed": seed, "sizes": prepared.splits.sizes(), "rows": rows}


def report(runs: list[dict[str, Any]]) -> None:
    first = runs[0]
    s = first["sizes"]
    print(f"\n## {first['data']}: train {s['train']} / val {s['val']} / test {s['test']}, seeds "
          f"{', '.join(str(r['seed']) for r in runs)}")
    keys = [k for k in next(iter(first["rows"].values())) if k not in ("seconds", "alpha")]
    print("| method | " + " | ".join(keys) + " | seconds |\n|---|" + "---|" * (len(keys) + 1))
    for method in first["rows"]:
        vals = [np.mean([r["rows"][method][k] for r in runs]) for k in keys]
        secs = [r["rows"][method].get("seconds") for r in runs]
        sec = f"{np.mean(secs):.1f}" if secs[0] is not None else "-"
        print(f"| {method} | " + " | ".join(f"{v:.4f}" for v in vals) + f" | {sec} |")
    if first["data"] == "vader-lexicon":
        print(f"noise ceiling (split-half reliability of the 10-rater mean, Spearman-Brown): R^2 <= "
              f"{split_half_ceiling():.3f}")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=3000, help="samples per data set (stratified)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds")
    ap.add_argument("--data", default="vader-lexicon,nrc-emotion")
    ap.add_argument("--strategies", default="linear-probe,partial:2")
    args = ap.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    warnings.filterwarnings("ignore", category=FutureWarning)  # scikit-learn 1.9 on LogisticRegressionCV
    tmp = Path(tempfile.mkdtemp(prefix="frostline-tasks-"))
    for name in args.data.split(","):
        runs = [run(name, args.size, int(seed), args.strategies.split(","), tmp) for seed in args.seeds.split(",")]
        report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
