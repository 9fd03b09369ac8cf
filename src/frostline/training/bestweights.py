"""The best epoch's weights, kept as a copy of only what training can change."""

from __future__ import annotations

import torch
from torch import nn

from ..freezing.plan import is_pinned


def mutable_names(model: nn.Module) -> set[str]:
    """State-dict keys that training can change now: trainable parameters, buffers of modules not pinned to eval."""
    names = {n for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    for mod_name, module in model.named_modules(remove_duplicate=False):
        if not is_pinned(module):
            names.update(f"{mod_name}.{b}" if mod_name else b for b, _ in module.named_buffers(recurse=False))
    return names & set(model.state_dict(keep_vars=True))


class BestState:
    """The best epoch's weights, copying only what training can change (frozen tensors stay as they are).

    At the best epoch it clones the mutable tensors. When a later plan unfreezes a tensor, :meth:`extend` clones it
    first: it has not changed since the best epoch, since it was frozen in between. A frozen 7B backbone with a new
    head costs a copy of the head, not of the model.
    """

    def __init__(self, state: dict[str, torch.Tensor] | None = None) -> None:
        self.state: dict[str, torch.Tensor] = dict(state or {})

    def capture(self, model: nn.Module) -> None:
        """Record the current epoch as the best."""
        keep = mutable_names(model)
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items() if k in keep}

    def extend(self, model: nn.Module) -> None:
        """Before tensors become trainable, keep their (unchanged since the best epoch) values."""
        if self.state:
            current = model.state_dict()
            for k in mutable_names(model) - self.state.keys():
                self.state[k] = current[k].detach().clone()

    def restore(self, model: nn.Module) -> None:
        """Load the best epoch's values back."""
        if self.state:
            model.load_state_dict(self.state, strict=False)
