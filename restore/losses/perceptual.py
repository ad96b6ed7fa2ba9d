"""VGG perceptual (feature) loss: distances between ImageNet-VGG features of the restored and ground-truth images.

As in ESRGAN and the SAN paper (Sec. 4.3: "4th convolution layer (before the 5th max-pooling) of a pre-trained
19-layer VGG network"), features are taken *before* the activation: ``conv5_4`` of VGG19 by default. Every module
of torchvision's ``vgg19().features`` / ``vgg16().features`` is named ``conv<b>_<i>``, ``relu<b>_<i>`` or
``pool<b>`` (block b counts max-pools; i counts convs in the block), e.g. VGG19 ``conv5_4`` is ``features[34]``.

Weights are never random: they come from the ``weights`` file, else from torchvision's checkpoint in the torch hub
cache (downloaded there once, as torchvision does, unless ``download: false``), else construction fails with a
FileNotFoundError that explains the offline alternative (ImageNet VGG16 from ``../shared/weights``; no ImageNet
VGG19 is available offline on this project's machines).
"""

from __future__ import annotations

import math
import os
from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restore.assets import features_only, read_tensor_state
from restore.registry import OptionValueError, did_you_mean

Network = Literal["vgg19", "vgg16"]
NETWORKS: tuple[str, ...] = ("vgg19", "vgg16")
DEFAULT_LAYER: dict[str, str] = {"vgg19": "conv5_4", "vgg16": "conv5_3"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SHARED_VGG16 = "../shared/weights/vgg16_imagenet_features.pth"


def _check_network(network: str) -> None:
    if network not in NETWORKS:
        raise OptionValueError("network", f"must be one of {', '.join(NETWORKS)}, got {network!r}"
                                          f"{did_you_mean(str(network), NETWORKS)}")


def _meta_features(network: str) -> nn.Sequential:
    """torchvision's ``<network>().features`` on the meta device: the exact module list, no memory, no init cost."""
    import torchvision

    with torch.device("meta"):
        return getattr(torchvision.models, network)(weights=None).features


def name_layers(features: nn.Sequential) -> list[str]:
    """Names of the modules of a VGG ``features`` Sequential: conv1_1, relu1_1, ..., pool1, conv2_1, ..."""
    names: list[str] = []
    block, conv_i = 1, 0
    for module in features:
        if isinstance(module, nn.Conv2d):
            conv_i += 1
            names.append(f"conv{block}_{conv_i}")
        elif isinstance(module, nn.ReLU):
            names.append(f"relu{block}_{conv_i}")
        elif isinstance(module, nn.MaxPool2d):
            names.append(f"pool{block}")
            block, conv_i = block + 1, 0
        else:
            raise TypeError(f"unexpected {type(module).__name__} in a VGG feature extractor (no batch norm VGGs)")
    return names


@cache
def vgg_layer_names(network: str) -> tuple[str, ...]:
    """All layer names of ``network`` ('vgg19': 37 of them, 'vgg16': 31), index i naming ``features[i]``."""
    _check_network(network)
    return tuple(name_layers(_meta_features(network)))


def hub_checkpoint(network: str) -> tuple[Path, str]:
    """(path in the local torch hub cache, download URL) of torchvision's ImageNet weights for ``network``."""
    import torchvision.models as tvm

    _check_network(network)
    enum = {"vgg19": tvm.VGG19_Weights, "vgg16": tvm.VGG16_Weights}[network].IMAGENET1K_V1
    filename = os.path.basename(urlparse(enum.url).path)  # the name torch.hub gives the downloaded file
    return Path(torch.hub.get_dir()) / "checkpoints" / filename, enum.url


def _download(url: str, path: Path, timeout: float = 30.0) -> None:
    """torchvision's own download into the hub cache, with a socket timeout so an offline machine fails fast."""
    import socket

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), progress=False)
    finally:
        socket.setdefaulttimeout(old)


def _missing_weights_error(network: str, path: Path, url: str, failure: str | None = None) -> FileNotFoundError:
    net = network.upper()
    why = (f"downloading them from {url} failed ({failure}), so this machine cannot download them"
           if failure else "downloading is switched off (download: false)")
    return FileNotFoundError(
        f"PerceptualLoss(network='{network}') needs ImageNet-pretrained {net} weights, and none were found: no "
        f"`weights` file was given and torchvision's checkpoint is not in the local torch hub cache (looked for "
        f"{path}; torch.hub.get_dir() is {torch.hub.get_dir()}); {why}. No ImageNet VGG19 is available offline "
        f"on this project's machines. Offline "
        f"alternative: `network: vgg16` with `weights: {SHARED_VGG16}` (ImageNet VGG16; its conv5_3 features stand "
        f"in for the paper's VGG19 conv5_4, so record that choice with the results). Or, on a machine with internet, "
        f"download {url} and copy it to {path}."
    )


