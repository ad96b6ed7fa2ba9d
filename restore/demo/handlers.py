"""What the Gradio demo (``app.py``) does, as plain functions of file paths and values.

``app.py`` only lays out the page; loading the published models, size limits, reading uploads and every message
shown to a visitor live here, so that they are unit-tested without a server. A handler that cannot do what was
asked raises ``gr.Error`` with a sentence meant for the person at the page: Gradio shows it in the browser,
gradio_client raises it as an error, and the server goes on serving.
"""

from __future__ import annotations

import html
import logging
import math
import os
import shutil
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np
import torch

from restore.data.io import Image, ImageReadError, read_image, write_image
from restore.data.labels import stored_values
from restore.devices import choose_device
from restore.hub.pipelines import (
    Pipeline,
    SPADEPipeline,
    SRPipeline,
    StarGANPipeline,
    load_pipeline,
    published,
)
from restore.inference.translate import resize_nearest
from restore.inference.upscale import _resize

log = logging.getLogger("restore.app")

NO_MODEL = "No published model for this task yet."
MAX_OUTPUT_PIXELS = 64_000_000
"""SR outputs above this are refused: a 64 MP float image alone is 0.75 GB and takes minutes on a CPU."""
PREVIEW_PIXELS = 2048 * 2048
"""The before/after view is shrunk to this; the downloadable PNG keeps the full resolution."""
FORMATS = "PNG, JPEG, TIFF or WebP"
TASK_TITLES = {"sr": "super-resolution", "spade": "label → photo", "stargan": "attribute transfer"}
KEEP = "keep"
FACE_LICENSE_NOTE = ("No example face is bundled: the UTKFace and CelebA licences do not allow us to redistribute "
                     "their photos. Upload a photo of your own (a centred, roughly square face works best).")


# ------------------------------------------------------------------------------------------------- loading
@dataclass
class Models:
    """The published pipelines by task, keyed by the name shown in the model dropdowns."""

    device: torch.device
    half: bool
    sr: dict[str, SRPipeline] = field(default_factory=dict)
    spade: dict[str, SPADEPipeline] = field(default_factory=dict)
    stargan: dict[str, StarGANPipeline] = field(default_factory=dict)
    classifiers: dict[str, str] = field(default_factory=dict)
    """StarGAN model name -> the name of the attribute classifier attached to it."""
    problems: list[str] = field(default_factory=list)
    """Weights that have a card but could not be loaded (shown on the page rather than stopping the app)."""

    def of(self, task: str) -> dict[str, Any]:
        return {"sr": self.sr, "spade": self.spade, "stargan": self.stargan}[task]

    def summary(self) -> str:
        """One markdown paragraph: where models run and what was loaded."""
        counts = ", ".join(f"{TASK_TITLES[t]}: {len(self.of(t))}" for t in TASK_TITLES)
        text = f"Models run on **{device_label(self.device, self.half)}**. Loaded models ({counts})."
        if self.problems:
            text += "\n\n" + "\n".join(f"- could not load {p}" for p in self.problems)
        return text


def device_label(device: torch.device, half: bool) -> str:
    """'cpu' or 'cuda:0 (NVIDIA H100 80GB HBM3), fp16': what a visitor needs to read timings."""
    text = str(device)
    if device.type == "cuda" and torch.cuda.is_available():
        text += f" ({torch.cuda.get_device_name(device)})"
    return text + (", fp16" if half else "")


def _unique(name: str, path: Path, taken: dict[str, Any]) -> str:
    return name if name not in taken else f"{name} ({path.stem})"


