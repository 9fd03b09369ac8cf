"""Attention-probability dropout: frostline's fast stream against SDPA's own ``bernoulli_``, alone.

    .venv/bin/python benchmarks/attention_masks.py                 # partial:2, MiniLM on 350 SMS messages
    .venv/bin/python benchmarks/attention_masks.py --strategy full

Runs ``frostline.fit`` with the benchmark's data and settings (benchmarks/bench.py: 500 SMS messages, train 350,
5 epochs, batch 32, constant AdamW 1e-4) in two ways, alternated ``--repeats`` times, and prints the fastest
training time of each (the frozen-prefix cache's build excluded): with attention dropout drawn from the fast
stream (``frostline_sdpa``, the default), and with it left to SDPA (the hidden-state ``nn.Dropout`` masks are fast
in both).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench

from frostline.training import TrainConfig, dropout, fit, parse_strategy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="partial:2")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    _, model, train, val = bench.text_case(argparse.Namespace(text_samples=500, seed=0, holdout=0))
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    bench.warm_up(model, train)
    cfg = TrainConfig(epochs=5, batch_size=32, eval_batch_size=128, lr=1e-4, head_lr=1e-4, weight_decay=0.0,
                      schedule="constant", warmup=0.0, clip=None, optimizer="adamw", bn="train", patience=None,
                      seed=0, accelerator="cpu", restore_best=False, probe="sgd")
    register, best = dropout._register, {}
    try:
        for _ in range(args.repeats):
            for variant in ("fast stream", "SDPA bernoulli_"):
                dropout._register = register if variant == "fast stream" else (lambda: False)
                model.load_state_dict(state)
                res = fit(model, train, val, parse_strategy(args.strategy, model), cfg)
                seconds = sum(h["seconds"] - h["timing"].get("cache", 0.0) for h in res.history)
                best[variant] = min(best.get(variant, float("inf")), seconds)
    finally:
        dropout._register = register
    print(f"{args.strategy}, 5 epochs, fastest of {args.repeats} (cache build excluded), {res.precision}:")
    for variant, seconds in best.items():
        print(f"  attention dropout from the {variant}: {seconds:.2f} s")
    print(f"  SDPA / stream: {best['SDPA bernoulli_'] / best['fast stream']:.2f}x")


if __name__ == "__main__":
    main()
