"""The whole process, as a user times it: ``frostline train`` against a textbook script doing the same job.

    .venv/bin/python benchmarks/process.py                       # linear-probe, 700 SMS messages, 5 epochs
    .venv/bin/python benchmarks/process.py --strategy partial:2

Both are timed from process start to exit (imports, model load, tokenising, training, scoring, writing):

* ``frostline train --strategy S`` on the demo SMS data (duplicates dropped, a stratified sample), which also
  scores the base model, checks bf16, verifies frozen tensors, checkpoints, writes metrics, predictions and the
  HTML report; its loop time is ``metrics.json`` ``seconds.total``;
* ``--textbook``: this file run as a script: the same sample and split, MiniLM with a new head, the textbook loop
  (benchmarks/textbook.py, fp32), test accuracy, ``model.safetensors`` saved; nothing else.

Then the short commands, each the fastest of ``--repeats`` runs, alternated:

* ``frostline --help`` (the command line must not import torch to print its help);
* ``frostline predict`` on 20 texts with the run just trained, against a plain transformers script that loads the
  same model from ``frostline export``'s folder, as the recipe in its README.md does, and predicts the same texts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FROSTLINE = str(Path(sys.executable).parent / "frostline")


def textbook(args: argparse.Namespace, out: Path) -> None:
    """The textbook job in this process (run with --textbook)."""
    t0 = time.perf_counter()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from safetensors.torch import save_file
    from textbook import textbook_fit

    import frostline as fl
    from frostline.data.batching import Encoded
    from frostline.models.parts import model_parts
    from frostline.runs.demo import demo_data_path
    from frostline.training import parse_strategy

    ds, _ = fl.dedup(fl.read_table(demo_data_path(), "1", "0", header=False))
    splits = fl.split(fl.data.limit(ds, args.max_samples, 0), 0.15, 0.15, seed=0)
    loaded = fl.load_model("minilm")
    torch.manual_seed(0)  # the new head starts the same in every run (frostline seeds its head too)
    fl.replace_head(loaded.model, 2, labels=splits.label_names)
    model = loaded.model
    enc = [Encoded(s, loaded.tokenizer, 128) for s in (splits.train, splits.val, splits.test)]
    trainable = parse_strategy(args.strategy, model).plan(0, model_parts(model), 1e-4, 1e-2).params
    t1 = time.perf_counter()
    run = textbook_fit(model, enc[0], enc[1], trainable, args.epochs, 16, 128, 1e-4, 0)
    loop = time.perf_counter() - t1
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(**b.inputs).logits.argmax(-1) == b.labels).sum()) for b in enc[2].batches(128))
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    (out / "result.json").write_text(json.dumps({"loop": loop, "in_process": time.perf_counter() - t0,
                                                 "test_accuracy": hits / len(enc[2]), "epochs": run["seconds"]}))


def plain_script(export: Path, texts: Path) -> str:
    """The plain transformers script: the recipe ``frostline export`` writes into the folder's README.md (the
    encoder with AutoModel and AutoTokenizer, its pooling, the head's weights), run on the texts of ``texts``."""
    readme = (export / "README.md").read_text(encoding="utf-8")
    recipe = readme.split("```python", 1)[1].split("```", 1)[0]
    if '["your text"]' not in recipe:
        raise SystemExit(f"{export}/README.md: no recipe with ['your text'] to run")
    return (f"texts = open({str(texts)!r}, encoding='utf-8').read().splitlines()\n"
            + recipe.replace('["your text"]', "texts"))


def fastest(commands: dict[str, list[str]], repeats: int) -> dict[str, float]:
    """Wall seconds of each command (the fastest of ``repeats`` runs, the commands alternated)."""
    best = dict.fromkeys(commands, float("inf"))
    for _ in range(repeats):
        for name, command in commands.items():
            t0 = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def short_commands(run: Path, tmp: Path, texts: list[str], repeats: int) -> None:
    """``frostline --help``, and ``frostline predict`` on 20 texts against a plain transformers script."""
    subprocess.run([FROSTLINE, "export", "--checkpoint", str(run), "--out", str(tmp / "export")], check=True,
                   capture_output=True)
    (tmp / "texts.txt").write_text("\n".join(texts[:20]) + "\n", encoding="utf-8")
    times = fastest({"help": [FROSTLINE, "--help"],
                     "predict": [FROSTLINE, "predict", "--checkpoint", str(run), "--data", str(tmp / "texts.txt"),
                                 "--out", "-"],
                     "plain": [sys.executable, "-c", plain_script(tmp / "export", tmp / "texts.txt")]},
                    repeats)
    print(f"\nshort commands, fastest of {repeats}:")
    print("| command | wall s |\n|---|---|")
    print(f"| frostline --help | {times['help']:.2f} |")
    print(f"| frostline predict, 20 texts | {times['predict']:.2f} |")
    print(f"| plain transformers script, same model and texts | {times['plain']:.2f} |")
    print(f"predict: plain script / frostline {times['plain'] / times['predict']:.2f}x")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategy", default="linear-probe")
    ap.add_argument("--max-samples", type=int, default=700)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each short command; the fastest is reported")
    ap.add_argument("--textbook", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.textbook:
        textbook(args, Path(args.textbook))
        return 0
    with tempfile.TemporaryDirectory(prefix="frostline-process-") as folder:  # removed afterwards (about 175 MB)
        run_jobs(args, Path(folder))
    return 0


def run_jobs(args: argparse.Namespace, tmp: Path) -> None:
    """The textbook script and ``frostline train``, then the short commands, all writing under ``tmp``."""
    from frostline.runs.demo import demo_data_path

    rows = []
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--strategy", args.strategy, "--max-samples", str(args.max_samples),
                    "--epochs", str(args.epochs), "--textbook", str(tmp / "tb")], check=True)
    tb_wall = time.perf_counter() - t0
    tb = json.loads((tmp / "tb" / "result.json").read_text())
    rows.append(("textbook script (fp32)", tb_wall, tb["loop"], tb["test_accuracy"]))
    t0 = time.perf_counter()
    subprocess.run([FROSTLINE, "train", "--data", str(demo_data_path()), "--text-column", "1", "--label-column", "0",
                    "--no-header", "--dedup", "--max-samples", str(args.max_samples), "--epochs", str(args.epochs),
                    "--batch-size", "16", "--strategy", args.strategy, "--out", str(tmp / "fl")], check=True,
                   capture_output=True)
    fl_wall = time.perf_counter() - t0
    m = json.loads((tmp / "fl" / "metrics.json").read_text())
    rows.append((f"frostline train ({m['run']['precision']})", fl_wall, m["seconds"]["total"], m["test"]["accuracy"]))
    print(f"{args.strategy}, {args.max_samples} SMS messages, {args.epochs} epochs, batch 16, 2 CPU threads")
    print("| job | process wall s | loop s | process / loop | test accuracy |\n|---|---|---|---|---|")
    for name, wall, loop, acc in rows:
        print(f"| {name} | {wall:.1f} | {loop:.1f} | {wall / loop:.2f}x | {acc:.4f} |")
    print(f"process-level textbook / frostline: {tb_wall / fl_wall:.2f}x; loop-level: {tb['loop'] / rows[1][2]:.2f}x")
    texts = [line.split("\t", 1)[1] for line in demo_data_path().read_text(encoding="utf-8").splitlines()[:20]]
    short_commands(tmp / "fl", tmp, texts, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
