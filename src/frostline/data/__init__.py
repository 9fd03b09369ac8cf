"""Stage 1 of a run, the data: read labelled tables, image folders and tensors; stratified splits; the same sample
on both sides of a split (leakage); tokenised / tensor batches; training-time augmentation.

Knows nothing about models or training.
"""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_exports

if TYPE_CHECKING:
    from .augment import Augment, parse_augment
    from .batching import Batch, Encoded
    from .bundled import load_animal_mnist, split_half_ceiling, write_bundled
    from .dataset import Dataset, Splits
    from .images import from_tensors, image_tensor, read_image_folder
    from .leakage import LeakageReport, check_splits, dedup, label_conflicts
    from .splits import limit, split
    from .tables import read_table
    from .unlabelled import read_unlabelled

__all__ = [
    "Augment",
    "Batch",
    "Dataset",
    "Encoded",
    "LeakageReport",
    "Splits",
    "check_splits",
    "dedup",
    "from_tensors",
    "image_tensor",
    "label_conflicts",
    "limit",
    "load_animal_mnist",
    "parse_augment",
    "read_image_folder",
    "read_table",
    "read_unlabelled",
    "split",
    "split_half_ceiling",
    "write_bundled",
]

__getattr__, __dir__ = lazy_exports(__name__, __file__)
