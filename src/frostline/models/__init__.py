"""Stage 2, the model: load what a user names (``minilm``, ``hf:``, ``module:function``, a file), pool the way the
model was trained for, find and replace the classifier head, find the stack of repeated blocks, and cut the model
into parts (stem, blocks, post, head).

Knows nothing about freezing or training.
"""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(__name__, __file__)
