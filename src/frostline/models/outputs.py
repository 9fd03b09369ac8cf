"""Model outputs: where the logits are."""

from __future__ import annotations

from typing import Any

import torch

from ..core.errors import FrostlineError


def logits_of(output: Any) -> torch.Tensor:
    """Logits from a model output: a tensor, a Hugging Face output, or a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, tuple | list) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise FrostlineError(f"cannot find logits in a model output of type {type(output).__name__}")
