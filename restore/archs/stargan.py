"""StarGAN (Choi et al. 2018): one attribute-conditioned generator and a critic with a score and a class head.

The SAN paper (Table 7) uses StarGAN's generator unchanged and shrinks the critic's kernels from 4x4 to 3x3 (25 M
instead of 44 M parameters); ``kernel`` selects either.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from restore.archs.layers import Conv2d, PaddingMode, check_image_input, conv
from restore.registry import CRITICS, GENERATORS, OptionValueError


def tile_attributes(c: Tensor, h: int, w: int) -> Tensor:
    """(N, A) attribute vector -> (N, A, h, w): each attribute becomes a constant plane (StarGAN's conditioning)."""
    if c.dim() != 2:
        raise ValueError(f"attributes must be an (N, A) tensor, got shape {tuple(c.shape)}")
    return c[:, :, None, None].expand(-1, -1, h, w)


def _instance_norm(channels: int) -> nn.InstanceNorm2d:
    # Per-image statistics in train and eval alike: StarGAN's running statistics make eval outputs differ from
    # the outputs the generator was trained to produce, and depend on the batches seen last.
    return nn.InstanceNorm2d(channels, affine=True, track_running_stats=False)


def _check_positive(key: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionValueError(key, f"must be an integer >= {minimum}, got {value!r}")


class StarGANResBlock(nn.Module):
    """conv3x3-IN-ReLU-conv3x3-IN plus identity; (N, C, H, W) -> same shape."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), _instance_norm(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), _instance_norm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


# SAN paper, Table 7 (StarGAN generator, = Choi et al. 2018): conv7x7 64 IN ReLU; conv4x4/2 128, 256 IN ReLU;
# 6 ResBlocks 256; deconv4x4/2 128, 64 IN ReLU; conv7x7 3 tanh.
@GENERATORS.register("stargan")
class StarGANGenerator(nn.Module):
    """(x: (N, C, H, W) in [-1, 1], c: (N, num_attributes) target attributes in [0, 1]) -> (N, C, H, W) in [-1, 1].

    H and W must be multiples of 4 (two stride-2 stages down and up). The target attributes are tiled to H x W and
    concatenated to the image, so the generator sees them at every pixel.
    """

    TASK: ClassVar[str] = "stargan"
    TINY: ClassVar[dict] = {"ngf": 4, "num_res_blocks": 1}

    def __init__(self, num_attributes: int = 5, ngf: int = 64, num_res_blocks: int = 6, image_channels: int = 3):
        super().__init__()
        _check_positive("num_attributes", num_attributes)
        _check_positive("ngf", ngf)
        _check_positive("num_res_blocks", num_res_blocks, minimum=0)
        _check_positive("image_channels", image_channels)
        self.num_attributes, self.image_channels = num_attributes, image_channels
        layers: list[nn.Module] = [
            nn.Conv2d(image_channels + num_attributes, ngf, 7, padding=3, bias=False), _instance_norm(ngf),
            nn.ReLU(inplace=True),
        ]
        ch = ngf
        for _ in range(2):  # down-sampling
            layers += [nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1, bias=False), _instance_norm(2 * ch),
                       nn.ReLU(inplace=True)]
            ch *= 2
        layers += [StarGANResBlock(ch) for _ in range(num_res_blocks)]
        for _ in range(2):  # up-sampling
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1, bias=False), _instance_norm(ch // 2),
                       nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.Conv2d(ch, image_channels, 7, padding=3), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        check_image_input(self, x, self.image_channels, None)
        h, w = x.shape[-2:]
        if h % 4 or w % 4:
            raise ValueError(f"{type(self).__name__} needs H and W to be multiples of 4 (two stride-2 stages), got "
                             f"{h}x{w}; crop or pad the input")
        if c.dim() != 2 or c.shape[0] != x.shape[0] or c.shape[1] != self.num_attributes:
            raise ValueError(f"{type(self).__name__} expects target attributes of shape ({x.shape[0]}, "
                             f"{self.num_attributes}) (num_attributes={self.num_attributes}), got {tuple(c.shape)}")
        c = tile_attributes(c.to(dtype=x.dtype, device=x.device), h, w)
        return self.main(torch.cat([x, c], dim=1))

    def example_inputs(self, batch: int = 2, size: int = 16) -> tuple[Tensor, Tensor]:
        """(images (batch, C, size, size) in [-1, 1], random {0, 1} attributes (batch, num_attributes))."""
        x = torch.rand(batch, self.image_channels, size, size) * 2 - 1
        return x, torch.randint(0, 2, (batch, self.num_attributes)).float()


# SAN paper, Table 7 (StarGAN critic): 6 stride-2 3x3 convs 64..2048, lReLU 0.01; score conv3x3 -> 1;
# class conv (kernel image_size/64) -> num_attributes. kernel=4 is Choi et al. 2018's original (44 M parameters).
@CRITICS.register("stargan_critic")
class StarGANCritic(nn.Module):
    """x: (N, C, image_size, image_size) in [-1, 1] -> (scores (N, 1, s, s), attribute logits (N, num_attributes)).

    s = image_size / 2**num_layers (2 at 128 with 6 layers). The logits are the auxiliary classifier (binary
    cross-entropy against {0, 1} labels); only ``scores`` is the adversarial output the critic norms act on.
    """

    TINY: ClassVar[dict] = {"image_size": 32, "ndf": 4, "num_layers": 3}

    def __init__(self, image_size: int = 128, num_attributes: int = 5, ndf: int = 64, num_layers: int = 6,
                 kernel: Literal[3, 4] = 3, max_channels: int = 2048, negative_slope: float = 0.01,
                 padding_mode: PaddingMode = "zeros", image_channels: int = 3):
        super().__init__()
        for key, value in (("image_size", image_size), ("num_attributes", num_attributes), ("ndf", ndf),
                           ("num_layers", num_layers), ("max_channels", max_channels),
                           ("image_channels", image_channels)):
            _check_positive(key, value)
        if kernel not in (3, 4):
            raise OptionValueError("kernel", f"must be 3 (SAN paper, Table 7) or 4 (original StarGAN), got {kernel!r}")
        if image_size % 2 ** num_layers:
            raise OptionValueError("image_size", f"must be divisible by 2**num_layers = {2 ** num_layers} "
                                                 f"(num_layers={num_layers}), got {image_size}")
        self.image_size, self.image_channels, self.num_attributes = image_size, image_channels, num_attributes
        self.score_size = image_size // 2 ** num_layers
        layers: list[nn.Module] = []
        prev = image_channels
        for i in range(num_layers):
            ch = min(ndf * 2 ** i, max_channels)
            # padding 1 for both kernels: (H + 2 - k) // 2 + 1 = H / 2 for even H, and total padding 2 <= k - 1 (SAN)
            layers += [conv(prev, ch, kernel, 2, padding_mode), nn.LeakyReLU(negative_slope)]
            prev = ch
        self.main = nn.Sequential(*layers)
        self.score = conv(prev, 1, 3, 1, padding_mode, bias=False)
        self.classify = Conv2d(prev, num_attributes, self.score_size, bias=False, padding_mode=padding_mode)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_image_input(self, x, self.image_channels, self.image_size)
        h = self.main(x)
        return self.score(h), self.classify(h).flatten(1)

    def example_inputs(self, batch: int = 2) -> tuple[Tensor, ...]:
        return (torch.rand(batch, self.image_channels, self.image_size, self.image_size) * 2 - 1,)
