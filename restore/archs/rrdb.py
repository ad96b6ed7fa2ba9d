"""ESRGAN's RRDBNet generator, taken from basicsr and put behind restore's generator interface."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from restore.archs.layers import check_image_input
from restore.registry import GENERATORS, OptionValueError


# ESRGAN paper (Wang et al. 2018), Fig. 4 / Sec. 3.1: 23 RRDBs of 3 dense blocks (5 convs, growth 32, 64 features),
# residual scaling 0.2, nearest x2 + conv upsampling twice; 16.7 M parameters.
@GENERATORS.register("rrdbnet")
class RRDBNet(nn.Module):
    """x: (N, in_channels, h, w) in [0, 1] -> (N, out_channels, scale*h, scale*w), roughly [0, 1] (not clamped).

    The layers are basicsr's ``RRDBNet`` (registered directly on this module, so state dict keys are basicsr's:
    ``conv_first.weight``, ``body.0.rdb1.conv1.weight``, ... and ESRGAN/basicsr weights load unchanged), and the
    forward pass is basicsr's. basicsr's x2 model starts with a pixel-unshuffle that needs even sides: odd inputs
    are replicate-padded by one pixel and the output cropped back to ``2*h x 2*w``.
    """

    TINY: ClassVar[dict] = {"channels": 4, "num_blocks": 1, "growth_channels": 2}

    def __init__(self, in_channels: int = 3, out_channels: int = 3, channels: int = 64, num_blocks: int = 23,
                 growth_channels: int = 32, scale: Literal[2, 4] = 4):
        super().__init__()
        if scale not in (2, 4):
            raise OptionValueError("scale", f"must be 2 or 4, got {scale!r}")
        for key, value in (("in_channels", in_channels), ("out_channels", out_channels), ("channels", channels),
                           ("growth_channels", growth_channels)):
            if value < 1:
                raise OptionValueError(key, f"must be >= 1, got {value}")
        if num_blocks < 0:
            raise OptionValueError("num_blocks", f"must be >= 0, got {num_blocks}")
        from restore.compat import import_basicsr  # lazy: importing basicsr takes seconds

        arch = import_basicsr("archs.rrdbnet_arch").RRDBNet
        net = arch(num_in_ch=in_channels, num_out_ch=out_channels, scale=scale, num_feat=channels,
                   num_block=num_blocks, num_grow_ch=growth_channels)
        for name, child in net.named_children():
            self.add_module(name, child)
        self.in_channels, self.out_channels, self.scale = in_channels, out_channels, scale
        # basicsr's forward only reads self.scale and the submodules registered above; keeping the plain function
        # (not the basicsr module) means .to(), deepcopy (EMA) and state dicts see a single set of parameters.
        self._basicsr_forward = arch.forward

    def forward(self, x: Tensor) -> Tensor:
        check_image_input(self, x, self.in_channels, None)
        h, w = x.shape[-2:]
        pad_h, pad_w = (h % 2, w % 2) if self.scale == 2 else (0, 0)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        out = self._basicsr_forward(self, x)
        return out[..., : self.scale * h, : self.scale * w] if pad_h or pad_w else out
