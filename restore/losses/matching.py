"""Feature matching (pix2pixHD / SPADE) and the VAE's KL term: generator-side losses built from critic features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def feature_matching(fake_features: list[list[Tensor]], real_features: list[list[Tensor]]) -> Tensor:
    """Mean over critic scales of the sum over intermediate layers of L1(fake, real) (SPADE eq. for L_FM).

    features: per scale, the list of intermediate critic activations (N, C, h, w); real activations are targets
    (detached). Returns a 0-dim float32 tensor.
    """
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError(f"feature matching needs the same (non-zero) number of critic scales for fake and real, "
                         f"got {len(fake_features)} and {len(real_features)}")
    total = fake_features[0][0].new_zeros((), dtype=torch.float32)
    for fakes, reals in zip(fake_features, real_features, strict=True):
        if len(fakes) != len(reals):
            raise ValueError(f"feature matching: {len(fakes)} fake vs {len(reals)} real layers at one scale")
        for f, r in zip(fakes, reals, strict=True):
            total = total + F.l1_loss(f.float(), r.detach().float())
    return total / len(fake_features)


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over z dims, averaged over the batch; mu, logvar: (N, z_dim).

    (SPADE sums over the whole batch; averaging over it keeps the weight independent of the batch size.)"""
    mu, logvar = mu.float(), logvar.float()
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
