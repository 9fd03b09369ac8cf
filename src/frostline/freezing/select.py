"""Resolve what a user types to the modules and parameters of a model.

Selector kinds (all plain strings, usable on the command line):

==========================  ===========================================================================
``all``                     the whole model
``head``                    the classifier head (see :func:`frostline.find_head`)
``stem``                    everything before the first block (embeddings, conv stem)
``post``                    everything between the last block and the head (pooler, final norm)
``blocks:0-3``              blocks 0 to 3 inclusive of the discovered stack; also ``blocks:2``, ``blocks:4-``,
                            ``blocks:0,2,5``; ``depth:`` is an alias
``last:2`` / ``first:2``    the last / first N blocks
``type:LayerNorm``          modules of a class (name or glob such as ``type:BatchNorm*``)
``re:^encoder\\.layer\\.[0-3]\\.``  a regular expression searched in module and parameter names
``encoder.layer.*``         a glob over module and parameter names
``encoder.layer.0``         a dotted module or parameter path
==========================  ===========================================================================

Paths, globs and regexes also match names relative to a Hugging Face base model, so ``encoder.layer.5``
finds ``bert.encoder.layer.5``. A selector that matches nothing raises :class:`SelectorError` naming the
closest names the model has.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn

from ..core.errors import SelectorError, did_you_mean
from ..models.blocks import Blocks, discover_blocks
from ..models.heads import find_head
from ..models.tree import is_within

_GLOB_CHARS = set("*?[")
_LAYOUT_KINDS = ("blocks", "depth", "last", "first", "stem", "post")


@dataclass(frozen=True)
class Selection:
    """What a selector resolved to.

    Attributes:
        selector: The selector as typed.
        modules: Module paths matched (each stands for its whole subtree); ``""`` is the root.
        params: Every parameter name covered, in model order.
    """

    selector: str
    modules: tuple[str, ...]
    params: tuple[str, ...]


def _aliases(model: nn.Module, name: str) -> list[str]:
    """``name`` plus its form relative to a Hugging Face base model (``bert.x`` -> ``x``)."""
    prefix = getattr(model, "base_model_prefix", "")
    if prefix and name.startswith(prefix + "."):
        return [name, name[len(prefix) + 1 :]]
    return [name]


def _parse_range(spec: str, n: int, selector: str) -> list[int]:
    indices: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d*)\s*-\s*(\d*)|(\d+)", part)
        if not part or m is None or part == "-":
            raise SelectorError(
                f"bad block range {selector!r}: expected 'blocks:A-B', 'blocks:A', 'blocks:A-' or 'blocks:A,B,C' "
                "with block numbers counted from 0"
            )
        if m.group(3) is not None:
            lo = hi = int(m.group(3))
        else:
            lo = int(m.group(1)) if m.group(1) else 0
            hi = int(m.group(2)) if m.group(2) else n - 1
        if lo > hi:
            raise SelectorError(f"bad block range {selector!r}: start {lo} is after end {hi}")
        if hi >= n:
            raise SelectorError(f"{selector!r} is out of range: the model has {n} blocks (0-{n - 1})")
        indices.extend(range(lo, hi + 1))
    return sorted(set(indices))


def _count(spec: str, selector: str) -> int:
    if not spec.strip().isdigit() or int(spec) < 1:
        raise SelectorError(f"bad selector {selector!r}: expected a positive number of blocks, as in 'last:2'")
    return int(spec)


def _block_selection(model: nn.Module, kind: str, arg: str, selector: str, blocks: Blocks | None) -> list[str]:
    layout = blocks or discover_blocks(model)
    n = len(layout.blocks)
    if kind in ("blocks", "depth"):
        return [layout.blocks[i] for i in _parse_range(arg, n, selector)]
    k = _count(arg, selector)
    if k > n:
        raise SelectorError(f"{selector!r} asks for {k} blocks but the model has {n}: {', '.join(layout.blocks)}")
    return list(layout.blocks[-k:] if kind == "last" else layout.blocks[:k])


def resolve(model: nn.Module, selector: str, *, blocks: Blocks | None = None) -> Selection:
    """Resolve one selector to modules and parameters.

    Args:
        model: The model.
        selector: A selector string (see the module docstring).
        blocks: A precomputed layout, to avoid rediscovering it for every selector.

    Returns:
        The :class:`Selection`.

    Raises:
        SelectorError: Malformed, or matches nothing (the message lists the closest names).
    """
    if not isinstance(selector, str) or not selector.strip():
        raise SelectorError(f"a selector must be a non-empty string, got {selector!r}")
    sel = selector.strip()
    module_names = [n for n, _ in model.named_modules()]
    param_names = [n for n, _ in model.named_parameters()]
    kind, _, arg = sel.partition(":")
    modules: list[str] = []
    params: list[str] = []
    if sel == "all":
        modules = [""]
    elif sel == "head":
        modules = [find_head(model).name]
    elif sel in ("stem", "post"):
        layout = blocks or discover_blocks(model)
        modules = list(layout.stem if sel == "stem" else layout.post)
        if not modules:
            raise SelectorError(f"{sel!r} matches nothing: {type(model).__name__} has no modules {sel} its blocks")
    elif arg and kind in ("blocks", "depth", "last", "first"):
        modules = _block_selection(model, kind, arg, sel, blocks)
    elif kind == "type" and arg:
        modules = _by_type(model, arg, sel)
    elif kind == "re" and arg:
        try:
            pattern = re.compile(arg)
        except re.error as exc:
            raise SelectorError(f"bad regular expression in {sel!r}: {exc}") from None
        modules = [n for n in module_names if n and any(pattern.search(a) for a in _aliases(model, n))]
        params = [n for n in param_names if any(pattern.search(a) for a in _aliases(model, n))]
    elif _GLOB_CHARS & set(sel):
        modules = _glob(model, module_names, sel)
        params = _glob(model, param_names, sel)
    elif ":" in sel:
        raise SelectorError(
            f"unknown selector kind {kind + ':'!r} in {sel!r}; expected one of blocks:, depth:, last:, first:, "
            "type:, re:, or a module path, glob, 'all', 'head', 'stem', 'post'"
        )
    else:
        modules = [n for n in module_names if n and sel in _aliases(model, n)]
        params = [n for n in param_names if sel in _aliases(model, n)]
        if not modules and not params:
            modules = [n for n in module_names if n.endswith("." + sel)]
            params = [n for n in param_names if n.endswith("." + sel)]
    if not modules and not params:
        pool = [n for n in module_names if n] + param_names
        hint = did_you_mean(arg if kind == "re" else sel, pool)
        raise SelectorError(f"selector {sel!r} matches nothing in {type(model).__name__}{hint}")
    direct = set(params)
    covered = [n for n in param_names if n in direct or any(is_within(n, m) for m in modules)]
    return Selection(sel, tuple(modules), tuple(covered))


def _glob(model: nn.Module, names: Iterable[str], pattern: str) -> list[str]:
    names = [n for n in names if n]
    hits = [n for n in names if any(fnmatch.fnmatchcase(a, pattern) for a in _aliases(model, n))]
    return hits or [n for n in names if fnmatch.fnmatchcase(n, "*." + pattern)]


def _by_type(model: nn.Module, arg: str, sel: str) -> list[str]:
    types = {n: type(m) for n, m in model.named_modules()}
    is_glob = bool(_GLOB_CHARS & set(arg))

    def matches(cls: type) -> bool:
        for name in (cls.__name__, f"{cls.__module__}.{cls.__qualname__}"):
            if fnmatch.fnmatchcase(name, arg) if is_glob else name == arg:
                return True
        return False

    hits = [n for n, cls in types.items() if matches(cls)]
    if not hits:
        present = sorted({cls.__name__ for cls in types.values()})
        raise SelectorError(
            f"selector {sel!r} matches no module of type {arg!r} in {type(model).__name__}"
            f"{did_you_mean(arg, present)} (types present: {', '.join(present[:12])}"
            f"{', ...' if len(present) > 12 else ''})"
        )
    return hits


def resolve_params(model: nn.Module, selectors: Iterable[str], *, blocks: Blocks | None = None) -> list[str]:
    """Union of the parameter names covered by ``selectors``, in model order."""
    covered: set[str] = set()
    for sel in selectors:
        if blocks is None and isinstance(sel, str) and sel.split(":")[0] in _LAYOUT_KINDS:
            blocks = discover_blocks(model)
        covered.update(resolve(model, sel, blocks=blocks).params)
    return [n for n, _ in model.named_parameters() if n in covered]
