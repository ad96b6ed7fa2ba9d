"""The super-resolution tab: upscale an uploaded image with a published SR model."""

from __future__ import annotations

import math
import time

import gradio as gr
import torch

from restore.data.io import write_image
from restore.demo.common import (
    DemoContext,
    file_name,
    file_stem,
    grey_like,
    image_size,
    pick,
    preview_size,
    read_upload,
    status_line,
    to_uint8,
    write_png,
)
from restore.hub.pipelines import SRPipeline
from restore.inference.upscale import _resize


class SRTab:
    """The ``upscale`` endpoint."""

    def __init__(self, ctx: DemoContext):
        self.ctx = ctx

    def refuse_large(self, image: str, h: int, w: int, scale: int, factor: float) -> None:
        """Refuse, from the header's size, an image whose work is over ``max_output_pixels``. The model always
        computes its own (h·scale)×(w·scale) output and only then resizes it to the output scale, so a 5000×5000
        upload at output scale 1 still means a 20000×20000 float image (hours of CPU, GB of memory, and every
        request queued behind it waits as long): that intermediate is checked, not only the result."""
        from restore.inference.upscale import output_size

        limit = self.ctx.max_output_pixels
        th, tw = output_size(h, w, scale, factor)
        mh, mw = h * scale, w * scale
        if th * tw > limit and th * tw >= mh * mw:
            raise gr.Error(f"The result would be {tw}×{th} = {th * tw / 1e6:.0f} MP, over this demo's limit of "
                           f"{limit / 1e6:g} MP. Choose a smaller output scale or a smaller image.")
        if mh * mw > limit:
            most = limit // (scale * scale)
            side = math.isqrt(most)
            raise gr.Error(f"{file_name(image)} is {w}×{h} ({h * w / 1e6:.3g} MP): this model first computes its "
                           f"×{scale} output, {mw}×{mh} = {mh * mw / 1e6:.3g} MP, and only then resizes it to the "
                           f"output scale ×{factor:g}, so that is over this demo's limit of {limit / 1e6:g} MP "
                           f"whatever the output scale. Upload a smaller image (at most {most / 1e6:.3g} MP, e.g. "
                           f"{side}×{side}), or downscale it before uploading.")

    def upscale(self, image: str | None, model: str | None = None, outscale: float | None = 4,
                tile: int | None = 256) -> tuple[tuple[str, str], str, str]:
        """An image file -> ((bicubic preview, SR preview) PNG paths, the full-resolution PNG's path, status)."""
        pipe: SRPipeline = pick(self.ctx.models.sr, model, "sr")
        if not image:
            raise gr.Error("Upload an image first.")
        scale = int(pipe.desc["kwargs"].get("scale", 4))
        factor = float(scale if outscale in (None, "", 0) else outscale)
        if not math.isfinite(factor) or not 0 < factor <= 16:
            raise gr.Error(f"The output scale must be between 0 and 16, got {outscale!r}.")
        h, w = image_size(image)
        self.refuse_large(image, h, w, scale, factor)
        tile_px = int(round(float(tile or 0)))
        if tile_px and tile_px < 40:
            raise gr.Error(f"The tile size must be 0 (no tiling) or at least 40 pixels, got {tile}.")
        note = ""
        if h * w > self.ctx.max_pixels and not tile_px:
            tile_px = 256
            note = f" The input is over {self.ctx.max_pixels / 1e6:g} MP, so it ran in 256-pixel tiles."
        img = read_upload(image, "an image")
        start = time.perf_counter()
        try:
            rgb, alpha = pipe(img.rgb, outscale=None if factor == scale else factor, tile=tile_px,
                              alpha=img.alpha)
        except torch.cuda.OutOfMemoryError:
            raise gr.Error("The GPU ran out of memory: choose a smaller tile size.") from None
        seconds = time.perf_counter() - start
        rgb = grey_like(rgb, img)
        (h, w), (th, tw) = img.rgb.shape[:2], rgb.shape[:2]  # EXIF may have turned the image since the header
        folder = self.ctx.new_folder()
        stem = file_stem(image, "image")
        png = folder / f"{stem}_x{factor:g}.png"
        write_image(png, rgb, alpha=alpha, bit_depth=img.bit_depth, grey=img.grey)
        ph, pw = preview_size(th, tw)
        before = to_uint8(_resize(img.rgb, ph, pw), None if img.alpha is None else _resize(img.alpha, ph, pw))
        after = to_uint8(_resize(rgb, ph, pw), None if alpha is None else _resize(alpha, ph, pw))
        shrunk = " The comparison is shrunk to fit; the PNG has the full resolution." if (ph, pw) != (th, tw) else ""
        depth = f", {img.bit_depth}-bit" if img.bit_depth != 8 else ""
        how = f"tiles of {tile_px} px" if tile_px and max(h, w) > tile_px else "one pass"
        detail = (f"{w}×{h} → {tw}×{th} (×{factor:g}{depth}{', grey' if img.grey else ''}"
                  f"{', with alpha' if alpha is not None else ''}), {how}.{note}{shrunk}")
        previews = (write_png(folder / f"{stem}_bicubic.png", before), write_png(folder / f"{stem}_sr.png", after))
        return previews, str(png), status_line(pipe, seconds, detail)
