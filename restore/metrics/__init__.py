"""Image-quality metrics: PSNR/SSIM (MATLAB protocol, via basicsr), NIQE (via basicsr), LPIPS-alex (offline).

``LPIPSMetric`` is imported lazily (it pulls in the lpips package and torchvision models).
"""

from __future__ import annotations

from typing import Any

from restore.metrics.fidelity import psnr, ssim
from restore.metrics.niqe import niqe

__all__ = ["LPIPSMetric", "find_alexnet_weights", "niqe", "psnr", "ssim"]


def __getattr__(name: str) -> Any:
    if name in ("LPIPSMetric", "find_alexnet_weights"):
        from restore.metrics import lpips as _lpips

        return getattr(_lpips, name)
    raise AttributeError(f"module 'restore.metrics' has no attribute '{name}'")
