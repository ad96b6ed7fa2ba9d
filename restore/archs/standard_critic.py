"""The "standard CNN" critic of the SAN paper (Table 4), used for CIFAR-10/STL-10 and the critic-step benchmark."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from restore.archs.layers import PaddingMode, check_image_input, conv
from restore.registry import CRITICS


# SAN paper, Table 4 (critic): 3x3 convs 64,64,128,128,256,256,512, strides 1,2,1,2,1,2,1, lReLU 0.1, dense -> 1
@CRITICS.register("standard_cnn")
class StandardCNNCritic(nn.Module):
    """x: (N, in_channels, image_size, image_size) in [-1, 1] -> (N, 1) scores. image_size: 32 CIFAR, 48 STL."""

    TINY: ClassVar[dict] = {"width": 4, "image_size": 16}

    def __init__(self, in_channels: int = 3, image_size: int = 32, width: int = 64, negative_slope: float = 0.1,
                 padding_mode: PaddingMode = "zeros"):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
        self.in_channels, self.image_size = in_channels, image_size
        chans = [width, width, 2 * width, 2 * width, 4 * width, 4 * width, 8 * width]
        strides = [1, 2, 1, 2, 1, 2, 1]
        layers: list[nn.Module] = []
        prev = in_channels
        for ch, s in zip(chans, strides, strict=True):
            layers += [conv(prev, ch, 3, s, padding_mode), nn.LeakyReLU(negative_slope)]
            prev = ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(prev * (image_size // 8) ** 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        check_image_input(self, x, self.in_channels, self.image_size)
        return self.head(self.features(x).flatten(1))

    def example_inputs(self, batch: int = 2) -> tuple[Tensor, ...]:
        return (torch.rand(batch, self.in_channels, self.image_size, self.image_size) * 2 - 1,)
