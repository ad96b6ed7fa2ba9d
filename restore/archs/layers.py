"""Shared conv helpers: every critic conv goes through :func:`conv` so ``padding_mode`` is honoured everywhere."""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restore.registry import OptionValueError

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
PADDING_MODES: tuple[str, ...] = get_args(PaddingMode)


def check_critic_options(sizes: dict[str, int], negative_slope: float, padding_mode: str) -> None:
    """The checks every conv critic's options share, so each bad value is one error naming its option."""
    for key, value in sizes.items():
        if value < 1:
            raise OptionValueError(key, f"must be >= 1, got {value}")
    if negative_slope < 0:
        raise OptionValueError("negative_slope", f"must be >= 0, got {negative_slope}")
    if padding_mode not in PADDING_MODES:
        raise OptionValueError("padding_mode", f"must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")


class _CircularPad2d(torch.autograd.Function):
    """Circular padding with one interior copy forward and one clone + border adds backward.

    torch's own circular pad composes slice assignments into zero-filled buffers and costs ~25% of a critic step
    on CPU (measured by bench/critic_step.py); SAN needs circular padding everywhere, so it matters. The backward
    is written in differentiable torch ops, so double backward (GP, R1, GraN) works.
    """

    @staticmethod
    def forward(ctx, x: Tensor, left: int, right: int, top: int, bottom: int) -> Tensor:
        ctx.pads = (left, right, top, bottom)
        n, c, h, w = x.shape
        out = x.new_empty(n, c, h + top + bottom, w + left + right)
        out[:, :, top:top + h, left:left + w] = x
        if top:
            out[:, :, :top, left:left + w] = x[:, :, h - top:, :]
        if bottom:
            out[:, :, top + h:, left:left + w] = x[:, :, :bottom, :]
        if left:  # whole columns, so the corners come from the rows just filled
            out[:, :, :, :left] = out[:, :, :, w:w + left]
        if right:
            out[:, :, :, left + w:] = out[:, :, :, left:left + right]
        return out

    @staticmethod
    def backward(ctx, g: Tensor):
        left, right, top, bottom = ctx.pads
        h = g.shape[2] - top - bottom
        w = g.shape[3] - left - right
        rows, cols = slice(top, top + h), slice(left, left + w)
        gx = g[:, :, rows, cols].clone()
        if left:
            gx[:, :, :, w - left:] += g[:, :, rows, :left]
        if right:
            gx[:, :, :, :right] += g[:, :, rows, left + w:]
        if top:
            gx[:, :, h - top:, :] += g[:, :, :top, cols]
            if left:
                gx[:, :, h - top:, w - left:] += g[:, :, :top, :left]
            if right:
                gx[:, :, h - top:, :right] += g[:, :, :top, left + w:]
        if bottom:
            gx[:, :, :bottom, :] += g[:, :, top + h:, cols]
            if left:
                gx[:, :, :bottom, w - left:] += g[:, :, top + h:, :left]
            if right:
                gx[:, :, :bottom, :right] += g[:, :, top + h:, left + w:]
        return gx, None, None, None, None


def circular_pad(x: Tensor, pads: tuple[int, int, int, int]) -> Tensor:
    """Same result as ``F.pad(x, pads, mode="circular")`` for (N, C, H, W) inputs, pads (left, right, top, bottom)."""
    left, right, top, bottom = pads
    if x.dim() != 4 or max(left, right) > x.shape[3] or max(top, bottom) > x.shape[2]:
        return F.pad(x, pads, mode="circular")  # torch's own checks and messages
    return _CircularPad2d.apply(x, left, right, top, bottom)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, state dict and isinstance) with a faster circular padding path."""

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if self.padding_mode == "circular" and not isinstance(self.padding, str):
            ph, pw = self.padding
            return F.conv2d(circular_pad(input, (pw, pw, ph, ph)), weight, bias, self.stride, 0, self.dilation,
                            self.groups)
        return super()._conv_forward(input, weight, bias)


def conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding_mode: PaddingMode = "zeros",
         bias: bool = True) -> nn.Conv2d:
    """k x k conv with k // 2 padding each side (for even k the output is one smaller per stride)."""
    return Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2 if kernel % 2 else (kernel - 1) // 2,
                  padding_mode=padding_mode, bias=bias)


def check_image_input(module: nn.Module, x: Tensor, channels: int, size: int | None) -> None:
    """A clear error for a wrongly shaped critic input instead of a matmul error deep inside torch."""
    name = type(module).__name__
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} expects (N, {channels}, H, W) images, got shape {tuple(x.shape)}")
    if size is not None and (x.shape[-2] != size or x.shape[-1] != size):
        raise ValueError(f"{name} was built for {size}x{size} inputs (image_size), got "
                         f"{x.shape[-2]}x{x.shape[-1]}; crop/resize the input or set image_size")
