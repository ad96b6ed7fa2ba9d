"""SPADE: semantic image synthesis with spatially-adaptive normalization (Park et al., CVPR 2019).

The generator turns a label map (one-hot classes, plus an optional instance-edge channel) into an RGB image. Every
residual block re-injects the label map through SPADE layers, so the semantics are not washed out by normalization.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from restore.archs.layers import check_image_input
from restore.registry import GENERATORS, OptionValueError

ParamFreeNorm = Literal["instance", "batch"]
UpsamplingLayers = Literal["normal", "more", "most"]

#: number of x2 up-sampling stages for each ``num_upsampling_layers`` choice (SPADE paper, Appendix A)
UP_STAGES: dict[str, int] = {"normal": 5, "more": 6, "most": 7}

#: Glorot-normal gain of the authors' training setup (their options: init_type xavier, init_variance 0.02)
INIT_GAIN = 0.02


def _xavier_(*layers: nn.Module) -> None:
    """Glorot-normal weights with a small gain and zero biases, so SPADE's gamma/beta start near 0 (out ~ PFN(x))."""
    for layer in layers:
        nn.init.xavier_normal_(layer.weight, gain=INIT_GAIN)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


def _resize_label(label: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """Nearest resize (keeps one-hot maps one-hot); a no-op when the size already matches."""
    if tuple(label.shape[-2:]) == tuple(size):
        return label
    return F.interpolate(label, size=tuple(size), mode="nearest")


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if value < 1:
            raise OptionValueError(key, f"must be >= 1, got {value}")


def _check_param_free_norm(value: str) -> None:
    if value not in ("instance", "batch"):
        raise OptionValueError("param_free_norm", f"must be 'instance' or 'batch', got {value!r}")


# SPADE paper, Sec. 3.1 / Appendix A: PFN(x) * (1 + gamma(m)) + beta(m), m -> conv3x3 128 -> ReLU -> convs
class SPADE(nn.Module):
    """Spatially-adaptive (de)normalization: x (N, C, H, W), label (N, L, h, w) -> (N, C, H, W).

    The label map is resized to x's size (nearest). ``param_free_norm`` is the parameter-free normalization PFN
    (instance norm, or batch norm with running statistics; both affine=False, the modulation replaces the affine).
    The convs start with small weights (gain 0.02), so a fresh layer is close to PFN(x).
    """

    def __init__(self, norm_channels: int, label_channels: int, hidden: int = 128, kernel: int = 3,
                 param_free_norm: ParamFreeNorm = "instance"):
        super().__init__()
        _check_positive(norm_channels=norm_channels, label_channels=label_channels, hidden=hidden)
        _check_param_free_norm(param_free_norm)
        if kernel < 1 or kernel % 2 == 0:
            raise OptionValueError("kernel", f"must be odd and >= 1 (same-size convs), got {kernel}")
        if param_free_norm == "instance":
            self.param_free_norm: nn.Module = nn.InstanceNorm2d(norm_channels, affine=False)
        else:
            self.param_free_norm = nn.BatchNorm2d(norm_channels, affine=False)
        pad = kernel // 2
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, kernel, padding=pad), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_channels, kernel, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden, norm_channels, kernel, padding=pad)
        _xavier_(self.mlp_shared[0], self.mlp_gamma, self.mlp_beta)

    def forward(self, x: Tensor, label: Tensor) -> Tensor:
        normalized = self.param_free_norm(x)
        shared = self.mlp_shared(_resize_label(label, x.shape[-2:]))
        return normalized * (1 + self.mlp_gamma(shared)) + self.mlp_beta(shared)


# SPADE paper, Sec. 3.2 / Appendix A: SPADE-lReLU-conv3x3 twice; learned shortcut SPADE-conv1x1 if fin != fout.
class SPADEResBlock(nn.Module):
    """x (N, fin, H, W), label (N, L, h, w) -> (N, fout, H, W).

    Main path: conv3x3(lrelu(SPADE(x))) -> min(fin, fout) channels, then conv3x3(lrelu(SPADE(.))) -> fout. The
    shortcut is the identity when fin == fout, else a bias-free conv1x1 of SPADE(x) (no activation).
    ``spectral_norm`` puts SN on the three block convs (not on the SPADE convs), as the authors' generator does.
    """

    def __init__(self, fin: int, fout: int, label_channels: int, hidden: int = 128, kernel: int = 3,
                 param_free_norm: ParamFreeNorm = "instance", spectral_norm: bool = True,
                 negative_slope: float = 0.2):
        super().__init__()
        _check_positive(fin=fin, fout=fout)
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.negative_slope = negative_slope
        spade = {"label_channels": label_channels, "hidden": hidden, "kernel": kernel,
                 "param_free_norm": param_free_norm}
        self.norm_0 = SPADE(fin, **spade)
        self.conv_0 = nn.Conv2d(fin, fmid, 3, padding=1)
        self.norm_1 = SPADE(fmid, **spade)
        self.conv_1 = nn.Conv2d(fmid, fout, 3, padding=1)
        convs = [self.conv_0, self.conv_1]
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, **spade)
            self.conv_s = nn.Conv2d(fin, fout, 1, bias=False)
            convs.append(self.conv_s)
        _xavier_(*convs)
        if spectral_norm:  # after the init, so SN's power iteration starts from the final weights
            for layer in convs:
                _spectral_norm(layer)

    def forward(self, x: Tensor, label: Tensor) -> Tensor:
        label = _resize_label(label, x.shape[-2:])  # once for the three SPADE layers
        shortcut = self.conv_s(self.norm_s(x, label)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, label), self.negative_slope))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, label), self.negative_slope))
        return shortcut + dx


