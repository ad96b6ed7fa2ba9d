"""Losses: pixel, adversarial (registered in ``restore.registry.ADVERSARIAL``) and VGG perceptual.

They know nothing of option files or the engine: they take tensors and return tensors. ``PerceptualLoss`` is
loaded lazily (it imports torchvision).
"""

from __future__ import annotations

from typing import Any

from restore.losses import adversarial  # noqa: F401  (registers the adversarial losses)
from restore.losses.adversarial import AdversarialLoss
from restore.losses.pixel import charbonnier_loss, l1_loss

__all__ = ["AdversarialLoss", "PerceptualLoss", "charbonnier_loss", "l1_loss"]


def __getattr__(name: str) -> Any:
    if name == "PerceptualLoss":
        from restore.losses.perceptual import PerceptualLoss

        return PerceptualLoss
    raise AttributeError(f"module 'restore.losses' has no attribute {name!r}")
