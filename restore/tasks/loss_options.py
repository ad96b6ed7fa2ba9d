"""Loss option blocks shared by the tasks (each task's ``losses`` schema is assembled from these)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

from torch import nn

import restore.losses  # noqa: F401  (fills ADVERSARIAL, which the defaults below are checked against)
from restore.registry import ADVERSARIAL, OptionValueError


@dataclass(frozen=True)
class ContentLossOptions:
    weight: float = 1.0
    type: Literal["l1"] = "l1"


@dataclass(frozen=True)
class PerceptualLossOptions:
    """VGG features before activation (SAN paper / ESRGAN: VGG19 conv5_4; VGG16 conv5_3 offline here)."""

    weight: float = 1.0
    network: Literal["vgg19", "vgg16", "auto"] = "vgg19"  # auto: VGG19 if obtainable, else VGG16
    layers: dict[str, float] | None = None
    weights: str | None = None
    criterion: Literal["l1", "l2"] = "l1"
    download: bool = True  # fetch torchvision's ImageNet weights into the hub cache when missing
    fallback_weights: str | None = None  # network auto: VGG16 features file used when VGG19 cannot be had


@dataclass(frozen=True)
class AdversarialLossOptions:
    type: str = "hinge"
    weight: float = 0.01

    def __post_init__(self) -> None:
        if self.type not in ADVERSARIAL:
            from restore.registry import did_you_mean

            raise OptionValueError("type", f"unknown adversarial loss '{self.type}'"
                                           f"{did_you_mean(self.type, ADVERSARIAL.names())}; "
                                           f"valid: {', '.join(ADVERSARIAL.names())}")


@dataclass(frozen=True)
class WeightOptions:
    """A loss term that only has a weight (feature matching, KL, cycle reconstruction, classification)."""

    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise OptionValueError("weight", f"must be >= 0, got {self.weight}")


def build_perceptual(p: PerceptualLossOptions) -> nn.Module:
    """The VGG perceptual loss a block describes; ``network: auto`` tries VGG19 (hub cache or download) and falls
    back to VGG16 (``fallback_weights`` file, else the hub) with a warning, since no VGG19 may be obtainable."""
    from restore.losses.perceptual import PerceptualLoss

    if p.network != "auto":
        return PerceptualLoss(network=p.network, layers=p.layers, weights=p.weights, criterion=p.criterion,
                              download=p.download)
    try:
        return PerceptualLoss(network="vgg19", layers=p.layers, weights=p.weights, criterion=p.criterion,
                              download=p.download)
    except FileNotFoundError as err:
        warnings.warn(f"perceptual loss: VGG19 is not available ({str(err).split(';')[0]}); using VGG16 "
                      f"({p.fallback_weights or 'torchvision hub'}) instead. Record this with the results.",
                      RuntimeWarning, stacklevel=2)
        return PerceptualLoss(network="vgg16", layers=p.layers, weights=p.fallback_weights,
                              criterion=p.criterion, download=p.download)


def data_description(opts: object) -> dict:
    """{"type", "kwargs"} of the training data block, stored with a model so evaluation can rebuild its held-out
    split (``restore eval --task spade|stargan``)."""
    spec = opts.data.train or opts.data.val  # type: ignore[attr-defined]
    return {"type": spec.name, "kwargs": dict(spec.kwargs)} if spec is not None else {}
