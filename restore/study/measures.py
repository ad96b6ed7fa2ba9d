"""Critic diagnostics: the numbers behind the SAN paper's Figures 3 and 5 and the GraN slides' gradient plots.

Pure measurement routines (no plotting, no files); the ``restore diagnose`` report builds on them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from restore.norms.base import input_gradients, per_sample, scores_of


@torch.no_grad()
def circular_conv_spectral_norm(weight: Tensor, size: int | tuple[int, int], chunk: int = 4096) -> Tensor:
    """True operator norm of the stride-1 circular convolution ``weight`` on H x W inputs (Sedghi et al. 2018).

    The operator is block-diagonalised by the 2-D DFT: its singular values are those of the m x n matrices
    P(f)_ij = DFT(w_ij)(f) over all frequencies f, so the norm is max_f sigma_max(P(f)). Frequencies 0..W//2 along W
    suffice (P(-f) = conj P(f) has the same singular values). weight: (m, n, kh, kw); returns a 0-dim fp32 tensor.
    """
    from restore.norms.san import _fold, _pair

    h, w = _pair(size)
    m, n = weight.shape[:2]
    kernels = _fold(weight.detach().float().reshape(m * n, *weight.shape[2:]), (h, w))
    spec = torch.fft.rfft2(kernels, s=(h, w)).reshape(m, n, -1).permute(2, 0, 1)  # (F, m, n)
    best = torch.zeros(())
    for start in range(0, spec.shape[0], chunk):
        best = torch.maximum(best, torch.linalg.matrix_norm(spec[start:start + chunk], ord=2).amax().real.float())
    return best


@torch.no_grad()
def reshaped_spectral_norm(weight: Tensor) -> Tensor:
    """What SN estimates for a conv: the top singular value of W reshaped to (out, in * kh * kw) (exact SVD)."""
    return torch.linalg.matrix_norm(weight.detach().float().reshape(weight.shape[0], -1), ord=2)


@torch.no_grad()
def channel_sparsity(features: Tensor, tol: float = 0.0) -> tuple[Tensor, float]:
    """Per-sample channel norms ``(N, C)`` of a feature map ``(N, C, H, W)`` and the fraction of channels whose
    norm is <= ``tol`` (exactly zero by default): the channel sparsity SAN relies on (SAN paper Fig. 5)."""
    if features.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) features, got shape {tuple(features.shape)}")
    norms = features.detach().float().flatten(2).norm(dim=2)
    return norms, float((norms <= tol).float().mean())


def input_gradient_norms(critic: Callable[[Tensor], object], x: Tensor) -> Tensor:
    """Per-sample ||grad_x D(x)|| (N,), D = the per-sample mean of each score map, summed over scales."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        score = sum(per_sample(s) for s in scores_of(critic(x)))
        return input_gradients(score, [x], create_graph=False).sqrt()


def finite_difference_lipschitz(critic: Callable[[Tensor], object], x: Tensor, deltas: tuple[float, ...] = (
        1e-3, 1e-2, 1e-1, 1.0)) -> Tensor:
    """|D(x + d n) - D(x)| / d along the unit gradient direction n, for each step d: (len(deltas), N).

    GraN bounds the gradient only piecewise; this checks how D behaves across pieces (GraN slides, "finite
    differences along the gradient direction").
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        score = sum(per_sample(s) for s in scores_of(critic(x)))
        (grad,) = torch.autograd.grad(score.sum(), x)
    direction = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
    base = score.detach()
    out = []
    with torch.no_grad():
        for d in deltas:
            moved = sum(per_sample(s) for s in scores_of(critic(x.detach() + d * direction)))
            out.append((moved - base).abs() / d)
    return torch.stack(out)
