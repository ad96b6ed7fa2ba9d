"""Shared conv helpers: every critic conv goes through :func:`conv` so ``padding_mode`` is honoured everywhere."""

from __future__ import annotations

from typing import Literal

from torch import nn

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]


def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding_mode: PaddingMode = "zeros",
         bias: bool = True) -> nn.Conv2d:
    """k x k conv with 'same'-style padding (k // 2 each side; for even k the output is one smaller per stride)."""
    return nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2 if kernel % 2 else (kernel - 1) // 2,
                     padding_mode=padding_mode, bias=bias)


def check_image_input(module: nn.Module, x, channels: int, size: int | None) -> None:
    """A clear error for a wrongly shaped critic input instead of a matmul error deep inside torch."""
    name = type(module).__name__
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} expects (N, {channels}, H, W) images, got shape {tuple(x.shape)}")
    if size is not None and (x.shape[-2] != size or x.shape[-1] != size):
        raise ValueError(f"{name} was built for {size}x{size} inputs (image_size), got "
                         f"{x.shape[-2]}x{x.shape[-1]}; crop/resize the input or set image_size")
