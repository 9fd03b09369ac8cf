"""The tools a user would otherwise reach for, on the benchmark's data, split, seed, epochs and batch size.

* the Hugging Face ``Trainer`` with the same freezing (``requires_grad=False`` on what the strategy freezes; AdamW at
  the same constant learning rate, no weight decay, no warm-up; evaluation once per epoch on validation);
* "encode once, fit LogisticRegression" (SetFit-style, for the linear probe): the frozen model's pooled features
  of train and validation computed once under ``inference_mode``, then scikit-learn's ``LogisticRegression()``;
* fastai ``fine_tune`` / ``fit_one_cycle`` (see :func:`fastai_fine_tune`): fastai's wheel requires torchvision, a CUDA
  build on the registry, but only ``fastai.vision`` imports it; ``make bench-peers`` installs fastai and its
  pure-Python requirements with ``--no-deps`` (torch untouched), and the peer is skipped with the reason where it
  does not import.

Each returns seconds (training and validation), validation probabilities and its own name; peers that cannot run
return ``{"skipped": reason}``.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from frostline.data.batching import Encoded
from frostline.models.outputs import logits_of

#: where `make bench-peers` installs fastai and its pure-Python requirements
PEERS = Path(__file__).resolve().parent.parent / ".bench-peers"


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


class _Logits(nn.Module):
    """The HF model as fastai calls it: ``model(input_ids, attention_mask)`` returns logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(input_ids=ids, attention_mask=mask))


def _loader(enc: Encoded, batch_size: int, shuffle: bool, seed: int) -> torch.utils.data.DataLoader:
    """(ids, mask, label) batches padded to their own longest, like the HF collator."""
    def collate(rows: list[int]) -> tuple[torch.Tensor, ...]:
        b = enc.batch(np.asarray(rows))
        return b.inputs["input_ids"], b.inputs["attention_mask"], b.labels

    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(range(len(enc)), batch_size=batch_size, shuffle=shuffle, generator=g,
                                       collate_fn=collate)


def fastai_fine_tune(model: nn.Module, train: Encoded, val: Encoded, strategy: str, trainable: set[str],
                     head: str, epochs: int, batch_size: int, eval_batch_size: int, lr: float, seed: int,
                     bf16: bool) -> dict[str, Any]:
    """fastai's recipe on a splitter over the HF model: parameter groups [frozen, trainable] (``full``: [body,
    head]); ``learn.freeze()`` + ``fit_one_cycle(epochs, lr)`` for a frozen model, ``fine_tune(epochs - 1,
    base_lr=lr)`` (one frozen epoch, then all with discriminative rates) for ``full``. Its optimizer (Adam, weight
    decay 0.01) and schedules are its own. ``train_bn=False``: fastai would otherwise train every LayerNorm of the
    frozen part too (its ``norm_types`` include LayerNorm), not the frozen set frostline and the others use. fastai's
    ``to_bf16`` autocasts on CUDA only, so on a CPU bf16 is a callback here entering ``torch.autocast("cpu")``."""
    if PEERS.is_dir() and str(PEERS) not in sys.path:
        sys.path.append(str(PEERS))  # after the venv: nothing the project installed is replaced
    try:
        from fastai.callback.core import Callback
        from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (patches Learner)
        from fastai.data.core import DataLoaders
        from fastai.learner import Learner
    except Exception as exc:  # not installed (make bench-peers), or an import that fails against CPU torch
        return {"skipped": f"fastai does not import here ({type(exc).__name__}: {str(exc)[:80]}); `make "
                           "bench-peers` installs it without its CUDA torchvision"}

    class CPUAutocast(Callback):
        order = 10

        def before_batch(self) -> None:
            self.ctx = torch.autocast("cpu", dtype=torch.bfloat16)
            self.ctx.__enter__()

        def after_pred(self) -> None:
            self.learn.pred = self.pred.float()

        def after_loss(self) -> None:
            self.ctx.__exit__(None, None, None)

    torch.manual_seed(seed)
    wrapped = _Logits(model)
    names = dict(wrapped.named_parameters())
    if strategy == "full":
        groups = [[p for n, p in names.items() if not n.startswith(f"model.{head}")],
                  [p for n, p in names.items() if n.startswith(f"model.{head}")]]
    else:
        groups = [[p for n, p in names.items() if n.removeprefix("model.") not in trainable],
                  [p for n, p in names.items() if n.removeprefix("model.") in trainable]]
    dls = DataLoaders(_loader(train, batch_size, True, seed), _loader(val, eval_batch_size, False, seed),
                      device=torch.device("cpu"))
    learn = Learner(dls, wrapped, loss_func=nn.CrossEntropyLoss(), splitter=lambda _m: groups, train_bn=False,
                    cbs=[CPUAutocast()] if bf16 else [])
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        if strategy == "full":
            learn.fine_tune(epochs - 1, base_lr=lr, freeze_epochs=1)
        else:
            learn.freeze()
            learn.fit_one_cycle(epochs, lr)
    total = time.perf_counter() - t0
    with learn.no_bar():
        probs, _ = learn.get_preds(dl=dls.valid)
    # logits: fastai applies no activation for a plain nn.CrossEntropyLoss
    return {"seconds": total, "probs": torch.softmax(probs.float(), -1).numpy()}


def run_peers(model: nn.Module, tok: Any, state: dict, train: Encoded, val: Encoded, strategy: str,
              trainable: set[str], head: str, args: Any, peak_memory: Any, bf16: bool) -> dict[str, dict[str, Any]]:
    """Every peer that applies to ``strategy``, each from the same starting weights, with its peak memory."""
    import frostline as fl

    out: dict[str, dict[str, Any]] = {}
    jobs = [("HF Trainer", lambda: hf_trainer(model, tok, train, val, trainable, args.epochs, args.batch_size,
                                              args.eval_batch_size, args.lr, args.seed, bf16)),
            ("fastai fine_tune", lambda: fastai_fine_tune(model, train, val, strategy, trainable, head.split(".")[0],
                                                          args.epochs, args.batch_size, args.eval_batch_size,
                                                          args.lr, args.seed, bf16))]
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
