"""The textbook fine-tuning loop frostline is measured against.

What a tutorial does: set ``requires_grad=False`` on the frozen parameters, build the optimizer over *all*
parameters (AdamW for the text model; SGD with momentum 0.9 for the CNN, as PyTorch's transfer-learning tutorial),
run the full forward pass every epoch with ``model.train()``, evaluate on validation after each epoch. So that
results can be compared number for number, frozen modules are put back in eval mode after ``model.train()``
(the Keras transfer-learning recipe; without it, dropout in frozen layers makes every run different).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from frostline.data.batching import Encoded
from frostline.models.outputs import logits_of


def _fully_frozen_modules(model: nn.Module) -> list[nn.Module]:
    out = []
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            out.append(module)
    return out


def _run(model: nn.Module, inputs: Any) -> torch.Tensor:
    return logits_of(model(**inputs) if isinstance(inputs, dict) else model(inputs))


def textbook_fit(model: nn.Module, train: Encoded, val: Encoded, trainable: set[str], epochs: int,
                 batch_size: int, eval_batch_size: int, lr: float, seed: int, optimizer: str = "adamw"
                 ) -> dict[str, Any]:
    """Train like a tutorial; returns seconds per epoch and the final validation probabilities."""
    torch.manual_seed(seed)
    for name, p in model.named_parameters():
        p.requires_grad = name in trainable
    frozen = _fully_frozen_modules(model)
    opt = (torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9) if optimizer == "sgd"  # all parameters
           else torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0))
    seconds = []
    probs = np.zeros((0,))
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        for module in frozen:
            module.eval()
        for batch in train.batches(batch_size, shuffle=True, seed=seed, epoch=epoch):
            loss = nn.functional.cross_entropy(_run(model, batch.inputs).float(), batch.labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        out = []
        with torch.no_grad():
            for batch in val.batches(eval_batch_size):
                out.append((batch.positions, torch.softmax(_run(model, batch.inputs).float(), -1).numpy()))
        positions = np.concatenate([p for p, _ in out])
        probs = np.concatenate([q for _, q in out])[np.argsort(positions)]
        seconds.append(time.perf_counter() - t0)
    return {"seconds": seconds, "probs": probs}
