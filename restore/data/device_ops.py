"""Batched tensor versions of the SR items' per-image work, run on the training device.

A DataLoader worker that decodes, crops, flips and MATLAB-resizes every item with numpy keeps a GPU waiting (about
170 ms an item for a 2560x1600 JPEG on a 2-core CPU). With ``device_ops`` the worker only slices an integer crop out
of its decoded-image cache; this module turns a whole batch of such crops into the same float items on the device:

* :func:`augment_batch`: the dihedral flips / rotation of :func:`restore.data.transforms.augment`, per sample;
* :func:`matlab_resize`: MATLAB's antialiased bicubic ``imresize`` as two dense matrix products, in float64 so that
  it agrees with basicsr's port (``restore.data.sr.imresize``) to ~1e-7 and is immune to TF32 matmuls on CUDA.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (the kernel of MATLAB's ``imresize(..., 'bicubic')``)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True,
                  device: torch.device | str | None = None) -> Tensor:
    """The (out_len, in_len) float64 matrix M with ``out = M @ in`` along one axis, as MATLAB's imresize computes it.

    Output pixel i (1-based) samples input position u = i / scale + (1 - 1 / scale) / 2; when downscaling with
    antialiasing the kernel is stretched by 1 / scale (width 4 / scale) and scaled by ``scale``. Taps outside the
    image are mirrored with the edge sample repeated (MATLAB's "symmetric" padding), and each row sums to one.
    """
    if in_len < 1 or out_len < 1:
        raise ValueError(f"resize_matrix needs positive lengths, got {in_len} -> {out_len}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"resize scale must be a positive number, got {scale}")
    stretch = scale < 1 and antialias
    width = 4.0 / scale if stretch else 4.0
    x = torch.arange(1, out_len + 1, dtype=torch.float64, device=device)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64, device=device)[None, :]  # 1-based
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if stretch else _cubic(dist)
    w = w / w.sum(dim=1, keepdim=True)
    j = idx.long() - 1  # 0-based, then mirror into [0, in_len): -1 -> 0, -2 -> 1, in_len -> in_len - 1, ...
    period = 2 * in_len
    j = torch.remainder(j, period)
    j = torch.where(j >= in_len, period - 1 - j, j)
    m = torch.zeros(out_len, in_len, dtype=torch.float64, device=device)
    m.scatter_add_(1, j, w)
    return m


def matlab_resize(images: Tensor, scale: float, antialias: bool = True) -> Tensor:
    """MATLAB-compatible bicubic resize of a (..., H, W) float batch by ``scale`` -> (..., ceil(H s), ceil(W s)).

    Not clipped (bicubic overshoots slightly at edges), like :func:`restore.data.sr.imresize`. Heights are resized
    before widths, as basicsr does; the arithmetic runs in float64 and the result has the input's dtype.
    """
    if images.ndim < 2:
        raise ValueError(f"matlab_resize expects a (..., H, W) tensor, got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"matlab_resize expects a floating-point tensor, got {images.dtype}")
    h, w = images.shape[-2:]
    out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
    if min(h, w) < 2 or min(out_h, out_w) < 1:
        raise ValueError(f"matlab_resize cannot resize a {w}x{h} (WxH) image by {scale}")
    mh = resize_matrix(h, out_h, scale, antialias, images.device)
    mw = resize_matrix(w, out_w, scale, antialias, images.device)
    x = images.to(torch.float64)
    out = torch.matmul(torch.matmul(mh, x), mw.transpose(0, 1))
    return out.to(images.dtype)


def downscale_batch(gt: Tensor, scale: int) -> Tensor:
    """The LR batch of mod-cropped HR crops (N, C, sH, sW) in [0, 1], as :func:`restore.data.sr.downscale` makes
    each item: bicubic 1/scale, clipped to [0, 1], trimmed to (H, W) where ceil() rounds up."""
    h, w = gt.shape[-2:]
    lq = matlab_resize(gt, 1.0 / scale).clamp_(0.0, 1.0)
    return lq[..., : h // scale, : w // scale]


def augment_batch(images: Tensor, flags: Tensor) -> Tensor:
    """Per-sample dihedral augmentation of a square (N, C, S, S) batch; ``flags`` (N, 3) bool = (hflip, vflip,
    rot90) applied in that order, exactly as :func:`restore.data.transforms.augment` does to an (H, W, C) array:
    mirror W, mirror H, then rotate 90 degrees counter-clockwise. Samples sharing flags are transformed together."""
    if images.ndim != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"augment_batch expects a square (N, C, S, S) batch, got shape {tuple(images.shape)}")
    flags = flags.to(device=images.device, dtype=torch.bool).reshape(images.shape[0], 3)
    if not bool(flags.any()):
        return images
    codes = flags[:, 0].long() + 2 * flags[:, 1].long() + 4 * flags[:, 2].long()
    out = images.clone()
    for code in torch.unique(codes).tolist():
        if code == 0:
            continue
        rows = (codes == code).nonzero().flatten()
        x = images.index_select(0, rows)
        if code & 1:
            x = x.flip(-1)
        if code & 2:
            x = x.flip(-2)
        if code & 4:
            x = torch.rot90(x, k=1, dims=(-2, -1))
        out.index_copy_(0, rows, x)
    return out


def integers_to_unit(raw: Tensor, maxval: Tensor) -> Tensor:
    """Integer samples (N, ...) to float32 in [0, 1] by ``float32(raw) / float32(maxval)``: the same division, and so
    the same bits, as :func:`restore.data.io.read_image` applies to 8- and 16-bit files."""
    shape = (-1,) + (1,) * (raw.ndim - 1)
    return raw.to(torch.float32) / maxval.to(device=raw.device, dtype=torch.float32).reshape(shape)
