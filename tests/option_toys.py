"""Toy option dataclasses for the config and schema tests: typed sub-blocks that are not registries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal


@dataclass(frozen=True)
class Blur:
    type: Literal["blur"] = "blur"
    sigma: float = 1.0
    both: int = 1


@dataclass(frozen=True)
class Noise:
    type: Literal["noise"] = "noise"
    level: float = 0.1
    both: int = 1


@dataclass(frozen=True)
class Degrade:
    """One class for two types: ``plain`` takes no other key (``type_keys``)."""

    type_keys: ClassVar[dict[str, tuple[str, ...]]] = {"plain": ()}
    type: Literal["plain", "fancy"] = "plain"
    strength: float = 0.5


@dataclass(frozen=True)
class Toy:
    step: Blur | Noise = Blur()
    degrade: Degrade | None = None
