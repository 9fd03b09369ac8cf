"""Cost as the data grows: wall time per sample and peak memory of linear-probe and partial:2 on MiniLM, from 1k to
100k texts, with the frozen-prefix cache held to a budget (it spills to disk beyond it).

    .venv/bin/python benchmarks/scaling.py                                # 1k, 10k, 50k, 100k; ~30 min on 2 cores
    .venv/bin/python benchmarks/scaling.py --sizes 1000,10000 --plot docs/scaling-cost.png --json scaling.json

The texts are the SMS Spam Collection's 5,171 distinct messages (the demo's data, CC BY 4.0), replicated in order
to reach each size: real sentences, so tokenising, batching and the model's work are those of real text, but the
copies make the scores meaningless (the same message lands in train and test): this measures cost only. Each run is
``fl.train`` in a fresh process (1 epoch, batch 32, ``--cache-budget`` 256 MiB, precision auto, the leakage check
and the report included). Two peaks of the process's own memory: ``VmHWM`` (all resident pages, including the pages
of the memory-mapped cache file the kernel holds while they are read: page cache it can drop under pressure) and the
peak of ``RssAnon`` (the process's own memory, which the kernel cannot drop), sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
STRATEGIES = ("linear-probe", "partial:2")
BUDGET_MIB = 256


def _peak_mib() -> int:
    spec = importlib.util.spec_from_file_location("bench_models", HERE / "models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.peak_mib()


def data_file(tmp: Path, n: int) -> Path:
    """``n`` rows of the SMS messages, replicated in order (TSV: label, text)."""
    from frostline.runs.demo import demo_data_path

    rows = []
    seen = set()
    for line in Path(demo_data_path()).read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition("\t")
        if text and text not in seen:
            seen.add(text)
            rows.append(f"{label}\t{text}")
    out = tmp / f"sms-{n}.tsv"
    out.write_text("\n".join(rows[i % len(rows)] for i in range(n)) + "\n", encoding="utf-8")
    return out


def _anon_mib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return round(int(line.split()[1]) / 1024)
    return 0


def one(data: str, strategy: str, out: str) -> dict[str, Any]:
    """One run (called in its own process)."""
    import threading

    import frostline as fl

    peak = [0]

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], _anon_mib())
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()

    cfg = fl.RunConfig(data=data, text_column="1", label_column="0", header=False, strategy=strategy, epochs=1,
                       batch_size=32, cache_budget=BUDGET_MIB, out=out)
    t0 = time.perf_counter()
    m = fl.train(cfg, echo=lambda _s: None).metrics
    seconds = time.perf_counter() - t0
    n = sum(m["data"]["sizes"].values())
    cache = " ".join(h["cache"] for h in m["history"])
    return {"n": n, "seconds": round(seconds, 1), "ms_per_sample": round(1000 * seconds / n, 3),
            "peak_mib": _peak_mib(), "peak_anon_mib": max(peak[0], _anon_mib()), "spilled": "on disk" in cache,
            "cache": cache[:200]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,50000,100000")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--plot", help="draw the curve into this PNG")
    ap.add_argument("--from-json", help="only draw / print results measured before")
    ap.add_argument("--strategies", default=",".join(STRATEGIES), help="measure only these (comma-separated)")
    ap.add_argument("--keep", help="results measured before (JSON) whose other strategies' rows are kept")
    ap.add_argument("--one", nargs=3, metavar=("DATA", "STRATEGY", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(*args.one)))
        return 0
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
    else:
        tmp = Path(tempfile.mkdtemp(prefix="frostline-scaling-"))
        results = []
        measured = [x.strip() for x in args.strategies.split(",") if x.strip()]
        if args.keep:
            results = [r for r in json.loads(Path(args.keep).read_text()) if r["strategy"] not in measured]
        for n in (int(s) for s in args.sizes.split(",")):
            data = data_file(tmp, n)
            for strategy in measured:
                out = tmp / f"{n}-{strategy.replace(':', '_')}"
                done = subprocess.run([sys.executable, __file__, "--one", str(data), strategy, str(out)],
                                      capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    print(done.stderr[-3000:])
                    raise SystemExit(f"{n} {strategy} failed")
                row = {"size": n, "strategy": strategy, **json.loads(done.stdout.strip().splitlines()[-1])}
                results.append(row)
                print(f"{n:>7} {strategy:<13} {row['seconds']:>7} s  {row['ms_per_sample']:>7} ms/sample  "
                      f"{row['peak_anon_mib']:>5} MiB own ({row['peak_mib']:>5} MiB resident)  cache "
                      f"{'spilled to disk' if row['spilled'] else 'in memory'}", flush=True)
    print("\n| texts | strategy | seconds | ms per sample | peak own memory (RssAnon), MiB | peak resident (VmHWM), "
          "MiB | cache |")
    print("|---:|---|---:|---:|---:|---:|---|")
    for r in results:
        cache = "spilled to disk" if r["spilled"] else "in memory"
        print(f"| {r['size']:,} | {r['strategy']} | {r['seconds']} | {r['ms_per_sample']} | "
              f"{r.get('peak_anon_mib', '-')} | {r['peak_mib']} | {cache} |")
    for strategy in STRATEGIES:
        rows = {r["size"]: r for r in results if r["strategy"] == strategy}
        if 10000 in rows and 100000 in rows:
            ratio = rows[100000]["ms_per_sample"] / rows[10000]["ms_per_sample"]
            print(f"{strategy}: time per sample at 100k / at 10k = {ratio:.2f} (flat within 20 %: "
                  f"{'yes' if abs(ratio - 1) <= 0.2 else 'no'})")
    results.sort(key=lambda r: (r["size"], STRATEGIES.index(r["strategy"])))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.plot:
        plot(results, Path(args.plot))
    return 0


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Time per sample and peak memory against the number of texts, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for strategy in STRATEGIES:
        rows = sorted((r for r in results if r["strategy"] == strategy), key=lambda r: r["size"])
        sizes = [r["size"] for r in rows]
        axes[0].plot(sizes, [r["ms_per_sample"] for r in rows], marker="o", label=strategy)
        line, = axes[1].plot(sizes, [r.get("peak_anon_mib", r["peak_mib"]) for r in rows], marker="o",
                             label=f"{strategy}: own memory")
        axes[1].plot(sizes, [r["peak_mib"] for r in rows], marker=".", linestyle="--", color=line.get_color(),
                     label=f"{strategy}: resident, with mapped cache")
    axes[1].axhline(BUDGET_MIB, color="grey", linestyle=":", label=f"cache budget {BUDGET_MIB} MiB")
    for ax, title in zip(axes, ("wall time per text (ms)", "peak memory (MiB)"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("texts (replicated SMS messages)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
