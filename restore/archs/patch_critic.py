"""Multi-scale conditional patch critic of pix2pixHD / SPADE: label map and image in, one score map per scale out."""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restore.archs.layers import Conv2d, PaddingMode, check_critic_options, check_image_input
from restore.registry import CRITICS

_KERNEL = 4


def _out_size(size: int, stride: int, padding: int) -> int:
    """Output length of a 4-tap conv (0 or less: the input is too small)."""
    return (size + 2 * padding - _KERNEL) // stride + 1


class PatchScale(nn.Module):
    """One scale: x (N, C, H, W) -> (score map (N, 1, h, w), [block outputs after activation]).

    conv4x4/2 + lReLU; n_layers - 1 blocks conv4x4 (+ instance norm) + lReLU with doubling channels (capped), stride 2
    except the last (stride 1); a final conv4x4/1 -> 1 channel. Convs followed by instance norm have no bias (the
    norm removes it).
    """

    def __init__(self, in_channels: int, ndf: int, n_layers: int, max_channels: int, instance_norm: bool,
                 negative_slope: float, padding: int, padding_mode: PaddingMode):
        super().__init__()
        self.strides = [2] + [2] * (n_layers - 2) + [1] * (n_layers > 1)
        self.padding = padding
        blocks = [nn.Sequential(Conv2d(in_channels, ndf, _KERNEL, 2, padding, padding_mode=padding_mode),
                                nn.LeakyReLU(negative_slope))]
        prev = ndf
        for stride in self.strides[1:]:
            ch = min(2 * prev, max_channels)
            layers: list[nn.Module] = [Conv2d(prev, ch, _KERNEL, stride, padding, padding_mode=padding_mode,
                                              bias=not instance_norm)]
            if instance_norm:
                layers.append(nn.InstanceNorm2d(ch, affine=False))
            blocks.append(nn.Sequential(*layers, nn.LeakyReLU(negative_slope)))
            prev = ch
        self.blocks = nn.ModuleList(blocks)
        self.head = Conv2d(prev, 1, _KERNEL, 1, padding, padding_mode=padding_mode)

    def sizes(self, h: int, w: int) -> list[tuple[int, int]]:
        """(h, w) after each block and after the head, for an (h, w) input."""
        out = []
        for stride in [*self.strides, 1]:
            h, w = _out_size(h, stride, self.padding), _out_size(w, stride, self.padding)
            out.append((h, w))
        return out

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x), feats