# SPADE paper, Appendix A (image encoder of the VAE variant): six stride-2 3x3 convs (64,128,256,512,512,512),
# instance norm, lReLU 0.2, two dense layers -> mu, logvar (256).
class ConvEncoder(nn.Module):
    """Style encoder: image (N, 3, H, W) in [-1, 1] -> (mu, logvar), each (N, z_dim).

    The image is resized to 256x256 (bilinear) first, so the six stride-2 convs end on a 4x4 map. Each conv is
    followed by an affine instance norm and lReLU 0.2; the convs have no bias (the instance norm removes it).
    """

    def __init__(self, ngf: int = 64, z_dim: int = 256, spectral_norm: bool = True, negative_slope: float = 0.2):
        super().__init__()
        _check_positive(ngf=ngf, z_dim=z_dim)
        self.negative_slope = negative_slope
        chans = [ngf, 2 * ngf, 4 * ngf, 8 * ngf, 8 * ngf, 8 * ngf]
        convs = []
        prev = 3
        for i, ch in enumerate(chans, start=1):
            conv = nn.Conv2d(prev, ch, 3, stride=2, padding=1, bias=False)
            self.add_module(f"layer{i}", nn.Sequential(conv, nn.InstanceNorm2d(ch, affine=True)))
            convs.append(conv)
            prev = ch
        self.num_layers = len(chans)
        self.fc_mu = nn.Linear(prev * 4 * 4, z_dim)
        self.fc_var = nn.Linear(prev * 4 * 4, z_dim)
        _xavier_(*convs, self.fc_mu, self.fc_var)
        if spectral_norm:
            for conv in convs:
                _spectral_norm(conv)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        check_image_input(self, image, 3, None)
        if image.shape[-2:] != (256, 256):
            image = F.interpolate(image, size=(256, 256), mode="bilinear", align_corners=False)
        x = image
        for i in range(1, self.num_layers + 1):
            x = F.leaky_relu(getattr(self, f"layer{i}")(x), self.negative_slope)
        x = x.flatten(1)
        return self.fc_mu(x), self.fc_var(x)


