"""Inference: seamless tiled forward passes and image / folder upscaling with a trained SR generator.

``upscale_image`` / ``upscale_paths`` are loaded lazily so that importing the tiling helpers does not pull in the
image I/O stack (OpenCV, Pillow).
"""

from __future__ import annotations

from typing import Any

from restore.inference.tiling import tiled_forward

__all__ = ["tiled_forward", "upscale_image", "upscale_paths"]


def __getattr__(name: str) -> Any:
    if name in ("upscale_image", "upscale_paths"):
        from restore.inference import upscale

        return getattr(upscale, name)
    raise AttributeError(f"module 'restore.inference' has no attribute {name!r}")
