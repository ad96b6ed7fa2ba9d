"""What the engine needs from a task: the :class:`Task` protocol.

Tasks do not inherit from anything: :class:`Task` is structural, and :class:`restore.engine.trainer.Trainer` checks
a task against it when it is given one (a missing method is a TypeError naming it, not an AttributeError in the
middle of training). The engine owns this contract; :mod:`restore.tasks` implements it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn
from torch.utils.data import Dataset

from restore.norms import CriticNorm


@runtime_checkable
class Task(Protocol):
    generator: nn.Module
    critic: nn.Module | None
    norm: CriticNorm

    def train_dataset(self) -> Dataset: ...

    def has_validation(self) -> bool: ...

    def to_device(self, batch: Any, device: Any) -> Any: ...

    def generate(self, generator: nn.Module, batch: Any) -> Tensor: ...

    def critic_forward(self, critic: nn.Module, batch: Any, images: Tensor) -> Any:
        """Critic output on ``images`` (conditional tasks add their condition here)."""

    def real_for_penalty(self, batch: Any) -> Tensor: ...

    def critic_loss(self, critic: nn.Module, batch: Any, fake: Tensor) -> tuple[Tensor, dict[str, float]]: ...

    def generator_loss(self, critic: nn.Module | None, batch: Any, fake: Tensor) -> tuple[Tensor, dict[str, float]]:
        ...

    def validate(self, generator: nn.Module, device: Any) -> tuple[dict[str, float], Tensor | None]: ...

    def describe_generator(self) -> dict[str, Any]:
        """``{"type", "kwargs", "extra"}``: what the exported weights file records so that inference can rebuild
        the generator (kwargs derived from the data, palettes, attribute names)."""


TASK_METHODS = tuple(name for name in Task.__dict__ if not name.startswith("_") and callable(Task.__dict__[name]))


def missing_methods(task: Any) -> list[str]:
    """The :class:`Task` methods ``task`` lacks (empty when it satisfies the protocol)."""
    return [name for name in TASK_METHODS if not callable(getattr(task, name, None))]