# SPADE paper, Appendix A (generator): label map (or z -> dense) at sh x sw, conv 1024 (16 ngf); SPADE ResBlks 1024,
# 1024, 1024, 512, 256, 128, 64 with nearest x2 up-sampling between them; lReLU, conv3x3 -> 3, tanh.
@GENERATORS.register("spade")
class SPADEGenerator(nn.Module):
    """seg (N, label_channels, H, W) float label map, optional z (N, z_dim) -> image (N, 3, H, W) in [-1, 1].

    (H, W) is fixed by the options: u = 5, 6, 7 up-sampling stages for ``num_upsampling_layers`` normal/more/most,
    the network starts at sw = crop_size // 2**u by sh = round(sw / aspect_ratio) (aspect_ratio = width / height)
    and outputs (sh * 2**u, sw * 2**u) = :meth:`sample_shape` (Cityscapes: crop 512, aspect 2, "more": 8x4 -> 512x256
    as W x H). Without the VAE the start is the label map resized to sh x sw; with ``use_vae`` it is a dense layer
    of z, and z ~ N(0, I) is drawn when none is given (random style). :meth:`encode` maps an image to (mu, logvar).
    """

    TASK: ClassVar[str] = "spade"
    TINY: ClassVar[dict] = {"label_channels": 5, "ngf": 4, "crop_size": 64, "spade_hidden": 8}

    def __init__(self, label_channels: int, ngf: int = 64, num_upsampling_layers: UpsamplingLayers = "normal",
                 crop_size: int = 256, aspect_ratio: float = 1.0, use_vae: bool = False, z_dim: int = 256,
                 param_free_norm: ParamFreeNorm = "instance", spectral_norm: bool = True, spade_hidden: int = 128):
        super().__init__()
        _check_positive(label_channels=label_channels, ngf=ngf, z_dim=z_dim, spade_hidden=spade_hidden)
        _check_param_free_norm(param_free_norm)
        if num_upsampling_layers not in UP_STAGES:
            raise OptionValueError("num_upsampling_layers", "must be 'normal', 'more' or 'most', "
                                                            f"got {num_upsampling_layers!r}")
        stages = UP_STAGES[num_upsampling_layers]
        if crop_size < 2**stages or crop_size % 2**stages:
            raise OptionValueError("crop_size", f"must be a positive multiple of {2**stages} (2**{stages} for "
                                                f"num_upsampling_layers={num_upsampling_layers!r}), got {crop_size}")
        if not aspect_ratio > 0:
            raise OptionValueError("aspect_ratio", f"must be > 0 (width / height), got {aspect_ratio}")
        sw = crop_size // 2**stages
        sh = round(sw / aspect_ratio)
        if sh < 1:
            raise OptionValueError("aspect_ratio", f"{aspect_ratio} leaves no rows at the {sw}-pixel-wide start "
                                                   f"(crop_size={crop_size}, num_upsampling_layers="
                                                   f"{num_upsampling_layers!r}); lower it or raise crop_size")
        if param_free_norm == "instance" and sh * sw < 2:  # instance norm of a single pixel is undefined
            raise OptionValueError("crop_size", f"{crop_size} gives a {sw}x{sh} (WxH) start for num_upsampling_layers="
                                                f"{num_upsampling_layers!r} and aspect_ratio={aspect_ratio}; instance "
                                                "norm needs more than one pixel: raise crop_size")
        if num_upsampling_layers == "most" and ngf < 2:
            raise OptionValueError("ngf", "must be >= 2 for num_upsampling_layers='most' (its last block has "
                                          f"ngf // 2 channels), got {ngf}")
        self.label_channels, self.ngf, self.z_dim, self.use_vae = label_channels, ngf, z_dim, use_vae
        self.num_upsampling_layers, self.crop_size, self.aspect_ratio = num_upsampling_layers, crop_size, aspect_ratio
        self.stages, self.sh, self.sw = stages, sh, sw

        nf = 16 * ngf
        if use_vae:
            self.fc: nn.Module = nn.Linear(z_dim, nf * sh * sw)
            self.encoder = ConvEncoder(ngf, z_dim, spectral_norm)
        else:
            self.fc = nn.Conv2d(label_channels, nf, 3, padding=1)

        def block(fin: int, fout: int) -> SPADEResBlock:
            return SPADEResBlock(fin, fout, label_channels, hidden=spade_hidden, param_free_norm=param_free_norm,
                                 spectral_norm=spectral_norm)

        self.head_0 = block(nf, nf)
        self.G_middle_0 = block(nf, nf)
        self.G_middle_1 = block(nf, nf)
        chans = [nf, 8 * ngf, 4 * ngf, 2 * ngf, ngf] + ([ngf // 2] if num_upsampling_layers == "most" else [])
        self.up_blocks = [f"up_{i}" for i in range(len(chans) - 1)]
        for name, fin, fout in zip(self.up_blocks, chans[:-1], chans[1:], strict=True):
            self.add_module(name, block(fin, fout))
        self.conv_img = nn.Conv2d(chans[-1], 3, 3, padding=1)
        _xavier_(self.fc, self.conv_img)

    def sample_shape(self) -> tuple[int, int]:
        """(H, W) of the label maps this network takes and of the images it outputs."""
        return self.sh * 2**self.stages, self.sw * 2**self.stages

    def _check_seg(self, seg: Tensor) -> None:
        name = type(self).__name__
        if seg.dim() != 4 or seg.shape[1] != self.label_channels:
            raise ValueError(f"{name} expects (N, {self.label_channels}, H, W) label maps (label_channels), "
                             f"got shape {tuple(seg.shape)}")
        if not seg.is_floating_point():
            raise ValueError(f"{name} expects a float (one-hot) label map, got dtype {seg.dtype}")
        h, w = self.sample_shape()
        if tuple(seg.shape[-2:]) != (h, w):
            raise ValueError(f"{name} expects {h}x{w} (HxW) label maps for crop_size={self.crop_size}, "
                             f"aspect_ratio={self.aspect_ratio}, num_upsampling_layers="
                             f"{self.num_upsampling_layers!r}; got {seg.shape[-2]}x{seg.shape[-1]}")

    def forward(self, seg: Tensor, z: Tensor | None = None) -> Tensor:
        self._check_seg(seg)
        n = seg.shape[0]
        if self.use_vae:
            if z is None:
                z = torch.randn(n, self.z_dim, device=seg.device, dtype=seg.dtype)
            elif z.shape != (n, self.z_dim):
                raise ValueError(f"{type(self).__name__} expects z of shape ({n}, {self.z_dim}), got {tuple(z.shape)}")
            x = self.fc(z).view(n, 16 * self.ngf, self.sh, self.sw)
        else:
            if z is not None:
                raise ValueError(f"{type(self).__name__} got a z but was built with use_vae=False")
            x = self.fc(_resize_label(seg, (self.sh, self.sw)))
        x = self.head_0(x, seg)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.G_middle_0(x, seg)
        if self.num_upsampling_layers in ("more", "most"):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.G_middle_1(x, seg)
        for name in self.up_blocks:
            x = getattr(self, name)(F.interpolate(x, scale_factor=2, mode="nearest"), seg)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))

    def encode(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """image (N, 3, H, W) in [-1, 1] -> (mu, logvar), each (N, z_dim). Needs ``use_vae``."""
        if not self.use_vae:
            raise ValueError(f"{type(self).__name__}.encode needs use_vae=True (there is no image encoder)")
        return self.encoder(image)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor) -> Tensor:
        """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I): a differentiable sample of N(mu, diag(exp(logvar)))."""
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
