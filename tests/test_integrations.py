"""The Lightning and Hugging Face Trainer callbacks, on the real trainers with tiny models: what is frozen stays
unchanged, what a strategy unfreezes joins the optimizer at its learning rate, and the audit is reported."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

import frostline as fl
from tests import models

HAS_PL = importlib.util.find_spec("pytorch_lightning") is not None or importlib.util.find_spec("lightning") is not None
HAS_ACCELERATE = importlib.util.find_spec("accelerate") is not None


def _batches(n: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 40, (n, 8), generator=g)
    labels = (ids[:, 0] > 22).long()
    return ids, torch.ones_like(ids), labels


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.skipif(not HAS_PL, reason="pytorch-lightning absent")
def test_lightning_callback_runs_gradual_unfreezing_in_the_real_trainer(tmp_path):
    from pytorch_lightning import LightningModule, Trainer

    from frostline.integrations.lightning import FrostlineFinetuning

    class Module(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = models.tiny_bert()

        def training_step(self, batch, _i):
            ids, mask, y = batch
            return nn.functional.cross_entropy(self.model(input_ids=ids, attention_mask=mask).logits, y)

        def configure_optimizers(self):
            return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=1e-2)

    ids, mask, y = _batches()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids, mask, y), batch_size=8)
    module = Module()
    before = _state(module.model)
    callback = FrostlineFinetuning("gradual", attr="model", lr=1e-3, head_lr=1e-2)
    trainer = Trainer(max_epochs=3, limit_train_batches=3, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", callbacks=[callback],
                      default_root_dir=str(tmp_path))
    trainer.fit(module, data)
    after = _state(module.model)
    report = callback.report
    assert report is not None and [e["epoch"] for e in report["epochs"]] == [1, 2, 3]
    assert report["epochs"][1]["added"] and report["epochs"][1]["verified"] > 0  # epoch 1's frozen body was verified
    still_frozen = [n for n, p in module.model.named_parameters() if not p.requires_grad]
    assert still_frozen and all(torch.equal(before[n], after[n]) for n in still_frozen)
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    opt = trainer.optimizers[0]
    added = [g for e in report["epochs"] for g in e["added"]]
    assert len(opt.param_groups) == 1 + len(added) >= 3  # the user's group, then one per unfrozen part
    assert [g["initial_lr"] for g in opt.param_groups[1:]] == [pytest.approx(1e-3)] * len(added)


@pytest.mark.skipif(not HAS_PL, reason="pytorch-lightning absent")
def test_lightning_callback_names_a_missing_attribute():
    from frostline.integrations.lightning import FrostlineFinetuning

    module = nn.Module()
    module.net = models.mlp()
    with pytest.raises(fl.FrostlineError, match="no module attribute 'model'; its modules: net"):
        FrostlineFinetuning("full", attr="model").freeze_before_training(module)
    with pytest.raises(fl.FrostlineError, match="in a callback use a strategy that plans by epoch"):
        FrostlineFinetuning("auto-freeze", attr="net").freeze_before_training(module)


@pytest.mark.skipif(not HAS_ACCELERATE, reason="accelerate absent (the HF Trainer needs it)")
def test_hf_callback_freezes_before_the_optimizer_and_unfreezes_into_it(tmp_path):
    from transformers import Trainer, TrainingArguments

    from frostline.integrations.hf import FrostlineCallback

    ids, mask, y = _batches()
    rows = [{"input_ids": i, "attention_mask": m, "labels": t} for i, m, t in zip(ids, mask, y, strict=True)]
    model = models.tiny_bert()
    before = _state(model)
    callback = FrostlineCallback("lp-ft:1", lr=1e-3, head_lr=1e-2)
    args = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=3, per_device_train_batch_size=16,
                             learning_rate=1e-2, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback])
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["classifier.weight", "classifier.bias"]
    trainer.train()
    report = callback.report
    assert report["epochs"][0]["added"] == [] and report["epochs"][1]["added"]  # epoch 2: the body joins
    assert report["epochs"][1]["verified"] > 0  # the probe epoch's frozen body was checked unchanged
    groups = trainer.optimizer.param_groups
    assert len(groups) > 2 and groups[-1]["initial_lr"] == pytest.approx(1e-3)
    changed = [n for n in before if not torch.equal(before[n], model.state_dict()[n])]
    assert "bert.embeddings.word_embeddings.weight" in changed  # trained after the probe epoch


@pytest.mark.skipif(not HAS_PL, reason="pytorch-lightning absent")
def test_lightning_callback_says_when_configure_optimizers_passed_frozen_parameters(tmp_path):
    from pytorch_lightning import LightningModule, Trainer

    from frostline.integrations.lightning import FrostlineFinetuning

    class AllParams(LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = models.tiny_bert().eval()  # as from_pretrained leaves it

        def training_step(self, batch, _i):
            ids, mask, y = batch
            return nn.functional.cross_entropy(self.model(input_ids=ids, attention_mask=mask).logits, y)

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-2)  # frozen ones too

    ids, mask, y = _batches()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(ids, mask, y), batch_size=8)
    module = AllParams()
    callback = FrostlineFinetuning("gradual", attr="model", lr=1e-3)
    Trainer(max_epochs=2, limit_train_batches=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, accelerator="cpu", callbacks=[callback],
            default_root_dir=str(tmp_path)).fit(module, data)
    second = callback.report["epochs"][1]
    assert second["added"] == [] and second["already_in_optimizer"]  # nothing was added: it says so
    assert any("optimizer" in f["message"] for f in callback.report["findings"])  # the audit saw the optimizer
    assert module.model.classifier.training  # put in train mode; frozen parts stay pinned
