"""Generate the web demo's bundled examples (weights/examples/), procedurally, so that we own them (CC0).

    python scripts/make_examples.py [--out weights/examples]

- ``sr_scene.png``: a 128x128 photo-like scene (sky, clouds, hills, a house, a tree, grass), drawn at 4x and
  area-downsampled as a camera would, for the super-resolution tab;
- ``facade_labels.png``: a CMP-Facades-style label map (raw values 1..12 in a palette PNG whose colours are the
  classes' legend colours), for the label -> photo tab; ``facade_colours.png``: the same map colour-coded (RGB).

The output is the same on every run (fixed seed), byte for byte on the same Pillow/OpenCV versions.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# CMP Facades raw values (restore.data.labels.CMP_FACADES_CLASSES: value v is class v - 1)
BACKGROUND, FACADE, WINDOW, DOOR, CORNICE, SILL, BALCONY, BLIND, DECO, MOLDING, PILLAR, SHOP = range(1, 13)


# ------------------------------------------------------------------------------------------------- SR scene
def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Value noise in [0, 1]: random values on a coarse grid, bicubic-upsampled."""
    coarse = rng.random((h // cell + 3, w // cell + 3)).astype(np.float32)
    big = cv2.resize(coarse, ((w // cell + 3) * cell, (h // cell + 3) * cell), interpolation=cv2.INTER_CUBIC)
    return np.clip(big[cell:cell + h, cell:cell + w], 0, 1)


def _fractal(rng: np.random.Generator, h: int, w: int, cells: tuple[int, ...]) -> np.ndarray:
    out = sum(_smooth_noise(rng, h, w, c) * (0.5 ** i) for i, c in enumerate(cells))
    out = out - out.min()
    return out / max(float(out.max()), 1e-6)


def sr_scene(size: int = 128, supersample: int = 4, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8: a small landscape with a house, rendered at ``supersample`` x and area-reduced."""
    rng = np.random.default_rng(seed)
    n = size * supersample
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / n
    img = np.zeros((n, n, 3), np.float32)
    # sky: blue gradient, lighter at the horizon, with soft clouds
    sky = np.stack([0.35 + 0.4 * yy, 0.55 + 0.3 * yy, 0.85 + 0.1 * yy], -1)
    clouds = np.clip((_fractal(rng, n, n, (96, 48, 24, 12)) - 0.55) * 2.5, 0, 1)[..., None]
    img[:] = sky * (1 - clouds * 0.8) + clouds * 0.8 * np.array([0.97, 0.97, 0.98], np.float32)
    # distant hills (hazy) and a nearer ridge
    ridge_far = 0.52 + 0.05 * np.sin(xx[0] * 7.0 + 1.0) + 0.02 * np.sin(xx[0] * 23.0)
    ridge_near = 0.62 + 0.04 * np.sin(xx[0] * 4.0 + 2.5) + 0.015 * np.sin(xx[0] * 31.0 + 0.3)
    far = yy > ridge_far[None, :]
    img[far] = np.array([0.45, 0.55, 0.60], np.float32)
    near = yy > ridge_near[None, :]
    grass_tex = _fractal(rng, n, n, (32, 8, 2))[..., None]
    blades = rng.random((n, n, 1)).astype(np.float32)
    grass = np.array([0.22, 0.45, 0.15], np.float32) * (0.7 + 0.4 * grass_tex) + 0.08 * (blades - 0.5)
    shade = (0.8 + 0.3 * (yy - 0.62))[..., None]
    img[near] = (grass * shade)[near]
    # a house: brick wall, dark roof, windows with frames, a door
    x0, x1, y0, y1 = int(0.12 * n), int(0.48 * n), int(0.50 * n), int(0.82 * n)
    bricks = np.array([0.62, 0.30, 0.22], np.float32) * (0.85 + 0.25 * _fractal(rng, n, n, (4, 2)))[..., None]
    mortar = ((np.arange(n)[:, None] % 12 < 2) | (((np.arange(n)[None, :] + 12 * ((np.arange(n)[:, None] // 12)
                                                                                   % 2)) % 24) < 2))
    wall = np.where(mortar[..., None], np.array([0.78, 0.76, 0.70], np.float32), bricks)
    img[y0:y1, x0:x1] = wall[y0:y1, x0:x1]
    for y in range(int(0.36 * n), y0):  # roof: a triangle with shingle stripes
        half = (y - int(0.36 * n)) / (y0 - int(0.36 * n)) * (x1 - x0) / 2 + 6
        cx = (x0 + x1) / 2
        lo, hi = int(max(0, cx - half)), int(min(n, cx + half))
        img[y, lo:hi] = np.array([0.25, 0.18, 0.16]) * (0.8 + 0.3 * ((y // 6) % 2))
    for wx in (0.17, 0.36):
        for wy in (0.56,):
            a, b, c, d = int(wy * n), int((wy + 0.09) * n), int(wx * n), int((wx + 0.08) * n)
            img[a - 3:b + 3, c - 3:d + 3] = 0.92
            glass = np.array([0.35, 0.5, 0.62], np.float32) + 0.25 * (1 - yy[a:b, c:d, None] * 3 % 1)
            img[a:b, c:d] = np.clip(glass, 0, 1)
            img[(a + b) // 2 - 1:(a + b) // 2 + 1, c:d] = 0.92
            img[a:b, (c + d) // 2 - 1:(c + d) // 2 + 1] = 0.92
    img[int(0.68 * n):y1, int(0.27 * n):int(0.33 * n)] = np.array([0.30, 0.20, 0.12], np.float32)
    # a tree: trunk and noisy round foliage
    img[int(0.58 * n):int(0.80 * n), int(0.72 * n):int(0.75 * n)] = np.array([0.30, 0.22, 0.14], np.float32)
    r = np.sqrt((xx - 0.735) ** 2 + ((yy - 0.50) * 1.1) ** 2)
    leaves = _fractal(rng, n, n, (16, 6, 2))
    crown = r < 0.13 + 0.04 * (leaves - 0.5)
    foliage = np.array([0.16, 0.38, 0.12], np.float32) * (0.6 + 0.8 * leaves)[..., None]
    img[crown] = foliage[crown]
    # soft sun light from the left, camera blur and sensor noise, then area-downsample
    img *= (1.05 - 0.1 * xx)[..., None]
    img = cv2.GaussianBlur(img, (0, 0), 0.6 * supersample / 2)
    small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    small += rng.normal(0, 0.008, small.shape).astype(np.float32)
    return np.round(np.clip(small, 0, 1) * 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------- facade map
def facade_labels(width: int = 256, height: int = 256) -> np.ndarray:
    """(height, width) uint8 raw CMP Facades values: a four-storey facade with a window grid, sills, blinds,
    decorations, a cornice, a balcony, pillars, a door and shop windows, under a strip of background (sky)."""
    m = np.full((height, width), BACKGROUND, np.uint8)
    left, right, top = 12, width - 12, 22
    m[top:, left:right] = FACADE
    m[top:top + 10, left - 6:right + 6] = CORNICE
    m[:, left:left + 10][top + 10:] = PILLAR
    m[:, right - 10:right][top + 10:] = PILLAR
    floors = 4
    ground = height - 62
    floor_h = (ground - (top + 14)) // floors
    cols = 4
    span = (right - 10) - (left + 10)
    for f in range(floors):
        y = top + 14 + f * floor_h
        if f:
            m[y - 3:y, left + 10:right - 10] = MOLDING
        for c in range(cols):
            x = left + 10 + c * span // cols + span // cols // 2 - 12
            wy0, wy1 = y + 10, y + floor_h - 12
            m[y + 4:y + 8, x + 4:x + 20] = DECO
            m[wy0:wy1, x:x + 24] = WINDOW
            if (f + c) % 3 == 0:
                m[wy0:wy0 + (wy1 - wy0) // 3, x:x + 24] = BLIND
            m[wy1:wy1 + 3, x - 2:x + 26] = SILL
        if f == 1:
            m[y + floor_h - 12:y + floor_h - 4, left + 30:right - 30] = BALCONY
    m[ground - 3:ground, left:right] = MOLDING
    mid = width // 2
    m[ground + 8:, mid - 14:mid + 14] = DOOR
    m[ground + 10:height - 8, left + 14:mid - 24] = SHOP
    m[ground + 10:height - 8, mid + 24:right - 14] = SHOP
    return m


def facade_palette() -> np.ndarray:
    """(13, 3) uint8: entry v is the legend colour of raw value v (class v - 1); entry 0 (unused) is black."""
    from restore.data.labels import LABEL_SETS

    return np.concatenate([np.zeros((1, 3), np.uint8), LABEL_SETS["cmp_facades"].palette.astype(np.uint8)])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="write the web demo's bundled examples")
    p.add_argument("--out", type=Path, default=ROOT / "weights" / "examples")
    out = p.parse_args(argv).out
    out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sr_scene()).save(out / "sr_scene.png", optimize=True)
    labels = facade_labels()
    pal = facade_palette()
    img = Image.fromarray(labels, mode="P")
    img.putpalette(pal.ravel().tolist())
    img.save(out / "facade_labels.png", optimize=False)
    Image.fromarray(pal[labels]).save(out / "facade_colours.png")
    for name in ("sr_scene.png", "facade_labels.png", "facade_colours.png"):
        print(out / name)


if __name__ == "__main__":
    main()
