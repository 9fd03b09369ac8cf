"""A model cut into named parts, input to output: ``stem``, ``block 0`` .. ``block N-1``, ``post`` and ``head``.

Strategies say which parts train when; importance scores are given per part.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..core.errors import FrostlineError
from .blocks import Blocks, discover_blocks
from .heads import find_head
from .tree import is_within


@dataclass(frozen=True)
class Part:
    """A named slice of the model, input to output."""

    name: str
    params: tuple[str, ...]



def model_parts(model: nn.Module) -> list[Part]:
    """Cut ``model`` into stem, blocks, post and head, input to output.

    Parameters outside the discovered layout join the stem (they stay frozen unless everything trains).
    """
    head = find_head(model).name
    try:
        layout = discover_blocks(model, head)
    except FrostlineError:  # nothing but the head: a stem-less, block-less model (head-only strategies still work)
        layout = Blocks("", (), (), (), head)
    names = [n for n, _ in model.named_parameters()]

    def under(paths: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        return tuple(n for n in names if any(is_within(n, p) for p in paths))

    blocks = [Part(f"block {i}", under([b])) for i, b in enumerate(layout.blocks)]
    head_part = Part("head", under([head]))
    post = Part("post", under(list(layout.post)))
    covered = {p for part in [*blocks, head_part, post] for p in part.params}
    stem = Part("stem", tuple(n for n in names if n not in covered))
    return [p for p in [stem, *blocks, post, head_part] if p.params]


def part_modules(model: nn.Module) -> dict[str, list[str]]:
    """The modules each part is made of: a block's or the head's root module; the stem's and post's modules."""
    head = find_head(model).name
    layout = discover_blocks(model, head)
    out: dict[str, list[str]] = {"stem": list(layout.stem)}
    out.update({f"block {i}": [b] for i, b in enumerate(layout.blocks)})
    out["post"] = list(layout.post)
    out["head"] = [head]
    return {k: v for k, v in out.items() if v}
