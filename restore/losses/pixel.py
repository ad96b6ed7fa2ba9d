"""Pixel (content) losses between a restored image and its ground truth, both (N, C, H, W), usually in [0, 1]."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def _check_pair(sr: Tensor, hr: Tensor, what: str) -> None:
    if sr.shape != hr.shape:
        raise ValueError(f"{what}: the restored image has shape {tuple(sr.shape)} but the ground truth has "
                         f"{tuple(hr.shape)}; they must match (check the generator's scale and the crop sizes)")


def l1_loss(sr: Tensor, hr: Tensor) -> Tensor:
    """Mean absolute error (the SAN paper's / ESRGAN's content loss), a 0-dim tensor."""
    _check_pair(sr, hr, "l1_loss")
    return F.l1_loss(sr, hr)


def charbonnier_loss(sr: Tensor, hr: Tensor, eps: float = 1e-3) -> Tensor:
    """Mean of sqrt((sr - hr)^2 + eps^2): a smooth L1 (differentiable at 0), ~|d| for |d| >> eps, 0-dim tensor.

    eps=1e-3 is the usual choice for images in [0, 1] (LapSRN, EDVR).
    """
    _check_pair(sr, hr, "charbonnier_loss")
    if eps <= 0:
        raise ValueError(f"charbonnier_loss: eps must be > 0, got {eps}")
    return ((sr - hr).pow(2) + eps * eps).sqrt().mean()
