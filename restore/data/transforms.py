"""Geometric augmentation and aligned crops for paired (LR, HR) training images.

All functions take and return (H, W, C) numpy arrays (any dtype) and draw randomness only from the
``np.random.Generator`` they are given, so a sample is a pure function of its generator's seed.
"""

from __future__ import annotations

import numpy as np


def augment(images: list[np.ndarray], hflip: bool, vflip: bool, rot90: bool) -> list[np.ndarray]:
    """Apply the same flips / rotation to every (H, W, ...) array: horizontal flip (mirror W), vertical flip
    (mirror H), then a 90 degree counter-clockwise rotation (swaps H and W). The 8 combinations are the 8 symmetries
    of the square, so together they give the usual dihedral augmentation. Returns contiguous copies."""
    out = []
    for img in images:
        x = img
        if hflip:
            x = x[:, ::-1]
        if vflip:
            x = x[::-1]
        if rot90:
            x = np.rot90(x, k=1, axes=(0, 1))
        out.append(np.ascontiguousarray(x))
    return out


def random_augment(images: list[np.ndarray], rng: np.random.Generator, flip: bool = True,
                   rotate: bool = True) -> list[np.ndarray]:
    """:func:`augment` with each transform on with probability 1/2 (``flip``: horizontal; ``rotate``: vertical
    flip and rot90, as in the usual SR recipes). Always draws three numbers, so later draws do not depend on the
    flags."""
    h, v, r = rng.random(3) < 0.5
    return augment(images, hflip=flip and bool(h), vflip=rotate and bool(v), rot90=rotate and bool(r))


def random_crop(img: np.ndarray, size: int, rng: np.random.Generator, name: str = "image") -> np.ndarray:
    """A uniformly placed ``size`` x ``size`` crop of (H, W, ...) ``img``; ``name`` goes into the error message."""
    h, w = img.shape[:2]
    if h < size or w < size:
        raise ValueError(f"{name} is {w}x{h} (WxH), smaller than the {size}x{size} crop")
    top = int(rng.integers(0, h - size + 1))
    left = int(rng.integers(0, w - size + 1))
    return img[top:top + size, left:left + size]


def paired_random_crop(gt: np.ndarray, lq: np.ndarray, gt_size: int, scale: int, rng: np.random.Generator,
                       name: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops: a ``gt_size`` square of ``gt`` (sH, sW, C) and the ``gt_size / scale`` square of ``lq``
    (H, W, C) that covers the same area (lq top-left = gt top-left / scale).

    Raises ValueError (naming ``name`` and the sizes) when gt is not exactly ``scale`` times lq, gt_size is not a
    multiple of scale, or the images are smaller than the crop.
    """
    if scale < 1:
        raise ValueError(f"{name}: scale must be >= 1, got {scale}")
    if gt_size % scale != 0:
        raise ValueError(f"{name}: gt_size {gt_size} is not a multiple of scale {scale}")
    lh, lw = lq.shape[:2]
    gh, gw = gt.shape[:2]
    if (gh, gw) != (lh * scale, lw * scale):
        raise ValueError(f"{name}: GT is {gw}x{gh} (WxH) but LQ is {lw}x{lh}; GT must be exactly x{scale} "
                         f"the LQ size ({lw * scale}x{lh * scale})")
    lq_size = gt_size // scale
    if lh < lq_size or lw < lq_size:
        raise ValueError(f"{name}: LQ is {lw}x{lh} (GT {gw}x{gh}), smaller than the {lq_size}x{lq_size} LQ crop "
                         f"(gt_size {gt_size})")
    top = int(rng.integers(0, lh - lq_size + 1))
    left = int(rng.integers(0, lw - lq_size + 1))
    lq_crop = lq[top:top + lq_size, left:left + lq_size]
    gt_crop = gt[top * scale:top * scale + gt_size, left * scale:left * scale + gt_size]
    return gt_crop, lq_crop