def load_models(weights: str | Path = "weights", device: str = "auto", half: bool | None = None) -> Models:
    """Load every published pipeline once (fp16 on CUDA unless ``half`` is False; fp32 on the CPU).

    A weights file that fails to load is logged and listed in ``problems``; the others still serve. Published
    attribute classifiers are attached to the StarGAN models with the same attribute list, so that attributes a
    visitor leaves on "keep" take the photo's own values."""
    from restore.engine.weights import load_generator

    dev = choose_device(device)
    use_half = dev.type == "cuda" if half is None else bool(half and dev.type == "cuda")
    models = Models(device=dev, half=use_half)
    found = published(weights)
    for task in TASK_TITLES:
        table = models.of(task)
        for path in found.get(task, []):
            try:
                pipe = load_pipeline(path, dev, half=use_half)
            except Exception as err:  # a broken file must not take the other models down
                log.warning("could not load %s: %s", path, err)
                models.problems.append(f"{path.name}: {str(err).replace(str(path), path.name)}")
                continue
            table[_unique(pipe.name, path, table)] = pipe
    for path in found.get("attributes", []):
        try:
            classifier, desc = load_generator(path, dev)
        except Exception as err:
            log.warning("could not load the attribute classifier %s: %s", path, err)
            models.problems.append(f"{path.name}: {str(err).replace(str(path), path.name)}")
            continue
        for name, pipe in models.stargan.items():
            if pipe.classifier is None and list(desc.get("attribute_names", [])) == pipe.attribute_names:
                pipe.classifier = classifier
                models.classifiers[name] = path.stem
    return models


# ------------------------------------------------------------------------------------------------- helpers
def _file_name(path: str | os.PathLike) -> str:
    return Path(path).name or str(path)


def _friendly(err: BaseException, path: str | os.PathLike | None = None) -> str:
    """An error's message with the server's temporary upload path replaced by the visitor's file name."""
    text = str(err.reason if isinstance(err, ImageReadError) else err)
    if path is not None:
        text = text.replace(str(path), _file_name(path))
    return text


def image_size(path: str | os.PathLike, what: str = "image") -> tuple[int, int]:
    """(height, width) from the file header, before decoding anything: limits are checked first."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as pil:
            w, h = pil.size
    except FileNotFoundError:
        raise gr.Error(f"The uploaded {what} is no longer on the server; please upload it again.") from None
    except Exception:
        raise gr.Error(f"Could not read {_file_name(path)} as an image: it is not an image file, or it is damaged. "
                       f"Upload a {FORMATS} file.") from None
    return h, w


def _read_upload(path: str | None, what: str) -> Image:
    if not path:
        raise gr.Error(f"Upload {what} first.")
    try:
        return read_image(path)
    except FileNotFoundError:
        raise gr.Error(f"The uploaded {what} is no longer on the server; please upload it again.") from None
    except ImageReadError as err:
        raise gr.Error(f"Could not read {_file_name(path)} as an image ({_friendly(err, path)}). "
                       f"Upload a {FORMATS} file.") from None


def _refuse_large(path: str, what: str, max_pixels: int, why: str) -> tuple[int, int]:
    h, w = image_size(path, what)
    if h * w > max_pixels:
        raise gr.Error(f"{_file_name(path)} is {w}×{h} = {h * w / 1e6:.1f} MP, over this demo's limit of "
                       f"{max_pixels / 1e6:g} MP for {what}s ({why}). Resize it and try again.")
    return h, w


def _pick(table: dict[str, Pipeline], name: str | None, task: str) -> Any:
    if not table:
        raise gr.Error(f"{NO_MODEL} ({TASK_TITLES[task]}: no model card for this task in the weights folder)")
    if not name:
        return next(iter(table.values()))
    if name not in table:
        raise gr.Error(f"Unknown {TASK_TITLES[task]} model {name!r}; available: {', '.join(table)}.")
    return table[name]


def to_uint8(rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """float [0, 1] (H, W, 3) (+ alpha) -> uint8 RGB or RGBA for display."""
    arr = rgb if alpha is None else np.concatenate([rgb, alpha[:, :, None]], axis=2)
    return np.round(np.clip(arr, 0, 1) * 255).astype(np.uint8)


def write_png(path: Path, u8: np.ndarray) -> str:
    """A quick PNG (zlib level 1: 4x faster than Pillow's default) of an 8-bit grey, RGB or RGBA image for the
    page to show; the download of the full result goes through restore's own writer."""
    arr = np.asarray(u8)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise gr.Error("The server could not write the result image (disk full?).")
    return str(path)


def _stem(path: str | os.PathLike | None, default: str) -> str:
    return (Path(path).stem if path else "") or default


def _preview_size(h: int, w: int, limit: int = PREVIEW_PIXELS) -> tuple[int, int]:
    if h * w <= limit:
        return h, w
    f = math.sqrt(limit / (h * w))
    return max(1, int(h * f)), max(1, int(w * f))


def _status(pipe: Pipeline, seconds: float, detail: str) -> str:
    return (f"**{pipe.name}** ({pipe.desc['arch']}) ran on **{device_label(pipe.device, pipe.half)}** in "
            f"**{seconds:.2f} s**. {detail}")


def _grey_like(rgb: np.ndarray, img: Image) -> np.ndarray:
    """Grey inputs give grey outputs (the networks see three equal channels and may tint them)."""
    return np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2) if img.grey else rgb


