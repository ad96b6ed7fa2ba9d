"""Upscale decoded images and whole files / folders with an SR generator (``restore infer``).

Only the RGB colour goes through the model (tiled, see :mod:`restore.inference.tiling`):

* alpha is resized on its own with bicubic interpolation and clipped to [0, 1]. Generators are trained on RGB
  photos; a mask has no texture to hallucinate and a GAN would add halos to its hard edges;
* grey images run as three equal channels and come back as their channel mean, still marked grey;
* the bit depth of the input (8 or 16) is kept, and outputs go to PNG when the input's format cannot hold an alpha
  channel or 16 bits (JPEG and BMP hold neither; WebP holds alpha but not 16 bits).

The path functions here and in :mod:`restore.inference.translate` share the file handling: inputs that fail (cannot
be read, or whose output exists without ``overwrite``) are reported one line each and skipped, and the caller gets
them back in :attr:`Written.failed` (``restore infer`` turns them into its exit code: 5 partial, 2 none written).
GIFs are read like the other formats (their first frame, with a note when there are more) and written as PNG.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from restore.data.io import IMAGE_EXTENSIONS, Image, ImageReadError, frame_count, list_images, read_image, write_image
from restore.inference.tiling import model_device, tiled_forward

IMAGE_SUFFIXES = frozenset(IMAGE_EXTENSIONS)  # what outputs can be written as
INPUT_EXTENSIONS: tuple[str, ...] = (*IMAGE_EXTENSIONS, ".gif")
"""What a folder given to ``restore infer`` is searched for: the writable formats plus GIF (first frame, as PNG)."""
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


class Written(list):
    """The output paths a path function wrote, in input order (a ``list[Path]``, so callers that expect one keep
    working), and ``failed``: ``(input, reason)`` for every input that was skipped, each already reported on stderr.
    """

    def __init__(self, paths: Sequence[Path] = (), failed: Sequence[tuple[Path, str]] = ()):
        super().__init__(paths)
        self.failed: list[tuple[Path, str]] = list(failed)


class _Outcome:
    """What a path function has written and which inputs failed; a failure is reported on its own line at once."""

    def __init__(self, total: int):
        self.total = total
        self.written: list[Path] = []
        self.failed: list[tuple[Path, str]] = []

    def fail(self, src: Path, reason: str) -> None:
        tqdm.write(f"skipping {src}: {reason}", file=sys.stderr)
        self.failed.append((src, reason))

    def result(self) -> Written:
        if self.failed:
            names = ", ".join(str(p) for p, _ in self.failed)
            print(f"skipped {len(self.failed)} of {self.total} file(s): {names}", file=sys.stderr)
        return Written(self.written, self.failed)


def note_frames(src: Path) -> None:
    """Say so when an input has several frames (animated GIF/PNG/WebP, multi-page TIFF): only the first is used."""
    n = frame_count(src)
    if n > 1:
        tqdm.write(f"note: {src} has {n} frames; only the first frame is used", file=sys.stderr)


def existing_output(dest: Path, overwrite: bool) -> str | None:
    """Why ``dest`` must not be written (it exists and ``overwrite`` is off, or it is a folder), else None."""
    if dest.is_dir():
        return f"output {dest} is a folder; choose another -o"
    if dest.exists() and not overwrite:
        return f"output {dest} exists; pass --overwrite to replace it, or choose another -o"
    return None


def refuse_existing_file(dest: Path, overwrite: bool) -> None:
    """Single-file mode: an existing output is refused up front (ValueError), before the model runs."""
    reason = existing_output(dest, overwrite)
    if reason is not None:
        raise ValueError(reason)


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


def _check_suffix(suffix: str) -> None:
    if any(sep in suffix for sep in {"/", "\\", os.sep}) or (suffix and not suffix.strip(".")):
        raise ValueError(f"--suffix {suffix!r}: a suffix is added to output file names (a_x4.png for --suffix _x4); "
                         "it cannot hold a path separator or be only dots")


def _plan(inputs: Sequence[Path], output: Path, suffix: str) -> tuple[list[tuple[Path, Path]], bool]:
    """Pair every input file with its output path; returns ``(jobs, output_is_file)``.

    A single file goes to ``output`` itself when that has an image suffix and is not a folder; otherwise outputs
    go into the folder ``output`` as ``<stem><suffix><ext>``, folders mirrored by their files' relative paths
    (a folder is searched for :data:`INPUT_EXTENSIONS`).
    """
    if not inputs:
        raise ValueError("no input images or folders given")
    _check_suffix(suffix)
    if output.suffix.lower() == ".gif" and not output.is_dir():
        raise ValueError(f"output {output}: restore infer does not write GIF (a GIF input gives its first frame); "
                         f"name a PNG output, e.g. -o {output.with_suffix('.png')}")
    files: list[tuple[Path, Path]] = []  # (source, path relative to the output folder)
    for p in inputs:
        p = Path(p)
        if p.is_dir():  # list_images raises FileNotFoundError naming an empty folder
            files += [(f, f.relative_to(p)) for f in list_images(p, extensions=INPUT_EXTENSIONS)]
        elif p.is_file():
            files.append((p, Path(p.name)))
        else:
            raise FileNotFoundError(f"input {p} does not exist")
    to_file = (len(inputs) == 1 and Path(inputs[0]).is_file() and not output.is_dir()
               and output.suffix.lower() in IMAGE_SUFFIXES)
    if not to_file and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        raise ValueError(f"output {output} names one image file, but the inputs hold {len(files)} image(s) or a "
                         f"folder; pass a folder as the output")
    if to_file and suffix:
        raise ValueError(f"--suffix {suffix!r} names outputs written into a folder, but -o {output} names the output "
                         "file itself; drop --suffix or pass a folder as -o")
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
                             f"write them into different output folders")
        seen[key] = src
        other = sources.find(dest)
        if other is not None:
            raise ValueError(f"refusing to overwrite input file {other} (output of {src}); choose another output "
                             f"folder with -o, or add a suffix to the output names with --suffix (e.g. --suffix _out)")


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
    overwrite: bool = False,
) -> Written:
    """Upscale image files and/or folders of images; returns the paths written, in input order, with the inputs that
    failed in ``.failed`` (:class:`Written`).

    A file goes to a file (``output`` with an image suffix) or into the folder ``output``; folders are mirrored
    into ``output`` (``<stem><suffix><ext>``; ``.png`` where the input format cannot hold alpha or 16 bits, and for
    GIFs). Unreadable files, and files whose output exists (unless ``overwrite``), are reported on stderr by name and
    skipped, with a count at the end. A single file whose output exists (without ``overwrite``) and any output that
    would replace an input are refused (ValueError naming the file, raised before any work).
    """
    _check_outscale(outscale)
    dev = torch.device(device) if device is not None else model_device(model)
    _check_half(half, dev)
    output = Path(output)
    jobs, to_file = _plan([Path(p) for p in inputs], output, suffix)
    if to_file:
        refuse_existing_file(output, overwrite)
    sources = _Sources([src for src, _ in jobs])
    outcome = _Outcome(len(jobs))
    bar = tqdm(jobs, desc="upscale", unit="img", disable=not progress, file=sys.stderr)
    for src, dest in bar:
        bar.set_postfix_str(src.name, refresh=False)
        try:
            image = read_image(src)
        except (ImageReadError, FileNotFoundError) as err:
            outcome.fail(src, getattr(err, "reason", None) or str(err))
            continue
        if not to_file:  # the output format follows what the input holds, known once it is read
            dest = dest.with_suffix(output_suffix(dest.suffix, image.alpha is not None, image.bit_depth))
            _check_targets([(src, dest)], sources)
            if dest in outcome.written:
                raise ValueError(f"two inputs would both be written to {dest}; upscale them into different folders")
            refusal = existing_output(dest, overwrite)
            if refusal is not None:
                outcome.fail(src, refusal)
                continue
        note_frames(src)
        result = upscale_image(model, image, scale, outscale=outscale, tile=tile, overlap=overlap, device=dev,
                               half=half)
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_image(dest, result.rgb, alpha=result.alpha, bit_depth=result.bit_depth, grey=result.grey)
        outcome.written.append(dest)
    bar.close()
    return outcome.result()