class PerceptualLoss(nn.Module):
    """sum over layers of weight * criterion(VGG(sr)[layer], VGG(hr)[layer]); sr, hr: (N, 3, H, W) RGB in [0, 1].

    The VGG is truncated after the deepest requested layer, frozen, and always in eval mode (``train()`` is a
    no-op). ImageNet mean/std normalisation happens inside unless ``normalize_input`` is False (then inputs must
    already be normalised). Gradients flow to ``sr``; ``hr`` features are computed without a graph.
    """

    def __init__(self, network: Network = "vgg19", layers: dict[str, float] | None = None,
                 weights: str | None = None, criterion: Literal["l1", "l2"] = "l1", normalize_input: bool = True,
                 download: bool = True):
        super().__init__()
        _check_network(network)
        if criterion not in ("l1", "l2"):
            raise OptionValueError("criterion", f"must be 'l1' or 'l2', got {criterion!r}")
        names = vgg_layer_names(network)
        layers = dict(layers) if layers is not None else {DEFAULT_LAYER[network]: 1.0}
        if not layers:
            raise OptionValueError("layers", f"must name at least one {network} layer, e.g. "
                                             f"{{{DEFAULT_LAYER[network]}: 1.0}}")
        for name, weight in layers.items():
            if name not in names:
                raise OptionValueError("layers", f"'{name}' is not a {network} layer{did_you_mean(str(name), names)};"
                                                 f" valid: {', '.join(names)}")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) \
                    or weight < 0:
                raise OptionValueError("layers", f"weight of '{name}' must be a finite number >= 0, got {weight!r}")
        self.network, self.criterion, self.normalize_input = network, criterion, normalize_input
        self.layers: dict[str, float] = {k: float(v) for k, v in layers.items()}
        depth = max(names.index(n) for n in self.layers) + 1
        self.names: tuple[str, ...] = names[:depth]

        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"perceptual loss weights file not found: {weights} (resolved to "
                                        f"{path.resolve()}; relative paths start at the working directory "
                                        f"{Path.cwd()}). For network: vgg16 the offline file is {SHARED_VGG16}")
        else:
            path, url = hub_checkpoint(network)
            if not path.is_file():
                if not download:
                    raise _missing_weights_error(network, path, url)
                try:
                    _download(url, path)
                except Exception as err:  # offline, proxy, timeout...
                    raise _missing_weights_error(network, path, url, f"{type(err).__name__}: {err}") from None
        self.weights_path = str(path)
        state = features_only(read_tensor_state(path, f"{network} feature weights"))

        vgg = _meta_features(network)[:depth].to_empty(device="cpu")
        for module in vgg:
            if isinstance(module, nn.ReLU):
                module.inplace = False  # an in-place ReLU would overwrite the pre-activation (conv) features we keep
        needed = vgg.state_dict()
        missing = [k for k in needed if k not in state]
        if missing:
            raise ValueError(f"{path}: not {network} feature weights up to {self.names[-1]}: missing keys "
                             f"{', '.join(missing[:6])} (expected keys like '0.weight' or 'features.0.weight' of "
                             f"torchvision's {network}; is `network` right for this file?)")
        for key, ref in needed.items():
            if state[key].shape != ref.shape:
                raise ValueError(f"{path}: '{key}' has shape {tuple(state[key].shape)} but {network} needs "
                                 f"{tuple(ref.shape)} (is `network` right for this file?)")
        # Every parameter is overwritten here (strict), so nothing of the uninitialised to_empty memory survives;
        # float16 files are cast to float32.
        vgg.load_state_dict({k: state[k].float() for k in needed}, strict=True)
        self.vgg = vgg.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.train(False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Always eval mode: the loss network is fixed."""
        del mode
        return super().train(False)

    def features(self, x: Tensor, layers: list[str] | tuple[str, ...] | None = None) -> dict[str, Tensor]:
        """{layer name: (N, C_l, H_l, W_l) activation} for ``layers`` (default: the loss layers), in depth order.

        x: (N, 3, H, W) RGB in [0, 1]. Layers deeper than the deepest loss layer are not available (truncated).
        """
        wanted = list(self.layers) if layers is None else list(layers)
        every = vgg_layer_names(self.network)
        for name in wanted:
            if name not in self.names:
                why = (f"is deeper than this loss network, which ends at {self.names[-1]}" if name in every else
                       f"is not a {self.network} layer{did_you_mean(str(name), every)}")
                raise ValueError(f"features: layer '{name}' {why}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"PerceptualLoss expects (N, 3, H, W) RGB images, got shape {tuple(x.shape)}")
        h = (x - self.mean) / self.std if self.normalize_input else x
        last = max(self.names.index(n) for n in wanted)
        want = set(wanted)
        out: dict[str, Tensor] = {}
        for i, module in enumerate(self.vgg[: last + 1]):
            h = module(h)
            if self.names[i] in want:
                out[self.names[i]] = h
        return out

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        """0-dim loss; sr and hr (N, 3, H, W) in [0, 1] with the same shape."""
        if sr.shape != hr.shape:
            raise ValueError(f"PerceptualLoss: sr has shape {tuple(sr.shape)} but hr has {tuple(hr.shape)}")
        dist = F.l1_loss if self.criterion == "l1" else F.mse_loss
        fs = self.features(sr)
        with torch.no_grad():
            fh = self.features(hr)
        terms = [w * dist(fs[n], fh[n]) for n, w in self.layers.items()]
        return sum(terms[1:], terms[0])

    def extra_repr(self) -> str:
        return (f"network={self.network!r}, layers={self.layers}, criterion={self.criterion!r}, "
                f"weights={self.weights_path!r}")
