"""What a strategy is: per epoch, the groups of parameters that train and their learning rates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from ..models.parts import Part

if TYPE_CHECKING:
    from ..data.batching import Encoded


@dataclass(frozen=True)
class Group:
    """Parameters that train together at one base learning rate."""

    name: str
    params: tuple[str, ...]
    lr: float


@dataclass(frozen=True)
class EpochPlan:
    """What trains in one epoch."""

    groups: tuple[Group, ...]
    note: str

    @property
    def params(self) -> set[str]:
        """Every trainable parameter name."""
        return {p for g in self.groups for p in g.params}


class Strategy:
    """Base class: a name and a per-epoch plan.

    Automatic strategies (:mod:`frostline.training.auto`) also use the hooks below; the engine calls them in this
    order: :meth:`setup` once before the first epoch (``needs_data``: scored on the training data, on the starting
    weights), :meth:`attach` (adapter strategies inject their adapters), :meth:`restore` when a run resumes,
    :meth:`observe` after each backward pass (``watches_gradients``), :meth:`end_epoch` after each epoch (its
    decision is recorded with the epoch), :meth:`teardown` at the end.
    """

    name = "strategy"
    needs_data = False
    watches_gradients = False

    def plan(self, epoch: int, parts: list[Part], lr: float, head_lr: float) -> EpochPlan:
        """Trainable groups for ``epoch`` (0-based)."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.name

    @property
    def ready(self) -> bool:
        """Whether :meth:`plan` can be called (automatic strategies: once :meth:`setup` has scored the model)."""
        return True

    def setup(self, model: nn.Module, train: Encoded, seed: int) -> None:
        """Score the model on its training data before the first epoch (``needs_data`` strategies)."""

    def teardown(self, model: nn.Module) -> None:
        """Undo what :meth:`setup` put on the model (element masks)."""

    def attach(self, model: nn.Module, seed: int) -> None:
        """Add what the strategy trains beside the model's own tensors (PEFT adapters), once, in place."""

    def detach(self, model: nn.Module) -> None:
        """Take out what :meth:`attach` added: the model is its base model again."""

    @property
    def adapters(self) -> Any:
        """The :class:`~frostline.training.adapters.AdapterSpec` of an adapter strategy, else ``None``."""
        return None

    def restore(self, history: list[dict[str, Any]]) -> None:
        """Take back the decisions recorded in an interrupted run's history (``history[].auto``)."""

    def observe(self, params: dict[str, nn.Parameter], index: int, steps: int) -> None:
        """See the gradients of step ``index`` of ``steps`` in this epoch, before clipping (``params``: every
        parameter by name, also those a frozen-prefix cache has cut out of the module tree)."""

    def end_epoch(self, epoch: int, epochs: int) -> dict[str, Any] | None:
        """Decide after epoch ``epoch`` (0-based); the returned record is kept with the epoch."""
        return None

    def choice(self) -> dict[str, Any] | None:
        """What an automatic strategy chose and why (``metrics.json`` ``run.auto``), else ``None``."""
        return None

    @staticmethod
    def _head(parts: list[Part], head_lr: float) -> Group:
        head = parts[-1]
        return Group(head.name, head.params, head_lr)

    @staticmethod
    def _body(parts: list[Part]) -> list[Part]:
        return parts[:-1]
