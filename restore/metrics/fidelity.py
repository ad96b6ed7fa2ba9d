"""PSNR and SSIM by the standard SR protocol (MATLAB-exact, via basicsr).

Both images are quantised to 8 bits (rounded, as saved PNGs would be), ``crop_border`` pixels are dropped on every
side, and by default only the Y channel of MATLAB's ``rgb2ycbcr`` is compared
(Y = 16 + 65.481 R + 128.553 G + 24.966 B with R, G, B in [0, 1]; not rounded). SSIM is Wang et al.'s with an 11x11
Gaussian window (sigma 1.5), valid region only, averaged over channels when ``y_channel`` is False.
"""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np

from restore.compat import import_basicsr


def _psnr_ssim() -> ModuleType:
    with warnings.catch_warnings():  # importing basicsr imports scipy.ndimage.filters (deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        return import_basicsr("metrics.psnr_ssim")


def _quantised_bgr(name: str, img: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1] -> (H, W, 3) uint8 BGR (clipped, rounded)."""
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name} must be an (H, W, 3) RGB image, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{name} must be a float image in [0, 1], got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    q = np.rint(np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.ascontiguousarray(q[:, :, ::-1])


def _prepare(sr: np.ndarray, hr: np.ndarray, crop_border: int, min_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    sr_shape, hr_shape = np.shape(sr), np.shape(hr)
    if sr_shape != hr_shape:
        raise ValueError(f"sr and hr must have the same shape, got sr {sr_shape} and hr {hr_shape}")
    if not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ValueError(f"crop_border must be an integer >= 0, got {crop_border!r}")
    a, b = _quantised_bgr("sr", sr), _quantised_bgr("hr", hr)
    h, w = a.shape[:2]
    if min(h, w) - 2 * crop_border < min_size:
        raise ValueError(f"images of shape {hr_shape} are too small for crop_border {crop_border} "
                         f"(need at least {min_size} pixels per side after cropping)")
    return a, b


def psnr(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool = True) -> float:
    """PSNR in dB of (H, W, 3) float32 RGB images in [0, 1] after 8-bit quantisation; ``inf`` for identical
    images (basicsr's convention when the MSE is 0)."""
    a, b = _prepare(sr, hr, crop_border)
    fn = _psnr_ssim().calculate_psnr
    return float(fn(a, b, crop_border=crop_border, input_order="HWC", test_y_channel=y_channel))


def ssim(sr: np.ndarray, hr: np.ndarray, crop_border: int, y_channel: bool = True) -> float:
    """SSIM (at most 1, 1 for identical images) of (H, W, 3) float32 RGB images in [0, 1] after 8-bit
    quantisation; needs at least 11x11 pixels after cropping (the Gaussian window)."""
    a, b = _prepare(sr, hr, crop_border, min_size=11)
    fn = _psnr_ssim().calculate_ssim
    return float(fn(a, b, crop_border=crop_border, input_order="HWC", test_y_channel=y_channel))
