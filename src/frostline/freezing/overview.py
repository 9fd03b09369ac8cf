"""A compact module tree: parameters, trainable / frozen, BatchNorm mode, head and blocks."""

from __future__ import annotations

import io
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from torch import nn

from ..core.errors import FrostlineError
from ..models.blocks import Blocks, discover_blocks
from ..models.heads import HeadInfo, find_head
from ..models.tree import has_running_stats, is_within
from .masks import element_mask
from .plan import is_pinned


@dataclass(frozen=True)
class Row:
    """One line of the module tree."""

    name: str
    type: str
    depth: int
    params: int
    trainable: int
    frozen: int
    bn: str
    role: str

    @property
    def state(self) -> str:
        """``trainable``, ``frozen``, ``mixed`` or ``-`` (no parameters)."""
        if not self.params:
            return "-"
        if not self.frozen:
            return "trainable"
        return "frozen" if not self.trainable else "mixed"


def _counts(module: nn.Module) -> tuple[int, int, int]:
    total = trainable = 0
    for p in module.parameters():
        total += p.numel()
        if p.requires_grad:
            mask = element_mask(p)
            trainable += p.numel() - (int(mask.sum()) if mask is not None else 0)
    return total, trainable, total - trainable


def _bn_mode(module: nn.Module) -> str:
    norms = [m for m in module.modules() if has_running_stats(m)]
    if not norms:
        return ""
    pinned = sum(is_pinned(m) for m in norms)
    if pinned == len(norms):
        return f"eval, pinned ({pinned})"
    if pinned:
        return f"{pinned} pinned, {len(norms) - pinned} follow model"
    return f"{'train' if module.training else 'eval'} ({len(norms)})"


def _roles(layout: Blocks | None, head: HeadInfo | None) -> dict[str, str]:
    roles: dict[str, str] = {}
    if layout is not None:
        roles.update({n: "stem" for n in layout.stem})
        roles.update({n: f"block {i}" for i, n in enumerate(layout.blocks)})
        roles.update({n: "post" for n in layout.post})
    if head is not None:
        roles[head.name] = "head"
    return roles


def module_rows(model: nn.Module, max_depth: int | None = None) -> list[Row]:
    """Rows of the module tree, compact by default.

    Without ``max_depth`` a module is expanded only when it holds the blocks or the head, or is partly
    frozen; parameter-free leaves are left out. With ``max_depth`` every module down to that depth is shown.
    """
    try:
        head: HeadInfo | None = find_head(model)
    except FrostlineError:
        head = None
    try:
        layout: Blocks | None = discover_blocks(model, head.name if head else None)
    except FrostlineError:
        layout = None
    roles = _roles(layout, head)
    rows: list[Row] = []

    def visit(name: str, module: nn.Module, depth: int) -> None:
        total, trainable, frozen = _counts(module)
        if total == 0 and name and max_depth is None:
            return
        rows.append(Row(name or "<root>", type(module).__name__, depth, total, trainable, frozen,
                        _bn_mode(module), roles.get(name, "")))
        if max_depth is not None:
            expand = depth < max_depth
        else:
            holds = any(is_within(r, name) and r != name for r in roles)
            expand = holds or bool(trainable and frozen)
        if expand:
            for child_name, child in module.named_children():
                visit(f"{name}.{child_name}" if name else child_name, child, depth + 1)

    visit("", model, 0)
    return rows


def _fmt(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def summary_table(model: nn.Module, max_depth: int | None = None, title: str | None = None,
                  scores: dict[str, str] | None = None, score_name: str = "importance") -> Table:
    """A rich table of :func:`module_rows`, with totals in the caption; ``scores`` (module name -> text) adds a
    column, e.g. the importance of the part each module is the root of."""
    rows = module_rows(model, max_depth)
    table = Table(title=title or type(model).__name__, show_lines=False, header_style="bold")
    table.add_column("module", no_wrap=True)
    table.add_column("type", overflow="ellipsis", max_width=28, no_wrap=True)
    table.add_column("role", no_wrap=True)
    for col in ("params", "trainable", "frozen"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    if any(r.bn for r in rows):
        table.add_column("norm stats", no_wrap=True)
    if scores is not None:
        table.add_column(score_name, justify="right", no_wrap=True)
    style = {"trainable": "green", "frozen": "cyan", "mixed": "yellow"}
    for r in rows:
        label = ("  " * r.depth) + (r.name.rsplit(".", 2)[-1] if r.depth > 1 else r.name)
        cells = [label, r.type, r.role, _fmt(r.params), _fmt(r.trainable), _fmt(r.frozen),
                 f"[{style.get(r.state, 'dim')}]{r.state}[/]"]
        extra = [r.bn] if any(x.bn for x in rows) else []
        table.add_row(*cells, *extra, *([scores.get(r.name, "")] if scores is not None else []))
    total, trainable, frozen = _counts(model)
    pct = 100 * trainable / total if total else 0.0
    table.caption = f"trainable {trainable:,} of {total:,} parameters ({pct:.2f}%), frozen {frozen:,}"
    return table


def summary(model: nn.Module, max_depth: int | None = None) -> str:
    """The module tree as plain text (what ``frostline inspect`` prints)."""
    buf = io.StringIO()
    Console(file=buf, width=140, color_system=None).print(summary_table(model, max_depth))
    return buf.getvalue()
