"""Building the losses the tasks share from their option blocks (the blocks themselves: restore.losses.options)."""

from __future__ import annotations

import warnings

from torch import nn

from restore.losses.options import (  # noqa: F401  (re-exported: the tasks' loss blocks)
    AdversarialLossOptions,
    ContentLossOptions,
    PerceptualLossOptions,
    WeightOptions,
)


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
