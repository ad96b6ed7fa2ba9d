"""The super-resolution critic of the SAN paper (Table 8): a VGG-style feed-forward CNN with two dense layers."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from restore.archs.layers import PaddingMode, check_image_input, conv
from restore.registry import CRITICS


# SAN paper, Table 8 (SR critic): 3x3 convs 64,64,128,128,256,256,512,512, strides 1,2,1,2,1,2,1,2, lReLU 0.1,
# dense 100, lReLU, dense 1; 128x128 input.
@CRITICS.register("vgg_critic")
class VGGCritic(nn.Module):
    """x: (N, in_channels, image_size, image_size) in [-1, 1] -> (N, 1) scores."""

    TINY: ClassVar[dict] = {"width": 4, "image_size": 32, "dense": 8}

    def __init__(self, in_channels: int = 3, image_size: int = 128, width: int = 64, dense: int = 100,
                 negative_slope: float = 0.1, padding_mode: PaddingMode = "zeros"):
        super().__init__()
        if image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, got {image_size}")
        self.in_channels, self.image_size = in_channels, image_size
        chans = [width, width, 2 * width, 2 * width, 4 * width, 4 * width, 8 * width, 8 * width]
        layers: list[nn.Module] = []
        prev = in_channels
        for i, ch in enumerate(chans):
            layers += [conv(prev, ch, 3, 1 + i % 2, padding_mode), nn.LeakyReLU(negative_slope)]
            prev = ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(prev * (image_size // 16) ** 2, dense), nn.LeakyReLU(negative_slope),
                                  nn.Linear(dense, 1))

    def forward(self, x: Tensor) -> Tensor:
        check_image_input(self, x, self.in_channels, self.image_size)
        return self.head(self.features(x).flatten(1))

    def example_inputs(self, batch: int = 2) -> tuple[Tensor, ...]:
        return (torch.rand(batch, self.in_channels, self.image_size, self.image_size) * 2 - 1,)
