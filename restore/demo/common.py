"""What every tab of the Gradio demo shares: the published models, reading uploads, writing results, limits.

A handler that cannot do what was asked raises ``gr.Error`` with a sentence meant for the person at the page:
Gradio shows it in the browser, gradio_client raises it as an error, and the server goes on serving.
"""

from __future__ import annotations

import logging
import math
import os
import re
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

from restore.data.io import Image, ImageReadError, read_image
from restore.devices import choose_device
from restore.hub.pipelines import (
    Pipeline,
    SPADEPipeline,
    SRPipeline,
    StarGANPipeline,
    load_pipeline,
    published,
    uncarded,
)

log = logging.getLogger("restore.app")

NO_MODEL = "No published model for this task yet."
MAX_OUTPUT_PIXELS = 64_000_000
"""SR images above this are refused, both the model's own ×scale output and the result resized from it: a 64 MP
float image alone is 0.75 GB and takes minutes on a CPU."""
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

    Model files without a card (community models: ESRGAN, SwinIR, ... files) load too, under their file name. A
    weights file that fails to load is logged and listed in ``problems``; the others still serve. Published
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
    for path in uncarded(weights):  # community model files (ESRGAN, SwinIR, ...) dropped in without a card
        try:
            pipe = load_pipeline(path, dev, half=use_half)
        except Exception as err:
            log.warning("could not load %s: %s", path, err)
            models.problems.append(f"{path.name}: {str(err).replace(str(path), path.name)}")
            continue
        table = models.of(pipe.task)
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
def file_name(path: str | os.PathLike) -> str:
    return Path(path).name or str(path)


def friendly(err: BaseException, path: str | os.PathLike | None = None) -> str:
    """An error's message with the server's temporary upload path replaced by the visitor's file name."""
    text = str(err.reason if isinstance(err, ImageReadError) else err)
    if path is not None:
        text = text.replace(str(path), file_name(path))
    return text


def image_size(path: str | os.PathLike, what: str = "image") -> tuple[int, int]:
    """(height, width) from the file header, before decoding anything: limits are checked first, so an upload
    that claims a huge size (a decompression bomb: a few KB that decode to GB) is refused without decoding it."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as pil:
            w, h = pil.size
    except FileNotFoundError:
        raise gr.Error(f"The uploaded {what} is no longer on the server; please upload it again.") from None
    except PILImage.DecompressionBombError as err:  # Pillow refuses to open over 2 x MAX_IMAGE_PIXELS (179 MP)
        claimed = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(claimed[1]) / 1e6:.0f} MP" if claimed else f"over {2 * PILImage.MAX_IMAGE_PIXELS / 1e6:.0f} MP"
        raise gr.Error(f"{file_name(path)} says it is {size}, far too large to decode on this server. Upload a "
                       f"smaller {what} (a few megapixels), or downscale it before uploading.") from None
    except Exception:
        raise gr.Error(f"Could not read {file_name(path)} as an image: it is not an image file, or it is damaged. "
                       f"Upload a {FORMATS} file.") from None
    return h, w


def read_upload(path: str | None, what: str) -> Image:
    if not path:
        raise gr.Error(f"Upload {what} first.")
    try:
        return read_image(path)
    except FileNotFoundError:
        raise gr.Error(f"The uploaded {what} is no longer on the server; please upload it again.") from None
    except ImageReadError as err:
        raise gr.Error(f"Could not read {file_name(path)} as an image ({friendly(err, path)}). "
                       f"Upload a {FORMATS} file.") from None


def refuse_large(path: str, what: str, max_pixels: int, why: str) -> tuple[int, int]:
    """(height, width) of an upload at most ``max_pixels`` large, checked on the header before decoding it."""
    h, w = image_size(path, what)
    if h * w > max_pixels:
        raise gr.Error(f"{file_name(path)} is {w}×{h} = {h * w / 1e6:.1f} MP, over this demo's limit of "
                       f"{max_pixels / 1e6:g} MP for {what}s ({why}). Upload a smaller {what}, or downscale it "
                       f"before uploading.")
    return h, w


def refuse_large_canvas(parts: list[Any], max_pixels: int) -> None:
    """The label editor's background, layers and composite (file paths or PNG bytes, as Gradio hands them over)
    checked on their headers before Gradio decodes them: a client could otherwise make the server decode a
    decompression bomb as the canvas."""
    import io

    for part in parts:
        if part is None:
            continue
        if isinstance(part, (bytes, bytearray)):
            from PIL import Image as PILImage

            try:
                with PILImage.open(io.BytesIO(part)) as pil:
                    w, h = pil.size
            except PILImage.DecompressionBombError:
                raise gr.Error("The canvas says it is far too large to decode on this server. Start from a smaller "
                               "label map.") from None
            except Exception:
                raise gr.Error("The canvas is not an image; start from a label map (upload one or pick an "
                               "example).") from None
            if h * w > max_pixels:
                raise gr.Error(f"The canvas is {w}×{h} = {h * w / 1e6:.1f} MP, over this demo's limit of "
                               f"{max_pixels / 1e6:g} MP. Start from a smaller label map.")
        else:
            refuse_large(str(part), "canvas", max_pixels, "the model works at its own resolution anyway")


def pick(table: dict[str, Pipeline], name: str | None, task: str) -> Any:
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


def file_stem(path: str | os.PathLike | None, default: str) -> str:
    return (Path(path).stem if path else "") or default


def preview_size(h: int, w: int, limit: int = PREVIEW_PIXELS) -> tuple[int, int]:
    if h * w <= limit:
        return h, w
    f = math.sqrt(limit / (h * w))
    return max(1, int(h * f)), max(1, int(w * f))


def status_line(pipe: Pipeline, seconds: float, detail: str) -> str:
    return (f"**{pipe.name}** ({pipe.desc['arch']}) ran on **{device_label(pipe.device, pipe.half)}** in "
            f"**{seconds:.2f} s**. {detail}")


def grey_like(rgb: np.ndarray, img: Image) -> np.ndarray:
    """Grey inputs give grey outputs (the networks see three equal channels and may tint them)."""
    return np.repeat(rgb.mean(axis=2, keepdims=True), 3, axis=2) if img.grey else rgb


# ------------------------------------------------------------------------------------------------- context
class DemoContext:
    """What every tab shares: the loaded models, the size limits and the folder of result files."""

    def __init__(self, models: Models, max_pixels: int = 4_000_000, max_output_pixels: int = MAX_OUTPUT_PIXELS,
                 out_dir: str | Path | None = None, keep_files_s: float = 3600.0):
        self.models = models
        self.max_pixels = int(max_pixels)
        self.max_output_pixels = int(max_output_pixels)
        if out_dir is None:  # our own scratch folder: removed when the context goes (at the latest at exit)
            self.out_dir = Path(tempfile.mkdtemp(prefix="restore-demo-"))
            weakref.finalize(self, shutil.rmtree, self.out_dir, True)
        else:
            self.out_dir = Path(out_dir)
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.keep_files_s = keep_files_s

    def new_folder(self) -> Path:
        """A fresh folder for one request's files (their names are the visitor's file name plus a suffix)."""
        self.prune()
        return Path(tempfile.mkdtemp(dir=self.out_dir))

    def prune(self) -> None:
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
