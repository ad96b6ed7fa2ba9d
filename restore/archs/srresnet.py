"""The SAN paper's SR generator: SRGAN's SRResNet without batch norm, plus a global interpolation skip."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from restore.archs.layers import check_image_input
from restore.registry import GENERATORS, OptionValueError


def _conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1)


def _scaled_kaiming_(conv: nn.Conv2d, gain: float, negative_slope: float = 0.0) -> None:
    """Kaiming-normal weights multiplied by ``gain``, zero bias."""
    nn.init.kaiming_normal_(conv.weight, a=negative_slope, nonlinearity="leaky_relu")
    conv.weight.data.mul_(gain)
    nn.init.zeros_(conv.bias)


class ResBlock(nn.Module):
    """conv3x3 -> ReLU -> conv3x3, plus identity; no batch norm (Lim et al. 2017). (N, C, H, W) -> same shape."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = _conv3x3(channels, channels)
        self.conv2 = _conv3x3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


# SAN paper, Table 8 (SR generator): conv 64 lReLU; 16 ResBlocks 64; (conv 256, PS, lReLU) x2; conv 64 lReLU;
# conv 3 + up-sample(x). lReLU slope 0.1; ~1.5 M parameters.
@GENERATORS.register("srresnet")
class SRResNet(nn.Module):
    """x: (N, in_channels, h, w) in [0, 1] -> (N, out_channels, scale*h, scale*w), roughly [0, 1] (not clamped).

    ``skip`` adds ``F.interpolate(x, scale_factor=scale, mode=skip)`` to the output ("+ up-sample(x)" in Table 8),
    so the network only learns the residual over bicubic/bilinear upsampling ("none" drops it; it needs
    ``in_channels == out_channels``).
    """

    TINY: ClassVar[dict] = {"channels": 4, "num_blocks": 1}

    def __init__(self, in_channels: int = 3, out_channels: int = 3, channels: int = 64, num_blocks: int = 16,
                 scale: Literal[2, 4] = 4, negative_slope: float = 0.1,
                 skip: Literal["bicubic", "bilinear", "none"] = "bicubic"):
        super().__init__()
        if scale not in (2, 4):
            raise OptionValueError("scale", f"must be 2 or 4, got {scale!r}")
        if skip not in ("bicubic", "bilinear", "none"):
            raise OptionValueError("skip", f"must be 'bicubic', 'bilinear' or 'none', got {skip!r}")
        for key, value in (("in_channels", in_channels), ("out_channels", out_channels), ("channels", channels)):
            if value < 1:
                raise OptionValueError(key, f"must be >= 1, got {value}")
        if num_blocks < 0:
            raise OptionValueError("num_blocks", f"must be >= 0, got {num_blocks}")
        if skip != "none" and in_channels != out_channels:
            raise OptionValueError("skip", f"'{skip}' adds the upsampled input to the output, so in_channels "
                                           f"({in_channels}) must equal out_channels ({out_channels}); "
                                           "or set skip: none")
        self.in_channels, self.out_channels, self.scale, self.skip = in_channels, out_channels, scale, skip
        self.head = nn.Sequential(_conv3x3(in_channels, channels), nn.LeakyReLU(negative_slope))
        self.body = nn.Sequential(*(ResBlock(channels) for _ in range(num_blocks)))
        up: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):  # one x2 stage per factor of two
            up += [_conv3x3(channels, 4 * channels), nn.PixelShuffle(2), nn.LeakyReLU(negative_slope)]
        self.upsample = nn.Sequential(*up)
        self.tail = nn.Sequential(_conv3x3(channels, channels), nn.LeakyReLU(negative_slope),
                                  _conv3x3(channels, out_channels))
        self._init_weights(negative_slope)

    def _init_weights(self, negative_slope: float) -> None:
        # Residual branches start small: Kaiming * 0.1 in every ResBlock (as EDSR/ESRGAN do) keeps each block close
        # to the identity, so 16 blocks do not blow up activations; the last conv (the whole network is a residual
        # over the interpolation skip) gets Kaiming * 0.01, so a fresh network outputs the interpolated input to
        # within ~0.01 and training starts at bicubic quality instead of noise (Adam still moves that layer fast).
        for conv in (self.head[0], *self.upsample[0::3], self.tail[0]):
            _scaled_kaiming_(conv, 1.0, negative_slope)
        for block in self.body:
            _scaled_kaiming_(block.conv1, 0.1)
            _scaled_kaiming_(block.conv2, 0.1)
        _scaled_kaiming_(self.tail[2], 0.01 if self.skip != "none" else 1.0, negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        check_image_input(self, x, self.in_channels, None)
        feat = self.head(x)
        out = self.tail(self.upsample(self.body(feat)))
        if self.skip != "none":
            out = out + F.interpolate(x, scale_factor=self.scale, mode=self.skip, align_corners=False)
        return out