# ------------------------------------------------------------------------------------------------- SPADE helpers
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


# ------------------------------------------------------------------------------------------------- StarGAN helpers
@dataclass(frozen=True)
class AttributeControl:
    """One radio of the attribute tab: an exclusive group (choose one member or keep) or a single attribute."""

    label: str
    choices: tuple[tuple[str, str], ...]  # (shown, value)
    value: str
    names: tuple[str, ...]
    group: bool


def _group_label(names: list[str]) -> str:
    parts = [n.split("_") for n in names]
    if all(len(p) > 1 for p in parts):
        if len({p[0] for p in parts}) == 1:
            return parts[0][0]
        if len({p[-1] for p in parts}) == 1:
            return parts[0][-1]
    return ""


def attribute_controls(pipe: StarGANPipeline) -> list[AttributeControl]:
    """The radios for a StarGAN model. Without an attribute classifier the model cannot know which attributes the
    photo already has, so "keep" is not offered and every attribute gets a value."""
    names = pipe.attribute_names
    keep = pipe.classifier is not None
    controls = []
    grouped: set[int] = set()
    for g in pipe.groups:
        members = [names[i] for i in g]
        grouped.update(g)
        choices = ([(KEEP, KEEP)] if keep else []) + [(m, m) for m in members]
        label = _group_label(members)
        controls.append(AttributeControl(f"{label} (one of)" if label else "One of", tuple(choices),
                                         KEEP if keep else members[0], tuple(members), True))
    for i, name in enumerate(names):
        if i in grouped:
            continue
        choices = ([(KEEP, KEEP)] if keep else []) + [("no (0)", "0"), ("yes (1)", "1")]
        controls.append(AttributeControl(name, tuple(choices), KEEP if keep else "0", (name,), False))
    return controls


def targets_from_choices(controls: list[AttributeControl], choices: list[str | None]) -> dict[str, int]:
    """The radios' values -> {attribute: 0/1} as the change_attributes endpoint takes it (keep = left out)."""
    out: dict[str, int] = {}
    for control, value in zip(controls, choices, strict=True):
        if value in (None, "", KEEP):
            continue
        if control.group:
            out[str(value)] = 1
        else:
            out[control.names[0]] = int(value)
    return out


def _parse_targets(targets: Any, pipe: StarGANPipeline) -> dict[str, int]:
    names = pipe.attribute_names
    if targets in (None, ""):
        targets = {}
    if isinstance(targets, str):  # also accept the CLI's "Male=1, Age_20-39=1"
        pairs = [t.partition("=") for t in targets.split(",") if t.strip()]
        for key, sep, _ in pairs:
            if not sep:
                raise gr.Error(f"Targets: expected NAME=0 or NAME=1, got {key.strip()!r}.")
        targets = {k.strip(): v.strip() for k, _, v in pairs}
    if not isinstance(targets, dict):
        raise gr.Error('Targets must be a mapping of attribute names to 0 or 1, e.g. {"' + names[0] + '": 1}.')
    out: dict[str, int] = {}
    for key, value in targets.items():
        if key not in names:
            raise gr.Error(f"This model has no attribute {key!r}; its attributes are {', '.join(names)}.")
        if value in (None, "", KEEP):
            continue
        if str(value).strip().lower() in ("0", "1", "0.0", "1.0", "false", "true"):
            out[key] = int(str(value).strip().lower() in ("1", "1.0", "true"))
        else:
            raise gr.Error(f"{key}: the target must be 0, 1 or {KEEP!r}, got {value!r}.")
    return out


def _undecided(settings: dict[str, int], pipe: StarGANPipeline) -> list[str]:
    names = pipe.attribute_names
    decided = {names.index(k) for k in settings}
    for g in pipe.groups:
        if any(settings.get(names[i]) == 1 for i in g):
            decided.update(g)
    return [n for i, n in enumerate(names) if i not in decided]


