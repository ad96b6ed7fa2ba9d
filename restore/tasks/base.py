"""What the engine needs from a task (structural; tasks do not inherit from anything)."""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor, nn
from torch.utils.data import Dataset

from restore.norms import CriticNorm


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