# SPADE paper (Park et al. 2019), Appendix A, discriminator = pix2pixHD's (Wang et al. 2018, Sec. 3.2): per scale
# conv4x4 64/2, 128/2 IN, 256/2 IN, 512/1 IN, conv4x4 -> 1, lReLU 0.2; 2 scales; label map concatenated to the image.
@CRITICS.register("multiscale_patch")
class MultiScalePatchCritic(nn.Module):
    """(image (N, image_channels, H, W) in [-1, 1], label (N, label_channels, H, W)) -> (scores, features).

    scores: ``num_D`` score maps (N, 1, h_i, w_i), scale i seeing label ⊕ image average-pooled i times (3x3, stride
    2, padding 1, padding not counted). features: per scale, the output of every block but the head (after the
    activation), for a feature-matching loss. The tuple follows restore.norms' critic convention (scores, *extras).

    Padding: with ``padding_mode`` "zeros" every conv pads 2 each side, as SPADE does (maps of H/8 + 3 at 4
    layers). Otherwise every conv pads 1 each side, since SAN needs circular padding of at most k - 1 = 3 pixels
    in total per dim; the maps are then a few pixels smaller (H/8 - 2 at 4 layers). Instance norm (affine=False)
    follows every conv except the first and the head; there is no batch norm (GP, R1 and GraN need per-sample
    gradients). ``image_size`` is only used by :meth:`example_inputs`.
    """

    TINY: ClassVar[dict] = {"label_channels": 3, "ndf": 4, "n_layers": 3, "max_channels": 16, "image_size": 32}

    def __init__(self, label_channels: int = 35, image_channels: int = 3, num_D: int = 2, n_layers: int = 4,
                 ndf: int = 64, max_channels: int = 512, instance_norm: bool = True, negative_slope: float = 0.2,
                 padding_mode: PaddingMode = "zeros", image_size: int = 64):
        super().__init__()
        check_critic_options({"label_channels": label_channels, "image_channels": image_channels, "num_D": num_D,
                              "n_layers": n_layers, "ndf": ndf, "max_channels": max_channels,
                              "image_size": image_size}, negative_slope, padding_mode)
        self.label_channels, self.image_channels, self.image_size = label_channels, image_channels, image_size
        self.padding_mode, self.instance_norm = padding_mode, instance_norm
        padding = 2 if padding_mode == "zeros" else 1
        self.scales = nn.ModuleList(
            PatchScale(label_channels + image_channels, ndf, n_layers, max_channels, instance_norm, negative_slope,
                       padding, padding_mode)
            for _ in range(num_D)
        )

    @staticmethod
    def downsample(x: Tensor) -> Tensor:
        """The input of the next scale: 3x3 stride-2 average pooling, (H, W) -> (ceil(H/2), ceil(W/2))."""
        return F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)

    def score_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """(h, w) of each scale's score map for (height, width) inputs (a side <= 0: the input is too small)."""
        return [sizes[-1] for sizes in self._layer_sizes(height, width)]

    def _layer_sizes(self, height: int, width: int) -> list[list[tuple[int, int]]]:
        out = []
        for scale in self.scales:
            out.append(scale.sizes(height, width))
            height, width = (height + 1) // 2, (width + 1) // 2
        return out

    def _check_inputs(self, image: Tensor, label: Tensor) -> None:
        name = type(self).__name__
        check_image_input(self, image, self.image_channels, None)
        if label.dim() != 4 or label.shape[1] != self.label_channels:
            raise ValueError(f"{name} expects (N, {self.label_channels}, H, W) label maps (label_channels), "
                             f"got shape {tuple(label.shape)}")
        if not label.is_floating_point():
            raise ValueError(f"{name} expects a float (one-hot) label map, got dtype {label.dtype}")
        if label.shape[0] != image.shape[0] or label.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"{name}: label map {tuple(label.shape)} and image {tuple(image.shape)} must have the "
                             "same batch size and height x width")
        layers = self._layer_sizes(image.shape[-2], image.shape[-1])
        normed = [hw for sizes in layers for hw in sizes[1:-1]] if self.instance_norm else []
        if any(min(hw) < 1 for sizes in layers for hw in sizes) or any(h * w < 2 for h, w in normed):
            sizes = [sizes[-1] for sizes in layers]  # instance norm needs > 1 pixel, every conv >= 1
            raise ValueError(f"{name}: {image.shape[-2]}x{image.shape[-1]} inputs are too small for "
                             f"{len(self.scales)} scales (score maps would be {sizes}); use larger crops, or fewer "
                             "scales (num_D) or layers (n_layers)")

    def forward(self, image: Tensor, label: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        self._check_inputs(image, label)
        x = torch.cat([label, image], dim=1)
        scores, features = [], []
        for i, scale in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            score, feats = scale(x)
            scores.append(score)
            features.append(feats)
        return scores, features

    def example_inputs(self, batch: int = 2) -> tuple[Tensor, Tensor]:
        """(random image in [-1, 1], random one-hot label map), both image_size x image_size."""
        s = self.image_size
        image = torch.rand(batch, self.image_channels, s, s) * 2 - 1
        classes = torch.randint(self.label_channels, (batch, s, s))
        label = F.one_hot(classes, self.label_channels).permute(0, 3, 1, 2).float()
        return image, label
