"""Does freezing by importance pay? MiniLM on the SMS spam data, every strategy on the same split, seed and epochs.

    .venv/bin/python benchmarks/importance.py --seeds 0,1,2 --max-samples 2000 --epochs 5

For each seed, one ``frostline compare`` (same split, starting weights and budget for every strategy) of
``full``, ``auto-freeze``, ``auto-freeze:4``, ``partial:2``, ``surgical:blocks:0-1`` and ``surgical:auto:2``; then per
strategy the mean and spread over seeds of test accuracy, macro F1 and training seconds, and the three checks
of issue 8/11:

* auto-freeze's macro F1 against full's (within 1 point?) and its wall time ratio (full / auto-freeze >= 1.8?);
* surgical:auto:2's macro F1 against the better of partial:2 and surgical:blocks:0-1 (at least as good, within
  the seeds' spread?);
* the importance scores' cost against one epoch of full fine-tuning (< 5 %?).

Data: ``../shared/data/sms_spam/SMSSpamCollection.tsv`` when present, else the SMS sample frostline's demo ships.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from frostline.runs.comparison import compare  # noqa: E402
from frostline.runs.config import RunConfig  # noqa: E402
from frostline.runs.demo import demo_data_path  # noqa: E402

STRATEGIES = ["full", "auto-freeze", "auto-freeze:4", "partial:2", "surgical:blocks:0-1", "surgical:auto:2"]


def _data() -> tuple[str, dict[str, str]]:
    shared = ROOT.parent / "shared" / "data" / "sms_spam" / "SMSSpamCollection.tsv"
    if shared.exists():
        return str(shared), {"text_column": "SMS", "label_column": "Label"}
    return str(demo_data_path()), {}


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--max-samples", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    data, columns = _data()
    strategies = args.strategies.split(",")
    rows: dict[str, list[dict[str, float]]] = {s: [] for s in strategies}
    costs = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [int(s) for s in args.seeds.split(",")]:
            cfg = RunConfig(model="minilm", data=data, **columns, max_samples=args.max_samples, epochs=args.epochs,
                            seed=seed, patience=None, out=str(Path(tmp) / f"seed{seed}"))
            result = compare(cfg, strategies, echo=lambda _s: None)
            by = {r.strategy: r.metrics for r in result.runs}
            for s in strategies:
                m = by[s]
                rows[s].append({"accuracy": m["test"]["accuracy"], "f1": m["test"]["f1"]["macro"],
                                "seconds": m["seconds"]["total"], "epochs": len(m["history"]),
                                "best_epoch": m["best_epoch"],
                                "plans": [h["plan"] for h in m["history"]],
                                "chosen": (m["run"].get("auto") or {}).get("chosen")})
            if "surgical:auto:2" in by and "full" in by:
                scores = by["surgical:auto:2"]["run"]["auto"]["importance"]
                costs.append({"seed": seed, "score_seconds": scores["seconds"], "samples": scores["samples"],
                              "full_epoch_seconds": by["full"]["seconds"]["per_epoch"][0]})
            print(f"seed {seed} done at {time.perf_counter() - t0:.0f} s", flush=True)
    sizes = by["full" if "full" in by else strategies[0]]["data"]["sizes"]
    print(f"\nMiniLM on {Path(data).name}: {args.max_samples} samples (train {sizes['train']}, val {sizes['val']}, "
          f"test {sizes['test']}), {args.epochs} epochs, seeds {args.seeds}; test split, mean +/- sd over seeds\n")
    print("| strategy | accuracy | macro F1 | seconds (train + val) | best epoch per seed | plans / choice |")
    print("|---|---|---|---|---|---|")
    summary = {}
    for s in strategies:
        acc, f1, sec = (_stats([r[k] for r in rows[s]]) for k in ("accuracy", "f1", "seconds"))
        summary[s] = {"accuracy": acc, "f1": f1, "seconds": sec, "runs": rows[s]}
        extra = "; ".join(sorted({", ".join(r["chosen"]) for r in rows[s] if r["chosen"]})) or rows[s][0]["plans"][-1]
        best = ", ".join(str(r["best_epoch"]) for r in rows[s])
        print(f"| {s} | {acc[0]:.4f} +/- {acc[1]:.4f} | {f1[0]:.4f} +/- {f1[1]:.4f} | {sec[0]:.1f} +/- {sec[1]:.1f} "
              f"| {best} | {extra} |")
    for af_name in [s for s in strategies if s.startswith("auto-freeze")]:
        if "full" not in summary:
            break
        full, af = summary["full"], summary[af_name]
        ratios = [f["seconds"] / a["seconds"] for f, a in zip(full["runs"], af["runs"], strict=True)]
        diffs = [a["f1"] - f["f1"] for f, a in zip(full["runs"], af["runs"], strict=True)]
        print(f"\n{af_name} vs full: wall time full / {af_name} {statistics.fmean(ratios):.2f}x (per seed "
              f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 1.8x); macro F1 difference "
              f"{100 * statistics.fmean(diffs):+.2f} points (per seed {', '.join(f'{100 * d:+.2f}' for d in diffs)}; "
              "target within 1 point)")
        for r in af["runs"]:
            print(f"  {af_name} plans: {' | '.join(r['plans'])}")
    if {"surgical:auto:2", "partial:2", "surgical:blocks:0-1"} <= set(summary):
        auto = summary["surgical:auto:2"]["f1"]
        best = max(("partial:2", "surgical:blocks:0-1"), key=lambda s: summary[s]["f1"][0])
        diffs = [a["f1"] - b["f1"] for a, b in zip(summary["surgical:auto:2"]["runs"], summary[best]["runs"],
                                                    strict=True)]
        print(f"\nsurgical:auto:2 macro F1 {auto[0]:.4f} +/- {auto[1]:.4f} vs the better of partial:2 and "
              f"surgical:blocks:0-1 ({best}) {summary[best]['f1'][0]:.4f} +/- {summary[best]['f1'][1]:.4f}; "
              f"paired difference per seed {', '.join(f'{100 * d:+.2f}' for d in diffs)} points")
    if costs:
        shares = [c["score_seconds"] / c["full_epoch_seconds"] for c in costs]
        score_s = statistics.fmean(c["score_seconds"] for c in costs)
        print(f"importance scores: {costs[0]['samples']} samples, {score_s:.2f} s = "
              f"{100 * statistics.fmean(shares):.1f} % of one full fine-tuning epoch "
              f"({statistics.fmean(c['full_epoch_seconds'] for c in costs):.1f} s; target < 5 %)")
    print(f"\nwall time of the benchmark: {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "summary": summary, "costs": costs}, indent=2))


if __name__ == "__main__":
    main()