# ------------------------------------------------------------------------------------------------- handlers
class DemoHandlers:
    """The endpoints of the demo. Method and parameter names are the API's (gradio_client uses them)."""

    def __init__(self, models: Models, max_pixels: int = 4_000_000, max_output_pixels: int = MAX_OUTPUT_PIXELS,
                 out_dir: str | Path | None = None, keep_files_s: float = 3600.0):
        self.models = models
        self.max_pixels = int(max_pixels)
        self.max_output_pixels = int(max_output_pixels)
        if out_dir is None:  # our own scratch folder: removed when the handlers go (at the latest at exit)
            self.out_dir = Path(tempfile.mkdtemp(prefix="restore-demo-"))
            weakref.finalize(self, shutil.rmtree, self.out_dir, True)
        else:
            self.out_dir = Path(out_dir)
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.keep_files_s = keep_files_s

    # -- super-resolution
    def upscale(self, image: str | None, model: str | None = None, outscale: float | None = 4,
                tile: int | None = 256) -> tuple[tuple[str, str], str, str]:
        """An image file -> ((bicubic preview, SR preview) PNG paths, the full-resolution PNG's path, status)."""
        from restore.inference.upscale import output_size

        pipe: SRPipeline = _pick(self.models.sr, model, "sr")
        if not image:
            raise gr.Error("Upload an image first.")
        scale = int(pipe.desc["kwargs"].get("scale", 4))
        factor = float(scale if outscale in (None, "", 0) else outscale)
        if not math.isfinite(factor) or not 0 < factor <= 16:
            raise gr.Error(f"The output scale must be between 0 and 16, got {outscale!r}.")
        h, w = image_size(image)
        th, tw = output_size(h, w, scale, factor)
        if th * tw > self.max_output_pixels:
            raise gr.Error(f"The result would be {tw}×{th} = {th * tw / 1e6:.0f} MP, over this demo's limit of "
                           f"{self.max_output_pixels / 1e6:g} MP. Choose a smaller output scale or a smaller image.")
        tile_px = int(round(float(tile or 0)))
        if tile_px and tile_px < 40:
            raise gr.Error(f"The tile size must be 0 (no tiling) or at least 40 pixels, got {tile}.")
        note = ""
        if h * w > self.max_pixels and not tile_px:
            tile_px = 256
            note = f" The input is over {self.max_pixels / 1e6:g} MP, so it ran in 256-pixel tiles."
        img = _read_upload(image, "an image")
        start = time.perf_counter()
        try:
            rgb, alpha = pipe(img.rgb, outscale=None if factor == scale else factor, tile=tile_px or None,
                              alpha=img.alpha)
        except torch.cuda.OutOfMemoryError:
            raise gr.Error("The GPU ran out of memory: choose a smaller tile size.") from None
        seconds = time.perf_counter() - start
        rgb = _grey_like(rgb, img)
        (h, w), (th, tw) = img.rgb.shape[:2], rgb.shape[:2]  # EXIF may have turned the image since the header
        folder = self._folder()
        stem = _stem(image, "image")
        png = folder / f"{stem}_x{factor:g}.png"
        write_image(png, rgb, alpha=alpha, bit_depth=img.bit_depth, grey=img.grey)
        ph, pw = _preview_size(th, tw)
        before = to_uint8(_resize(img.rgb, ph, pw), None if img.alpha is None else _resize(img.alpha, ph, pw))
        after = to_uint8(_resize(rgb, ph, pw), None if alpha is None else _resize(alpha, ph, pw))
        shrunk = " The comparison is shrunk to fit; the PNG has the full resolution." if (ph, pw) != (th, tw) else ""
        depth = f", {img.bit_depth}-bit" if img.bit_depth != 8 else ""
        how = f"tiles of {tile_px} px" if tile_px and max(h, w) > tile_px else "one pass"
        detail = (f"{w}×{h} → {tw}×{th} (×{factor:g}{depth}{', grey' if img.grey else ''}"
                  f"{', with alpha' if alpha is not None else ''}), {how}.{note}{shrunk}")
        previews = (write_png(folder / f"{stem}_bicubic.png", before), write_png(folder / f"{stem}_sr.png", after))
        return previews, str(png), _status(pipe, seconds, detail)

    def _folder(self) -> Path:
        """A fresh folder for one request's files (their names are the visitor's file name plus a suffix)."""
        self._prune()
        return Path(tempfile.mkdtemp(dir=self.out_dir))

    def _prune(self) -> None:
        """Drop result files older than ``keep_files_s`` (Gradio has copied them into its own cache by then)."""
        cutoff = time.time() - self.keep_files_s
        for folder in self.out_dir.iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    for f in folder.iterdir():
                        f.unlink()
                    folder.rmdir()
            except OSError:
                pass

    # -- label map -> photo
    def label_ids(self, label_map: str | None, pipe: SPADEPipeline) -> np.ndarray | None:
        """(H, W) class ids of an uploaded label map (integer ids or the model's palette colours)."""
        from restore.inference.translate import spade_label_ids

        if not label_map:
            return None
        _refuse_large(label_map, "label map", self.max_pixels, "the model works at its own resolution anyway")
        try:
            return spade_label_ids(Path(label_map), pipe.desc)
        except FileNotFoundError:
            raise gr.Error("The uploaded label map is no longer on the server; please upload it again.") from None
        except ImageReadError as err:
            raise gr.Error(f"Could not read {_file_name(label_map)} as an image ({_friendly(err, label_map)}). "
                           f"Upload a PNG label map.") from None
        except ValueError as err:
            raise gr.Error(f"{_file_name(label_map)} is not a label map this model can use: "
                           f"{_friendly(err, label_map)}") from None

    def label_editor_value(self, label_map: str | None, model: str | None = None) -> dict[str, Any] | None:
        """The uploaded map in the model's colours, as the drawing canvas's background."""
        if not label_map:
            return None
        pipe: SPADEPipeline = _pick(self.models.spade, model, "spade")
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
            if bg.shape[0] * bg.shape[1] > self.max_pixels:
                raise gr.Error(f"The canvas is over this demo's limit of {self.max_pixels / 1e6:g} MP.")
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

        pipe: SPADEPipeline = _pick(self.models.spade, model, "spade")
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
        folder, stem = self._folder(), _stem(label_map, "drawing")
        return (write_png(folder / f"{stem}_labels.png", colorize(ids, pipe.palette)),
                write_png(folder / f"{stem}_photo.png", to_uint8(photo)), _status(pipe, seconds, detail))

    # -- attribute transfer
    def attribute_targets(self, model: str | None, *choices: str | None) -> dict[str, int]:
        """The attribute radios of ``model`` (app.py passes them in attribute_controls order) -> targets."""
        pipe: StarGANPipeline = _pick(self.models.stargan, model, "stargan")
        controls = attribute_controls(pipe)
        return targets_from_choices(controls, list(choices[:len(controls)]))

    def change_attributes(self, face: str | None, model: str | None = None,
                          targets: dict[str, Any] | str | None = None) -> tuple[str, str]:
        """A photo and {attribute: 0/1} -> (PNG path of the photo with those attributes, same size; status)."""
        pipe: StarGANPipeline = _pick(self.models.stargan, model, "stargan")
        settings = _parse_targets(targets, pipe)
        if not settings:
            raise gr.Error("Choose at least one attribute to change.")
        if pipe.classifier is None:
            missing = _undecided(settings, pipe)
            if missing:
                raise gr.Error("No attribute classifier is published for this model, so it cannot tell which "
                               f"attributes the photo already has: set every attribute (missing: "
                               f"{', '.join(missing)}).")
        if not face:
            raise gr.Error("Upload a photo of a face first.")
        _refuse_large(face, "photo", self.max_pixels, f"the model works at {pipe.desc.get('image_size')} px anyway")
        img = _read_upload(face, "a photo")
        start = time.perf_counter()
        try:
            out = pipe(img.rgb, settings)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        seconds = time.perf_counter() - start
        out = _grey_like(out, img)
        h, w = out.shape[:2]
        kept = "the others keep the photo's own values (read by the attribute classifier)" \
            if pipe.classifier is not None else "no classifier: every attribute was set"
        detail = (f"Targets {', '.join(f'{k}={v}' for k, v in settings.items())}; {kept}. {w}×{h}: the centred "
                  f"square ran at {pipe.desc.get('image_size')} px and was pasted back.")
        path = write_png(self._folder() / f"{_stem(face, 'photo')}_attributes.png", to_uint8(out, img.alpha))
        return path, _status(pipe, seconds, detail)
