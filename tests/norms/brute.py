"""Independent brute-force references (no FFT): circular convolution by rolling the input."""

from __future__ import annotations

import torch
from torch import Tensor


def circ_conv(kernels: Tensor, x: Tensor) -> Tensor:
    """kernels (K, kh, kw), x (K, H, W) -> y_k = w_k (*) x_k, circular, y[i] = sum_a w[a] x[i - a]."""
    y = torch.zeros_like(x)
    for a in range(kernels.shape[1]):
        for b in range(kernels.shape[2]):
            y += kernels[:, a, b, None, None] * torch.roll(x, (a, b), (1, 2))
    return y


def circ_conv_adjoint(kernels: Tensor, y: Tensor) -> Tensor:
    x = torch.zeros_like(y)
    for a in range(kernels.shape[1]):
        for b in range(kernels.shape[2]):
            x += kernels[:, a, b, None, None] * torch.roll(y, (-a, -b), (1, 2))
    return x


def siso_gains(weight: Tensor, size: tuple[int, int], stride: int = 1, iters: int = 600, seed: int = 0) -> Tensor:
    """Operator norm of x -> subsample_stride(w_ij (*) x) for every kernel pair, by power iteration on A^T A.

    weight: (m, n, kh, kw). Returns (m*n,) gains in float64.
    """
    kernels = weight.detach().double().reshape(-1, weight.shape[2], weight.shape[3])
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(kernels.shape[0], *size, dtype=torch.float64, generator=gen)

    def forward(v: Tensor) -> Tensor:
        y = circ_conv(kernels, v)
        mask = torch.zeros_like(y)
        mask[:, ::stride, ::stride] = 1
        return y * mask  # subsampling, kept in place so the adjoint is the same mask

    for _ in range(iters):
        x = circ_conv_adjoint(kernels, forward(x))
        x = x / x.flatten(1).norm(dim=1).clamp_min(1e-300)[:, None, None]
    return forward(x).flatten(1).norm(dim=1)
