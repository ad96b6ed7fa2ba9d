"""Upscale decoded images and whole files / folders with an SR generator (``restore infer``).

Only the RGB colour goes through the model (tiled, see :mod:`restore.inference.tiling`):

* alpha is resized on its own with bicubic interpolation and clipped to [0, 1]. Generators are trained on RGB
  photos; a mask has no texture to hallucinate and a GAN would add halos to its hard edges;
* grey images run as three equal channels and come back as their channel mean, still marked grey;
* the bit depth of the input (8 or 16) is kept, and outputs go to PNG when the input's format cannot hold an alpha
  channel or 16 bits (JPEG and BMP hold neither; WebP holds alpha but not 16 bits).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from restore.data.io import IMAGE_EXTENSIONS, Image, ImageReadError, list_images, read_image, write_image
from restore.inference.tiling import model_device, tiled_forward

IMAGE_SUFFIXES = frozenset(IMAGE_EXTENSIONS)
# what restore.data.io.write_image can store, by extension
ALPHA_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".webp"})
DEEP_SUFFIXES = frozenset({".png", ".tif", ".tiff"})  # formats that hold 16 bits per channel


def _resize(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (H, W) or (H, W, C) float32 to (height, width): area-averaging to shrink, bicubic to enlarge."""
    if a.shape[:2] == (height, width):
        return a
    shrink = height * width < a.shape[0] * a.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    out = cv2.resize(np.ascontiguousarray(a), (width, height), interpolation=interp)
    if a.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing channel axis of size 1
        out = out[:, :, None]
    return np.clip(out, 0.0, 1.0, out=out)


def output_size(height: int, width: int, scale: int, outscale: float | None) -> tuple[int, int]:
    """Final (height, width) for an (height, width) input: ``round(outscale * side)``, at least 1 pixel."""
    factor = scale if outscale is None else outscale
    return max(1, round(factor * height)), max(1, round(factor * width))


def _check_outscale(outscale: float | None) -> None:
    if outscale is not None and (isinstance(outscale, bool) or not math.isfinite(outscale) or outscale <= 0):
        raise ValueError(f"outscale must be a positive number (or None for the model's scale), got {outscale!r}")


def _check_half(half: bool, device: torch.device) -> None:
    if half and device.type != "cuda":
        raise ValueError(f"half=True (fp16) needs a CUDA device, but the model runs on '{device}'; "
                         f"drop --half or use --device cuda")


def upscale_image(
    model: Callable[[Tensor], Tensor],
    image: Image,
    scale: int,
    outscale: float | None = None,
    tile: int | None = 256,
    overlap: int = 16,
    device: torch.device | str | None = None,
    half: bool = False,
) -> Image:
    """Upscale one decoded image; returns a new Image of size ``output_size(H, W, scale, outscale)``.

    ``image.rgb``: (H, W, 3) float32 in [0, 1]. The model maps (1, 3, h, w) -> (1, 3, scale*h, scale*w) and runs on
    ``device`` (default: the model's own) in LR tiles of ``tile`` with ``overlap`` pixels of context. ``outscale``
    resizes the model's output (area to shrink, bicubic to enlarge). ``half`` runs the model in fp16 (CUDA only).
    The result's rgb (and alpha) are clipped to [0, 1]; ``bit_depth`` and ``grey`` are those of the input.
    """
    _check_outscale(outscale)
    dev = torch.device(device) if device is not None else model_device(model)
    _check_half(half, dev)
    rgb = image.rgb
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image {image.path or '(in memory)'}: rgb must be (H, W, 3), got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)
    y = tiled_forward(model, x, scale, tile=tile, overlap=overlap, device=dev,
                      dtype=torch.float16 if half else None)
    if y.shape[1] != 3:
        raise ValueError(f"the model returned {y.shape[1]} channels; restore infer expects 3 (RGB)")
    out = np.ascontiguousarray(y[0].permute(1, 2, 0).numpy())  # a view: tiled_forward returns channels-last
    np.clip(out, 0.0, 1.0, out=out)
    th, tw = output_size(h, w, scale, outscale)
    out = _resize(out, th, tw)
    if image.grey:
        out = np.repeat(out.mean(axis=2, keepdims=True, dtype=np.float32), 3, axis=2)
    alpha = None
    if image.alpha is not None:
        alpha = _resize(np.asarray(image.alpha, dtype=np.float32), th, tw)
    return Image(rgb=out, alpha=alpha, bit_depth=image.bit_depth, grey=image.grey)


def output_suffix(src_suffix: str, has_alpha: bool, bit_depth: int) -> str:
    """The input's suffix when its format can hold the result (alpha, 16 bits), else ``.png``."""
    suffix = src_suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        return ".png"
    if (has_alpha and suffix not in ALPHA_SUFFIXES) or (bit_depth > 8 and suffix not in DEEP_SUFFIXES):
        return ".png"
    return src_suffix


