"""The label map -> photo tab: decode an uploaded or painted label map and run a published SPADE model."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch

from restore.data.io import ImageReadError
from restore.data.labels import stored_values
from restore.demo.common import (
    DemoContext,
    file_name,
    file_stem,
    friendly,
    pick,
    refuse_large,
    status_line,
    to_uint8,
    write_png,
)
from restore.hub.pipelines import SPADEPipeline
from restore.inference.translate import resize_nearest


def hex_colour(rgb: Any) -> str:
    r, g, b = (int(c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def legend_html(pipe: SPADEPipeline) -> str:
    """Swatch, name, and the value an integer-id PNG uses, for every class of the model."""
    cells = []
    for i, (name, colour, raw) in enumerate(zip(pipe.class_names, pipe.palette, stored_values(pipe.desc), strict=True)):
        value = "" if raw is None else f" = {raw}"
        cells.append(f'<span style="display:inline-flex;align-items:center;margin:2px 10px 2px 0">'
                     f'<span style="display:inline-block;width:14px;height:14px;border:1px solid #888;'
                     f'margin-right:4px;background:{hex_colour(colour)}"></span>'
                     f'{html.escape(str(name))}<small style="opacity:.7">&nbsp;(id {i}{value})</small></span>')
    return (f'<div id="label-legend"><b>Classes of {html.escape(pipe.name)}</b> (label set '
            f'<code>{html.escape(str(pipe.desc.get("label_set")))}</code>): paint with these colours, or store '
            f'the value after "=" in an integer-id PNG.<br>{"".join(cells)}</div>')


def _palette_tolerance(palette: np.ndarray) -> float:
    """How far a painted colour may be from a palette colour and still count as it: below half the distance
    between the two closest palette colours, so that a stroke's anti-aliased rim never flips to another class."""
    pal = palette.astype(np.float64)
    d = np.sqrt(((pal[:, None] - pal[None]) ** 2).sum(-1))
    d[d == 0] = np.inf
    closest = float(d.min()) if np.isfinite(d).any() else 255.0
    return min(24.0, 0.45 * closest)


def _unknown_colours_message(colours: np.ndarray, where: str) -> str:
    uniq, counts = np.unique(colours.reshape(-1, 3), axis=0, return_counts=True)
    order = np.argsort(-counts)[:5]
    shown = ", ".join(f"{hex_colour(uniq[i])} ({counts[i]} px)" for i in order)
    return (f"{where} uses {len(uniq)} colour(s) that are not classes of this model: {shown}. Paint only with "
            "the colours of the legend (the brush offers exactly those).")


