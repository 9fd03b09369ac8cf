"""``frostline importance``: which parts of a model matter for the user's data, scored the way ``surgical:auto``
scores them (the same split, seed, new head and batches), shown, stored and plotted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..core import atomic
from ..core.errors import FrostlineError
from ..freezing.importance import Importance, importance_scores
from ..models.parts import part_modules
from ..training.auto import score_budget
from .config import RunConfig
from .folder import check_out
from .preparation import Prepared, Status, no_status, prepare


def score_importance(cfg: RunConfig, *, batches: int | None = None, batch_size: int | None = None,
                     per_tensor: bool = False, status: Status = no_status,
                     echo: Callable[[str], None] = print) -> tuple[Importance, Prepared]:
    """Load ``cfg.model`` with a new head for ``cfg.data``'s classes and score every part on the training split
    (by default with the budget ``surgical:auto`` uses, :func:`frostline.training.auto.score_budget`).

    Returns:
        The scores and the prepared run (model with its new head, encoded splits).
    """
    for name, value in (("--batches", batches), ("--batch-size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise FrostlineError(f"{name} must be an integer >= 1 (or unset for the default), got {value!r}")
    prepared = prepare(cfg, status=status, echo=echo, strategies=[])
    default_batches, default_size = score_budget(len(prepared.train))
    batches = default_batches if batches is None else batches
    batch_size = default_size if batch_size is None else batch_size
    with status(f"scoring the model on {batches} batches of {batch_size}"):
        scores = importance_scores(prepared.loaded.model, prepared.train, batches=batches, batch_size=batch_size,
                                   seed=cfg.seed, per_tensor=per_tensor)
    return scores, prepared


def write_importance(out: str | Path, scores: Importance, chosen: list[str] | None = None,
                     chosen_by: str | None = None) -> Path:
    """``importance.json`` (with the blocks ``surgical:auto`` would choose, and by which score) and
    ``importance.png`` in ``out`` (a new or empty folder: check it with :func:`check_out` before scoring)."""
    from ..reporting.plots import importance_bars

    folder = check_out(out, "importance")
    folder.mkdir(parents=True, exist_ok=True)
    data = scores.to_dict() | ({"chosen": chosen, "chosen_by": chosen_by} if chosen else {})
    atomic.write_json(folder / "importance.json", data)
    atomic.write_bytes(folder / "importance.png", importance_bars(data, chosen))
    return folder


def module_scores(prepared: Prepared, scores: Importance, score: str) -> dict[str, str]:
    """Module name -> the score of the part it is the root of (for the module tree's importance column)."""
    by_part = {p.name: p.score(score) for p in scores.parts}
    out = {}
    for part, modules in part_modules(prepared.loaded.model).items():
        for module in modules:
            out[module] = f"{by_part[part]:.3g}" + ("" if part.startswith(("block", "head")) else f" ({part})")
    return out
