"""Stage 2, the model: load what a user names (``minilm``, ``hf:``, ``module:function``, a file), pool the way the
model was trained for, find and replace the classifier head, find the stack of repeated blocks, and cut the model
into parts (stem, blocks, post, head).

Knows nothing about freezing or training.
"""

from typing import Any

from .blocks import Blocks, discover_blocks
from .heads import HeadInfo, find_head, replace_head
from .load import LoadedModel, check_model_spec, load_model, minilm_dir
from .outputs import logits_of
from .parts import Part, model_parts
from .pooling import PooledTextClassifier, Pooling, check_pooling

__all__ = [
    "Blocks",
    "HeadInfo",
    "LoadedModel",
    "Part",
    "PooledTextClassifier",
    "Pooling",
    "check_model_spec",
    "check_pooling",
    "discover_blocks",
    "find_head",
    "load_model",
    "logits_of",
    "minilm_dir",
    "model_parts",
    "replace_head",
]


def __getattr__(name: str) -> Any:
    """Names of the old ``frostline.models`` module that are not part of this package's surface."""
    from .._compat import old_attribute

    return old_attribute(__name__, name, ["frostline.models.load"])
