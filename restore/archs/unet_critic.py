"""The U-Net critic of Real-ESRGAN: one realness score per pixel, so the generator is told *where* an image looks fake.

The network carries no normalization of its own: every weighted layer is a plain ``Conv2d`` built by
:func:`restore.archs.layers.conv`, so :mod:`restore.norms` (SAN, SN, BSN, GP, R1, GraN) apply from outside and
``padding_mode`` (SAN: circular) reaches every conv. Bilinear upsampling and the skip additions hold no weights, so no
norm acts on them.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restore.archs.layers import PaddingMode, check_critic_options, check_image_input, conv
from restore.registry import CRITICS

_DEPTH = 3  # stride-2 convs in the encoder
#: smallest input side: three 4x4 stride-2 convs (padding 1) map a side s to floor(s / 8), which must be >= 1.
MIN_SIZE = 2**_DEPTH


# Real-ESRGAN (Wang et al. 2021), Sec. 3.3 / Fig. 6: conv3x3 F; conv4x4/2 2F, 4F, 8F; three times bilinear x2 +
# conv3x3 (4F, 2F, F) with the same-size encoder feature added (skip connection); conv3x3 F twice; conv3x3 -> 1;
# lReLU 0.2. The paper's spectral normalization is left out: a restore critic norm is applied instead.
@CRITICS.register("unet")
class UNetCritic(nn.Module):
    """x: (N, in_channels, H, W) in [-1, 1] -> (N, 1, H, W) per-pixel scores (raw logits).

    Any H, W >= 8 work, odd ones too: each decoder stage upsamples to the exact size of the encoder feature it is
    added to (for sides divisible by 8 this is bilinear x2, as in Real-ESRGAN). ``skip_connection`` false drops the
    three additions (the paper's ablation without skips). Convs after the stem have no bias, as in Real-ESRGAN.
    """

    TINY: ClassVar[dict] = {"num_feat": 4}
    #: side of the square images :meth:`example_inputs` makes (any size >= 8 is accepted).
    EXAMPLE_SIZE: ClassVar[int] = 32

    def __init__(self, in_channels: int = 3, num_feat: int = 64, skip_connection: bool = True,
                 negative_slope: float = 0.2, padding_mode: PaddingMode = "zeros"):
        super().__init__()
        check_critic_options({"in_channels": in_channels, "num_feat": num_feat}, negative_slope, padding_mode)
        self.in_channels, self.skip_connection, self.negative_slope = in_channels, bool(skip_connection), negative_slope
        widths = [num_feat * 2**i for i in range(_DEPTH + 1)]  # F, 2F, 4F, 8F
        self.stem = conv(in_channels, num_feat, 3, 1, padding_mode)
        self.down = nn.ModuleList(conv(widths[i], widths[i + 1], 4, 2, padding_mode, bias=False) for i in range(_DEPTH))
        self.up = nn.ModuleList(conv(widths[i + 1], widths[i], 3, 1, padding_mode, bias=False)
                                for i in reversed(range(_DEPTH)))
        self.refine = nn.ModuleList(conv(num_feat, num_feat, 3, 1, padding_mode, bias=False) for _ in range(2))
        self.head = conv(num_feat, 1, 3, 1, padding_mode)

    def _act(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)  # not in place: GP, R1 and GraN differentiate through it twice

    def forward(self, x: Tensor) -> Tensor:
        check_image_input(self, x, self.in_channels, None)
        h, w = x.shape[-2:]
        if min(h, w) < MIN_SIZE:
            raise ValueError(f"{type(self).__name__} needs inputs of at least {MIN_SIZE}x{MIN_SIZE} (three stride-2 "
                             f"convs), got {h}x{w}; use larger crops")
        skips = [self._act(self.stem(x))]
        for layer in self.down:
            skips.append(self._act(layer(skips[-1])))
        y = skips.pop()
        for layer in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = self._act(layer(y))
            if self.skip_connection:
                y = y + skip
        for layer in self.refine:
            y = self._act(layer(y))
        return self.head(y)

    def example_inputs(self, batch: int = 2) -> tuple[Tensor, ...]:
        s = self.EXAMPLE_SIZE
        return (torch.rand(batch, self.in_channels, s, s) * 2 - 1,)
