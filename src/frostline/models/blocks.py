"""Discover a model's main stack of repeated blocks, ordered input to output.

Candidates are ``nn.ModuleList`` / ``nn.Sequential`` containers (Hugging Face ``encoder.layer``, ViT
``encoder.layer``, timm ``blocks`` / ``stages``, torchvision ``features``) and runs of numbered siblings
(torchvision ResNet ``layer1..layer4``). The head is never a block. The winner is the candidate with at least
three blocks holding the most parameters (falling back to two blocks). Parameter-holding modules before the
stack are the *stem* (embeddings, conv stem); those between the stack and the head are *post* (pooler, final
norm). An embedding registered after the stack (MPNet's shared relative position bias) is stem: it takes indices, and
feeds every block.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from ..core.errors import FrostlineError
from .heads import find_head
from .tree import count_params, is_within

_NUMBERED = re.compile(r"^(\D+?)_?(\d+)$")


@dataclass(frozen=True)
class Blocks:
    """The model's layout from input to output.

    Attributes:
        container: Module path holding the blocks (``""`` for the root).
        blocks: Module paths of the repeated blocks, input to output.
        stem: Parameter-holding modules before the first block (embeddings, conv stem).
        post: Parameter-holding modules after the last block and before the head (pooler, final norm).
        head: Module path of the classifier head, or ``None`` when the model has none.
    """

    container: str
    blocks: tuple[str, ...]
    stem: tuple[str, ...]
    post: tuple[str, ...]
    head: str | None

    def __len__(self) -> int:
        return len(self.blocks)

    def ordered(self) -> list[str]:
        """All parts in forward order: stem, blocks, post, head."""
        return [*self.stem, *self.blocks, *self.post, *([self.head] if self.head else [])]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return asdict(self)


def _embeddings_only(module: nn.Module) -> bool:
    """Whether every parameter-holding leaf of ``module`` is an ``nn.Embedding`` (MPNet's shared
    ``encoder.relative_attention_bias``, registered after the layers but feeding every one of them)."""
    leaves = [m for m in module.modules() if next(m.parameters(recurse=False), None) is not None]
    return bool(leaves) and all(isinstance(m, nn.Embedding) for m in leaves)


def _has_params(module: nn.Module) -> bool:
    return next(module.parameters(), None) is not None


def _candidates(model: nn.Module, head: str | None) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, nn.ModuleList | nn.Sequential):
            children = [f"{prefix}{c}" for c, m in module.named_children() if _has_params(m)]
        else:
            groups: dict[str, list[tuple[int, str]]] = {}
            for c, m in module.named_children():
                match = _NUMBERED.match(c)
                if match and _has_params(m):
                    groups.setdefault(match.group(1), []).append((int(match.group(2)), f"{prefix}{c}"))
            for members in groups.values():
                if len(members) >= 2:
                    found.append((name, [p for _, p in sorted(members)]))
            continue
        if head is not None:
            # The head is never a block, nor is anything registered after it.
            cut = next((i for i, c in enumerate(children) if is_within(head, c)), None)
            children = children if cut is None else children[:cut]
        if len(children) >= 2:
            found.append((name, children))
    return found


def _top_children(model: nn.Module, head: str | None) -> list[tuple[str, list[str]]]:
    """No stack of two or more: the parameter-holding children of the top module before the head (a plain
    ``nn.Sequential`` of one conv and a Linear has one block), descending through a lone wrapper."""
    root, prefix = model, ""
    while True:
        children = [(c, m) for c, m in root.named_children() if _has_params(m)]
        if head is not None:
            cut = next((i for i, (c, _) in enumerate(children) if is_within(head, prefix + c)), None)
            if cut is not None and len(children) == 1 and prefix + children[0][0] != head:
                root, prefix = children[0][1], f"{prefix}{children[0][0]}."  # the head sits deeper: look inside
                continue
            children = children if cut is None else children[:cut]
        break
    blocks = [prefix + c for c, _ in children]
    return [(prefix.rstrip("."), blocks)] if blocks else []


def discover_blocks(model: nn.Module, head: str | None = None) -> Blocks:
    """Find the main stack of repeated blocks, with the stem before it and the head after it.

    Args:
        model: Any ``nn.Module``.
        head: Head path; found with :func:`frostline.find_head` when omitted (``None`` if none exists).

    Returns:
        A :class:`Blocks`.

    Without a container of two or more parameter-holding blocks, the parameter-holding children of the top module
    before the head are the blocks (a plain ``nn.Sequential``: its conv layers, or one hidden Linear).

    Raises:
        FrostlineError: The model has no parameter-holding module besides its head.
    """
    if head is None:
        try:
            head = find_head(model).name
        except FrostlineError:
            head = None
    candidates = _candidates(model, head) or _top_children(model, head)
    if not candidates:
        raise FrostlineError(
            f"{type(model).__name__} has no stack of blocks (no ModuleList/Sequential or numbered siblings "
            "with two or more parameter-holding children); use module paths or globs instead of blocks:/last:"
        )

    def score(cand: tuple[str, list[str]]) -> tuple[bool, int, int, int]:
        container, blocks = cand
        params = sum(count_params(model.get_submodule(b)) for b in blocks)
        return (len(blocks) >= 3, params, -container.count("."), len(blocks))

    container, blocks = max(candidates, key=score)
    stem, post = _partition(model, blocks, head)
    return Blocks(container, tuple(blocks), tuple(stem), tuple(post), head)


def _partition(model: nn.Module, blocks: list[str], head: str | None) -> tuple[list[str], list[str]]:
    block_set = set(blocks)
    stem: list[str] = []
    post: list[str] = []
    seen_stack = False

    def visit(prefix: str, module: nn.Module) -> None:
        nonlocal seen_stack
        for cname, child in module.named_children():
            path = f"{prefix}.{cname}" if prefix else cname
            if path in block_set:
                seen_stack = True
                continue
            if not _has_params(child) or (head is not None and is_within(path, head)):
                continue
            holds_stack = any(is_within(b, path) for b in blocks)
            holds_head = head is not None and is_within(head, path)
            if holds_stack or holds_head:
                visit(path, child)
            else:  # an embedding takes indices, never the stack's output: input side wherever it is registered
                (post if seen_stack and not _embeddings_only(child) else stem).append(path)

    visit("", model)
    return stem, post
