"""Errors for user mistakes: one clear message naming the bad value and what was expected."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: the longest error message shown whole; a longer one (a huge bad value echoed) keeps its start and end
MESSAGE_LIMIT = 2000


class FrostlineError(Exception):
    """A user mistake (bad selector, bad option, bad file). The CLI prints it as one line, no traceback."""

    def __init__(self, message: object = "", *args: object) -> None:
        text = str(message)
        if len(text) > MESSAGE_LIMIT:
            text = f"{text[:1500]}… ({len(text) - 1800:,} characters not shown) …{text[-300:]}"
        super().__init__(text, *args)


class SelectorError(FrostlineError, LookupError):
    """A selector that is malformed or matches nothing in the model."""


class FrozenChangedError(FrostlineError, AssertionError):
    """A tensor that was frozen changed (raised by :func:`frostline.verify_frozen`)."""


def closest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Return up to ``n`` candidates closest to ``name``.

    Matches on the whole string and on the last dotted component, so ``layer.7`` finds ``encoder.layer.5``.
    """
    pool = list(dict.fromkeys(c for c in candidates if c))
    if not pool:
        return []
    found = difflib.get_close_matches(name, pool, n=n, cutoff=0.5)
    if len(found) < n:
        # Compare suffixes of the same depth: "layer.7" against "encoder.layer.5" -> "layer.5".
        depth = name.count(".") + 1
        by_suffix: dict[str, str] = {}
        for c in pool:
            by_suffix.setdefault(".".join(c.split(".")[-depth:]), c)
        for s in difflib.get_close_matches(name, list(by_suffix), n=n, cutoff=0.5):
            if by_suffix[s] not in found:
                found.append(by_suffix[s])
    return found[:n]


def did_you_mean(name: str, candidates: Iterable[str], n: int = 5) -> str:
    """A ``"; closest: a, b"`` suffix for an error message, or ``""`` when nothing is close."""
    found = closest(str(name)[:200], candidates, n)
    return f"; closest names: {', '.join(found)}" if found else ""


def shorten(text: str, width: int = 48) -> str:
    """``text`` cut to ``width`` characters with an ellipsis: a label or value as tables, plots and messages show
    it (the full text stays in the JSON)."""
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def shown(value: object, width: int = 80) -> str:
    """``repr(value)`` for an error message, at most ``width`` characters (a huge bad value is not echoed whole)."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 1]}… ({len(text):,} characters)"


def shorten_labels(text: str, labels: Iterable[str], width: int = 48) -> str:
    """``text`` with every label longer than ``width`` characters shortened (findings quote class names whole)."""
    for label in sorted((str(n) for n in labels if len(str(n)) > width), key=len, reverse=True):
        text = text.replace(label, shorten(label, width))
    return text