def ids_from_painting(rgba: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A painted layer (H, W, 4) uint8 -> (class ids, mask of painted pixels). Pixels at least half opaque count;
    each takes the nearest palette colour within the palette's tolerance, and any other colour is an error."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4):
        raise gr.Error(f"The drawing must be an RGB(A) image, got an array of shape {rgba.shape}.")
    mask = rgba[..., 3] >= 128 if rgba.shape[2] == 4 else np.ones(rgba.shape[:2], bool)
    ids = np.zeros(rgba.shape[:2], np.int64)
    if not mask.any():
        return ids, mask
    colours = rgba[..., :3][mask].astype(np.float64)
    uniq, inverse = np.unique(colours, axis=0, return_inverse=True)
    pal = palette.astype(np.float64)
    nearest = np.empty(len(uniq), np.int64)
    gap = np.empty(len(uniq))
    for i in range(0, len(uniq), 8192):  # bounded memory whatever the number of distinct colours
        dist = np.sqrt(((uniq[i:i + 8192, None] - pal[None]) ** 2).sum(-1))
        nearest[i:i + 8192] = dist.argmin(1)  # ties: the lowest id, as decode_color_map does for repeated colours
        gap[i:i + 8192] = dist.min(1)
    bad = gap > _palette_tolerance(palette)
    inverse = inverse.ravel()
    if bad.any():
        raise gr.Error(_unknown_colours_message(colours[bad[inverse]].astype(np.uint8), "The drawing"))
    ids[mask] = nearest[inverse]
    return ids, mask




class SPADETab:
    """The ``label_to_photo`` endpoint and the label editor's background."""

    def __init__(self, ctx: DemoContext):
        self.ctx = ctx

    def label_ids(self, label_map: str | None, pipe: SPADEPipeline) -> np.ndarray | None:
        """(H, W) class ids of an uploaded label map (integer ids or the model's palette colours)."""
        from restore.inference.translate import spade_label_ids

        if not label_map:
            return None
        refuse_large(label_map, "label map", self.ctx.max_pixels, "the model works at its own resolution anyway")
        try:
            return spade_label_ids(Path(label_map), pipe.desc)
        except FileNotFoundError:
            raise gr.Error("The uploaded label map is no longer on the server; please upload it again.") from None
        except ImageReadError as err:
            raise gr.Error(f"Could not read {file_name(label_map)} as an image ({friendly(err, label_map)}). "
                           f"Upload a PNG label map.") from None
        except ValueError as err:
            raise gr.Error(f"{file_name(label_map)} is not a label map this model can use: "
                           f"{friendly(err, label_map)}") from None

    def label_editor_value(self, label_map: str | None, model: str | None = None) -> dict[str, Any] | None:
        """The uploaded map in the model's colours, as the drawing canvas's background."""
        if not label_map:
            return None
        pipe: SPADEPipeline = pick(self.ctx.models.spade, model, "spade")
        from restore.data.labels import colorize

        colours = colorize(self.label_ids(label_map, pipe), pipe.palette)
        return {"background": colours, "layers": [], "composite": colours}

    def apply_drawing(self, ids: np.ndarray | None, drawing: dict[str, Any] | None,
                      pipe: SPADEPipeline) -> np.ndarray | None:
        """Paint the editor's layers over ``ids``; with no uploaded map the canvas background is decoded."""
        if not drawing:
            return ids
        background = drawing.get("background")
        layers = [np.asarray(x) for x in (drawing.get("layers") or []) if x is not None]
        if ids is None and background is not None:
            bg = np.asarray(background)
            if bg.ndim not in (2, 3):
                raise gr.Error(f"The canvas must be an image, got an array of shape {bg.shape}: start from a label "
                               "map (upload one or pick an example) and paint over it.")
            if bg.shape[0] * bg.shape[1] > self.ctx.max_pixels:  # Gradio decoded it already: compute nothing more
                raise gr.Error(f"The canvas is {bg.shape[1]}×{bg.shape[0]}, over this demo's limit of "
                               f"{self.ctx.max_pixels / 1e6:g} MP for label maps. Start from a smaller label map "
                               "(upload one or pick an example).")
            if bg.ndim == 3 and bg.shape[2] == 4 and (bg[..., 3] < 255).any():
                raise gr.Error("The canvas has transparent areas: start from a label map (upload one or pick an "
                               "example) and paint over it.")
            rgb = (bg[..., :3] if bg.ndim == 3 else np.repeat(bg[..., None], 3, 2)).astype(np.uint8)
            code = np.array([65536, 256, 1], np.int64)
            known = np.isin(rgb.astype(np.int64) @ code, pipe.palette.astype(np.int64) @ code)
            if not known.all():
                raise gr.Error(_unknown_colours_message(rgb[~known], "The canvas"))
            ids = pipe.ids_from_colours(rgb)
        for layer in layers:
            if layer.ndim != 3 or layer.shape[2] < 3:
                continue
            if ids is None:
                raise gr.Error("Start from a label map (upload one or pick an example), then paint over it.")
            painted, mask = ids_from_painting(resize_nearest(layer, *ids.shape), pipe.palette)
            if mask.any():
                ids = ids.copy()
                ids[mask] = painted[mask]
        return ids

    def label_to_photo(self, label_map: str | None, model: str | None = None, seed: int | None = 0,
                       drawing: dict[str, Any] | None = None) -> tuple[str, str, str]:
        """A label map (file and/or drawing) -> PNG paths of (the label map in the model's colours, the photo), and
        the status."""
        from restore.data.labels import colorize

        pipe: SPADEPipeline = pick(self.ctx.models.spade, model, "spade")
        ids = self.apply_drawing(self.label_ids(label_map, pipe), drawing, pipe)
        if ids is None:
            raise gr.Error("Upload a label map or pick an example first.")
        start = time.perf_counter()
        try:
            photo = pipe(ids, seed=int(seed or 0))
        except torch.cuda.OutOfMemoryError:
            raise gr.Error("The GPU ran out of memory; try again in a moment.") from None
        seconds = time.perf_counter() - start
        present = sorted(set(np.unique(ids).tolist()))
        classes = ", ".join(pipe.class_names[i] for i in present[:8]) + (" …" if len(present) > 8 else "")
        detail = (f"Label map {ids.shape[1]}×{ids.shape[0]} with {len(present)} classes ({classes}) → photo "
                  f"{photo.shape[1]}×{photo.shape[0]} (the model's resolution), seed {int(seed or 0)}.")
        folder, stem = self.ctx.new_folder(), file_stem(label_map, "drawing")
        return (write_png(folder / f"{stem}_labels.png", colorize(ids, pipe.palette)),
                write_png(folder / f"{stem}_photo.png", to_uint8(photo)), status_line(pipe, seconds, detail))