class _Sources:
    """The input files, matched by resolved path and by inode (hard links, case-insensitive file systems)."""

    def __init__(self, files: Sequence[Path]):
        self.by_path = {f.resolve(): f for f in files}
        self.by_inode: dict[tuple[int, int], Path] = {}
        for f in files:
            st = f.stat()
            self.by_inode[(st.st_dev, st.st_ino)] = f

    def find(self, dest: Path) -> Path | None:
        """The input file that ``dest`` is, if any."""
        hit = self.by_path.get(dest.resolve())
        if hit is None and dest.exists():
            st = dest.stat()
            hit = self.by_inode.get((st.st_dev, st.st_ino))
        return hit


def _plan(inputs: Sequence[Path], output: Path, suffix: str) -> tuple[list[tuple[Path, Path]], bool]:
    """Pair every input file with its output path; returns ``(jobs, output_is_file)``.

    A single file goes to ``output`` itself when that has an image suffix and is not a folder; otherwise outputs
    go into the folder ``output`` as ``<stem><suffix><ext>``, folders mirrored by their files' relative paths.
    """
    if not inputs:
        raise ValueError("no input images or folders given")
    files: list[tuple[Path, Path]] = []  # (source, path relative to the output folder)
    for p in inputs:
        p = Path(p)
        if p.is_dir():  # list_images raises FileNotFoundError naming an empty folder
            files += [(f, f.relative_to(p)) for f in list_images(p)]
        elif p.is_file():
            files.append((p, Path(p.name)))
        else:
            raise FileNotFoundError(f"input {p} does not exist")
    to_file = (len(inputs) == 1 and Path(inputs[0]).is_file() and not output.is_dir()
               and output.suffix.lower() in IMAGE_SUFFIXES)
    if not to_file and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        raise ValueError(f"output {output} names one image file, but the inputs hold {len(files)} image(s) or a "
                         f"folder; pass a folder as the output")
    if to_file:
        jobs = [(files[0][0], output)]
    else:
        jobs = [(src, output / rel.parent / f"{rel.stem}{suffix}{rel.suffix}") for src, rel in files]
    _check_targets(jobs, _Sources([src for src, _ in files]))
    return jobs, to_file


def _check_targets(jobs: list[tuple[Path, Path]], sources: _Sources) -> None:
    """Refuse to overwrite an input file or to write two inputs to the same output path."""
    seen: dict[Path, Path] = {}
    for src, dest in jobs:
        key = dest.resolve()
        if key in seen:
            raise ValueError(f"inputs {seen[key]} and {src} would both be written to {dest}; "
                             f"upscale them into different output folders")
        seen[key] = src
        other = sources.find(dest)
        if other is not None:
            raise ValueError(f"refusing to overwrite input file {other} (output of {src}); "
                             f"choose another output folder or pass a suffix")


def upscale_paths(
    model: Callable[[Tensor], Tensor],
    inputs: Sequence[Path],
    output: Path,
    scale: int,
    outscale: float | None = None,
    tile: int | None = 256,
    overlap: int = 16,
    device: torch.device | str | None = None,
    half: bool = False,
    suffix: str = "",
    progress: bool = True,
) -> list[Path]:
    """Upscale image files and/or folders of images; returns the paths written, in input order.

    A file goes to a file (``output`` with an image suffix) or into the folder ``output``; folders are mirrored
    into ``output`` (``<stem><suffix><ext>``; ``.png`` where the input format cannot hold alpha or 16 bits).
    Unreadable files are reported on stderr by name and skipped, with a count at the end. Input files are never
    overwritten (ValueError naming the file, raised before any work).
    """
    _check_outscale(outscale)
    dev = torch.device(device) if device is not None else model_device(model)
    _check_half(half, dev)
    output = Path(output)
    jobs, to_file = _plan([Path(p) for p in inputs], output, suffix)
    sources = _Sources([src for src, _ in jobs])
    written: list[Path] = []
    skipped: list[Path] = []
    bar = tqdm(jobs, desc="upscale", unit="img", disable=not progress, file=sys.stderr)
    for src, dest in bar:
        bar.set_postfix_str(src.name, refresh=False)
        try:
            image = read_image(src)
        except ImageReadError as err:
            tqdm.write(f"skipping {src}: {getattr(err, 'reason', err)}", file=sys.stderr)
            skipped.append(src)
            continue
        result = upscale_image(model, image, scale, outscale=outscale, tile=tile, overlap=overlap, device=dev,
                               half=half)
        if not to_file:
            dest = dest.with_suffix(output_suffix(dest.suffix, result.alpha is not None, result.bit_depth))
            _check_targets([(src, dest)], sources)
            if dest in written:
                raise ValueError(f"two inputs would both be written to {dest}; upscale them into different folders")
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_image(dest, result.rgb, alpha=result.alpha, bit_depth=result.bit_depth, grey=result.grey)
        written.append(dest)
    bar.close()
    if skipped:
        names = ", ".join(str(p) for p in skipped)
        print(f"skipped {len(skipped)} of {len(jobs)} file(s) that could not be read: {names}", file=sys.stderr)
    return written
