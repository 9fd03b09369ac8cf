"""The tools a user would otherwise reach for, on the benchmark's data, split, seed, epochs and batch size.

* the Hugging Face ``Trainer`` with the same freezing (``requires_grad=False`` on what the strategy freezes; AdamW at
  the same constant learning rate, no weight decay, no warm-up; evaluation once per epoch on validation);
* "encode once, fit LogisticRegression" (SetFit-style, for the linear probe): the frozen model's pooled features
  of train and validation computed once under ``inference_mode``, then scikit-learn's ``LogisticRegression()``;
* fastai ``fine_tune``: only where fastai installs without CUDA and without changing the project's dependencies;
  it needs torchvision (a CUDA build on the registry that does not import with CPU torch) and spacy, so it is
  skipped with that reason unless it imports.

Each returns seconds (training and validation), validation probabilities and its own name; peers that cannot run
return ``{"skipped": reason}``.
"""

from __future__ import annotations

import importlib.util
import tempfile
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from frostline.data.batching import Encoded
from frostline.models.outputs import logits_of


class _Rows(torch.utils.data.Dataset):
    """An :class:`Encoded` split as the dict rows the HF Trainer collates (padded per batch by its collator)."""

    def __init__(self, enc: Encoded) -> None:
        self.enc = enc

    def __len__(self) -> int:
        return len(self.enc)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"input_ids": self.enc.ids[i], "labels": int(self.enc.ds.labels[i])}


def hf_trainer(model: nn.Module, tok: Any, train: Encoded, val: Encoded, trainable: set[str], epochs: int,
               batch_size: int, eval_batch_size: int, lr: float, seed: int, bf16: bool) -> dict[str, Any]:
    """Fine-tune with ``transformers.Trainer`` and the same frozen set."""
    if importlib.util.find_spec("accelerate") is None:
        return {"skipped": "accelerate is not installed (the HF Trainer needs it)"}
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    for name, p in model.named_parameters():
        p.requires_grad = name in trainable
    seconds: list[float] = []

    from transformers import TrainerCallback

    class EpochClock(TrainerCallback):  # epoch boundaries from the Trainer's own callbacks
        def on_epoch_begin(self, *_a: Any, **_k: Any) -> None:
            self.t0 = time.perf_counter()

        def on_epoch_end(self, *_a: Any, **_k: Any) -> None:
            seconds.append(time.perf_counter() - self.t0)

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
                                 per_device_eval_batch_size=eval_batch_size, learning_rate=lr, weight_decay=0.0,
                                 warmup_steps=0, lr_scheduler_type="constant", eval_strategy="epoch",
                                 save_strategy="no", logging_strategy="no", report_to=[], seed=seed, use_cpu=True,
                                 bf16=bf16, disable_tqdm=True, dataloader_num_workers=0,
                                 remove_unused_columns=False)

        def loss(outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
            return nn.functional.cross_entropy(logits_of(outputs).float(), labels)

        trainer = Trainer(model=model, args=args, train_dataset=_Rows(train), eval_dataset=_Rows(val),
                          data_collator=DataCollatorWithPadding(tok), callbacks=[EpochClock()],
                          compute_loss_func=loss)
        t0 = time.perf_counter()
        trainer.train()
        total = time.perf_counter() - t0
        logits = trainer.predict(_Rows(val)).predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    probs = torch.softmax(torch.as_tensor(np.asarray(logits, dtype=np.float32)), -1).numpy()
    return {"seconds": total, "per_epoch": seconds, "probs": probs}


def encode_once(model: nn.Module, head: str, train: Encoded, val: Encoded, batch_size: int) -> dict[str, Any]:
    """SetFit-style linear probe: pooled features once, then ``LogisticRegression()``."""
    from sklearn.linear_model import LogisticRegression

    layer = model.get_submodule(head)
    t0 = time.perf_counter()
    feats = {}
    model.eval()
    for name, enc in (("train", train), ("val", val)):
        chunks: list[tuple[np.ndarray, np.ndarray]] = []
        hook = layer.register_forward_pre_hook(lambda _m, a, c=chunks: c.append(a[0].detach().float().numpy()))
        positions = []
        with torch.inference_mode():
            for batch in enc.batches(batch_size):
                logits_of(model(**batch.inputs) if isinstance(batch.inputs, dict) else model(batch.inputs))
                positions.append(batch.positions)
        hook.remove()
        x = np.concatenate(chunks)
        out = np.empty_like(x)
        out[np.concatenate(positions)] = x
        feats[name] = out
    clf = LogisticRegression(max_iter=2000).fit(feats["train"], train.ds.labels)
    probs = clf.predict_proba(feats["val"])
    return {"seconds": time.perf_counter() - t0, "probs": probs}


def fastai_fine_tune(*_args: Any, **_kwargs: Any) -> dict[str, Any]:
    """fastai's ``fine_tune``, where it imports."""
    try:
        import fastai  # noqa: F401
    except Exception as exc:  # ImportError, or its torchvision failing against CPU torch
        return {"skipped": f"fastai does not import here ({type(exc).__name__}): it needs torchvision, whose "
                           "registry build is for CUDA, and spacy; installing it would change the project's torch"}
    return {"skipped": "fastai imported, but its text pipeline needs its own tokenizer (not the HF model's); "
                       "not wired"}  # pragma: no cover - not installed here


def run_peers(model: nn.Module, tok: Any, state: dict, train: Encoded, val: Encoded, strategy: str,
              trainable: set[str], head: str, args: Any, peak_memory: Any, bf16: bool) -> dict[str, dict[str, Any]]:
    """Every peer that applies to ``strategy``, each from the same starting weights, with its peak memory."""
    import frostline as fl

    out: dict[str, dict[str, Any]] = {}
    jobs = [("HF Trainer", lambda: hf_trainer(model, tok, train, val, trainable, args.epochs, args.batch_size,
                                              args.eval_batch_size, args.lr, args.seed, bf16)),
            ("fastai fine_tune", fastai_fine_tune)]
    if strategy == "linear-probe":
        jobs.append(("encode once + LogisticRegression", lambda: encode_once(model, head, train, val,
                                                                             args.eval_batch_size)))
    for name, job in jobs:
        model.load_state_dict(state)
        fl.unfreeze(model, "all")
        mem: dict[str, float] = {}
        with peak_memory(mem):
            res = job()
        if "skipped" not in res:
            res["peak_mib"] = mem["peak_mib"]
        out[name] = res
    return out
