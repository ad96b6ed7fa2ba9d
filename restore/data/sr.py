"""Super-resolution datasets: HR folders (LR made on the fly), paired LR/HR folders, and benchmark folders.

Every item holds float32 tensors in [0, 1], RGB, (3, H, W); grey sources become three equal channels and an alpha
channel, if any, is dropped. The LR image is made with MATLAB's bicubic ``imresize`` (antialiased), the degradation
that SR benchmarks and most SR papers use, then clipped to [0, 1].

Training sets are deterministic: every random choice for item ``i`` comes from
``np.random.default_rng([seed, epoch, i])``, with the epoch set by ``set_epoch`` (the engine's sampler does this),
so an item does not depend on worker count, loading order or what was loaded before, and a resumed run sees exactly
the crops an uninterrupted one would have seen. ``sr_hr_folder`` can make its LR with Real-ESRGAN's degradations
instead (``degradation: {type: realesrgan}``, restore.data.degradations), drawn from the same generator.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from restore.data.cache import DecodedCache, read_integers, to_unit
from restore.data.degradations import (
    DegradationOptions,
    as_options,
    degrade_batch,
    draw_item,
    item_tensors,
    size_problem,
    usm_sharpen,
)
from restore.data.device_ops import augment_batch, downscale_batch, integers_to_unit
from restore.data.io import ImageReadError, list_images, read_image, to_tensor
from restore.data.transforms import paired_random_crop, random_augment, random_crop
from restore.registry import DATASETS, OptionValueError


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB-compatible bicubic resize (antialiased when downscaling), via basicsr's port of ``imresize``.

    img: (H, W, C) or (H, W) float in [0, 1]; returns float32 of size (ceil(H * scale), ceil(W * scale)[, C]).
    The output is NOT clipped: bicubic overshoots slightly past [0, 1] at edges, so callers clip when they need
    valid pixel values (the datasets here do). Computed in float32.
    """
    arr = np.asarray(img)
    if arr.ndim not in (2, 3):
        raise ValueError(f"imresize expects an (H, W, C) or (H, W) array, got shape {arr.shape}")
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"imresize scale must be a positive number, got {scale}")
    h, w = arr.shape[:2]
    out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
    if min(h, w) < 2 or min(out_h, out_w) < 1:
        raise ValueError(f"imresize cannot resize a {w}x{h} (WxH) image by {scale}")
    from restore.compat import import_basicsr  # deferred: installs the torchvision alias basicsr needs

    with warnings.catch_warnings():  # importing basicsr imports scipy.ndimage.filters (deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        resize = import_basicsr("utils.matlab_functions").imresize
    out = resize(np.ascontiguousarray(arr, dtype=np.float32), scale, antialiasing=True)
    return np.asarray(out, dtype=np.float32)


def downscale(gt: np.ndarray, scale: int) -> np.ndarray:
    """The LR image of a mod-cropped HR (sH, sW, C) in [0, 1]: bicubic ``1/scale`` clipped to [0, 1] -> (H, W, C)."""
    h, w = gt.shape[:2]
    lq = np.clip(imresize(gt, 1.0 / scale), 0.0, 1.0)
    if lq.shape[:2] != (h // scale, w // scale):  # ceil(h * (1/s)) can round up past h/s for s = 3, 6, 7, ...
        lq = lq[: h // scale, : w // scale]
    return lq


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop (H, W, ...) down to (H - H % scale, W - W % scale), keeping the top-left corner (benchmark protocol)."""
    if scale < 1:
        raise ValueError(f"mod_crop scale must be >= 1, got {scale}")
    h, w = img.shape[:2]
    if h < scale or w < scale:
        raise ValueError(f"mod_crop: a {w}x{h} (WxH) image is smaller than the scale {scale}")
    return img[: h - h % scale, : w - w % scale]


def _check_scale(scale: int) -> None:
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise OptionValueError("scale", f"must be an integer >= 1, got {scale!r}")


def _check_seed(seed: int) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise OptionValueError("seed", f"must be an integer >= 0, got {seed!r}")


def _check_gt_size(gt_size: int, scale: int) -> None:
    if not isinstance(gt_size, int) or isinstance(gt_size, bool) or gt_size < 1:
        raise OptionValueError("gt_size", f"must be a positive integer, got {gt_size!r}")
    if gt_size % scale != 0:
        raise OptionValueError("gt_size", f"must be a multiple of scale {scale}, got {gt_size}")


def _list_folder(key: str, folder: str) -> list[Path]:
    try:
        return list_images(folder)
    except FileNotFoundError as err:
        raise OptionValueError(key, f"names no usable image folder: {err}") from None


class _EpochSeeded(Dataset):
    """Shared contract: randomness per item from ``default_rng([seed, epoch, index])``."""

    seed: int
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops/flips ``__getitem__`` returns (called by the engine's sampler)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def _check_index(self, index: int) -> int:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        return index % n


@DATASETS.register("sr_hr_folder")
class HRFolderDataset(_EpochSeeded):
    """HR photos in one or more folders (not searched recursively); each item is a random ``gt_size`` crop,
    randomly flipped/rotated, with its LR made by MATLAB bicubic downscaling.

    Item: ``{"lq": (3, gt_size/scale, gt_size/scale), "gt": (3, gt_size, gt_size), "path": str}``, float32 in
    [0, 1]. With ``skip_bad`` an unreadable file is reported once per process (``warnings.warn``; each DataLoader
    worker is a process) and the next readable file (by index, wrapping around) is used instead, deterministically.

    Speed: each image is decoded once per process and kept as uint8/uint16 in a cache of ``cache_mb`` megabytes
    (0: off; restore.data.cache says what happens past the bound). With ``device_ops`` (the default) training
    workers only cut the integer crop; the flips, rotation and MATLAB downscale run batched on the training device
    (restore.data.device_ops), equal to this item to ~2e-7. ``device_ops: false`` computes the whole item in the
    worker with basicsr's numpy ``imresize``, as ``dataset[i]`` always does.

    ``degradation``: ``{type: realesrgan, ...}`` makes the LR with Real-ESRGAN's second-order degradations
    (restore.data.degradations; docs/real_world_sr.md) instead of the bicubic downscale. The worker draws the
    item's kernels and parameters from the item's generator (after its crop and flips), the device applies them;
    with ``usm_gt`` the item also holds ``"gt_usm"``, the sharpened GT that the LR is made from.
    """

    def __init__(self, roots: list[str], scale: int = 4, gt_size: int = 128, flip: bool = True, rotate: bool = True,
                 skip_bad: bool = False, seed: int = 0, cache_mb: float = 2048, device_ops: bool = True,
                 degradation: DegradationOptions | None = None):
        if isinstance(roots, str):
            roots = [roots]
        if not roots:
            raise OptionValueError("roots", "must list at least one image folder, got []")
        _check_scale(scale)
        _check_gt_size(gt_size, scale)
        _check_seed(seed)
        self.paths: list[Path] = []
        for root in roots:
            self.paths += _list_folder("roots", root)
        self.roots = list(roots)
        self.scale, self.gt_size = scale, gt_size
        self.flip, self.rotate, self.skip_bad = flip, rotate, skip_bad
        self.seed, self.epoch = seed, 0
        self.device_ops = bool(device_ops)
        try:
            self.degradation = as_options(degradation)
        except OptionValueError as err:  # a plain mapping from Python: name the key inside the block
            raise OptionValueError(f"degradation.{err.key}", err.reason) from None
        problem = size_problem(self.degradation, gt_size, scale)
        if problem:
            raise OptionValueError("gt_size", f"{gt_size} {problem}")
        self._cache = DecodedCache(cache_mb, what=f"sr_hr_folder {', '.join(self.roots)}")
        self._bad: set[int] = set()  # indices known to be unreadable (skip_bad only)

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, index: int) -> tuple[Path, np.ndarray]:
        """The first readable image at or after ``index`` (just ``index`` unless skip_bad)."""
        n = len(self.paths)
        for k in range(n):
            i = (index + k) % n
            if i in self._bad:
                continue
            path = self.paths[i]
            try:
                return path, self._cache.get(i, lambda p=path: read_integers(p))
            except ImageReadError as err:
                if not self.skip_bad:
                    raise ImageReadError(path, f"{err.reason}; remove the file, or set skip_bad: true in this data "
                                               "set's options to train on the other images") from None
                self._bad.add(i)
                warnings.warn(f"skip_bad: skipping unreadable training image ({err}); the next image is used "
                              "in its place", RuntimeWarning, stacklevel=3)
        raise ValueError(f"every one of the {n} images in {', '.join(self.roots)} is unreadable "
                           "(skip_bad is on, and each was reported in a warning)")

    def _crop(self, index: int) -> tuple[Path, np.ndarray, np.random.Generator]:
        """The item's integer crop and its generator, positioned for the augmentation draws."""
        index = self._check_index(index)
        path, hr = self._read(index)
        h, w = hr.shape[:2]
        if h < self.gt_size or w < self.gt_size:
            raise ValueError(f"{path}: image is {w}x{h} (WxH), smaller than gt_size {self.gt_size}x{self.gt_size}; "
                             "remove it or lower gt_size")
        rng = self._rng(index)
        return path, random_crop(hr, self.gt_size, rng, name=str(path)), rng

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The finished item, computed in this process with basicsr's numpy ``imresize`` (the reference path)."""
        path, crop, rng = self._crop(index)
        (gt,) = random_augment([to_unit(crop)], rng, flip=self.flip, rotate=self.rotate)
        if self.realistic:
            batch = self._degrade(to_tensor(gt)[None], {k: v[None] for k, v in self._draw(rng).items()})
            return {**{k: v[0] for k, v in batch.items()}, "path": str(path)}
        lq = downscale(gt, self.scale)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "path": str(path)}

    @property
    def realistic(self) -> bool:
        """Whether the LR comes from the realesrgan degradation (else the bicubic downscale)."""
        return self.degradation.type == "realesrgan"

    def _draw(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """The item's degradation draws, as tensors (drawn after its crop and flips, from the same generator)."""
        return item_tensors(draw_item(self.degradation, rng), self.degradation.pad_to)

    def _degrade(self, gt: torch.Tensor, draws: dict[str, Any]) -> dict[str, torch.Tensor]:
        """{"lq", "gt"[, "gt_usm"]} of a (B, 3, S, S) GT batch and its collated draws, on the batch's device."""
        out = {"gt": gt}
        src = gt
        if self.degradation.usm_gt:  # Real-ESRGAN degrades the sharpened GT, and its L1/perceptual losses target it
            src = out["gt_usm"] = usm_sharpen(gt)
        lq = degrade_batch(src, self.scale, draws["deg_kernels"], draws["deg_values"], draws["deg_seed"])
        return {"lq": lq, **out}

    # Staged items (``device_ops``): the engine loads ``load_staged`` in its workers and calls ``finish_batch`` on
    # the training device; ``finish_batch(collate([load_staged(i)]))`` equals ``self[i]`` (gt bit for bit, lq to
    # ~2e-7, see restore.data.device_ops).
    @property
    def staged(self) -> bool:
        return self.device_ops

    def load_staged(self, index: int) -> dict[str, Any]:
        """Worker side: the unaugmented integer crop (C, S, S), its flips/rotation flags and its sample maximum."""
        path, crop, rng = self._crop(index)
        h, v, r = rng.random(3) < 0.5  # the draws random_augment makes
        flags = [self.flip and bool(h), self.rotate and bool(v), self.rotate and bool(r)]
        raw = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))
        if crop.dtype == np.uint16:  # torch has few uint16 kernels; int32 holds it exactly (and stacks with uint8)
            raw = raw.to(torch.int32)
        top = 255.0 if crop.dtype == np.uint8 else 65535.0
        item = {"gt_raw": raw, "gt_max": torch.tensor(top), "aug": torch.tensor(flags), "path": str(path)}
        return {**item, **self._draw(rng)} if self.realistic else item

    def finish_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Device side: a collated batch of :meth:`load_staged` items -> ``{"lq", "gt", "path"}`` on its device (plus
        ``"gt_usm"`` with the realesrgan degradation's ``usm_gt``)."""
        gt = augment_batch(integers_to_unit(batch["gt_raw"], batch["gt_max"]), batch["aug"])
        if self.realistic:
            return {**self._degrade(gt, batch), "path": batch["path"]}
        return {"lq": downscale_batch(gt, self.scale), "gt": gt, "path": batch["path"]}


def _pair_by_stem(lq_paths: list[Path], gt_paths: list[Path], scale: int, lq_root: str,
                  gt_root: str) -> list[tuple[Path, Path]]:
    """Match LR and HR files by stem; an LR stem may carry a ``x4`` / ``_x4`` suffix (DIV2K naming)."""

    def by_stem(paths: list[Path], key: str) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for p in paths:
            if p.stem in out:
                raise OptionValueError(key, f"has two images with the stem '{p.stem}': {out[p.stem].name} and "
                                            f"{p.name}")
            out[p.stem] = p
        return out

    gts = by_stem(gt_paths, "gt_root")
    suffix = re.compile(rf"[_-]?x{scale}$", re.IGNORECASE)
    lqs: dict[str, Path] = {}
    for stem, p in by_stem(lq_paths, "lq_root").items():
        key = stem if stem in gts else suffix.sub("", stem)
        if key in lqs:
            raise OptionValueError("lq_root", f"has two images for '{key}': {lqs[key].name} and {p.name}")
        lqs[key] = p

    def listing(stems: list[str]) -> str:
        more = f", ... ({len(stems) - 5} more)" if len(stems) > 5 else ""
        return ", ".join(stems[:5]) + more

    missing_lq = sorted(set(gts) - set(lqs))
    if missing_lq:
        raise OptionValueError("lq_root", f"{lq_root} has no LR image for {len(missing_lq)} of the HR images in "
                                          f"{gt_root}: {listing(missing_lq)}")
    extra_lq = sorted(set(lqs) - set(gts))
    if extra_lq:
        names = [lqs[s].name for s in extra_lq]
        raise OptionValueError("gt_root", f"{gt_root} has no HR image for {len(extra_lq)} of the LR images in "
                                          f"{lq_root}: {listing(names)}")
    return [(lqs[s], gts[s]) for s in sorted(gts)]


@DATASETS.register("sr_paired_folder")
class PairedFolderDataset(_EpochSeeded):
    """Ready-made LR/HR pairs matched by file stem (an LR stem may end in ``x{scale}``); the HR must be exactly
    ``scale`` times the LR. Items are aligned random crops (``gt_size``) with flips/rotations, or whole images when
    ``gt_size`` is None.

    Item: ``{"lq": (3, h, w), "gt": (3, scale*h, scale*w), "path": str (the HR file)}``, float32 in [0, 1].
    """

    def __init__(self, lq_root: str, gt_root: str, scale: int = 4, gt_size: int | None = 128, flip: bool = True,
                 rotate: bool = True, seed: int = 0):
        _check_scale(scale)
        if gt_size is not None:
            _check_gt_size(gt_size, scale)
        _check_seed(seed)
        self.pairs = _pair_by_stem(_list_folder("lq_root", lq_root), _list_folder("gt_root", gt_root), scale,
                                   lq_root, gt_root)
        self.scale, self.gt_size, self.flip, self.rotate = scale, gt_size, flip, rotate
        self.seed, self.epoch = seed, 0

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        lq_path, gt_path = self.pairs[index]
        lq, gt = read_image(lq_path).rgb, read_image(gt_path).rgb
        name = f"{gt_path} (LR {lq_path})"
        lh, lw = lq.shape[:2]
        gh, gw = gt.shape[:2]
        if (gh, gw) != (lh * self.scale, lw * self.scale):
            raise ValueError(f"{name}: HR is {gw}x{gh} (WxH) but LR is {lw}x{lh}; with scale {self.scale} the HR "
                             f"must be {lw * self.scale}x{lh * self.scale}")
        if self.gt_size is not None:
            rng = self._rng(index)
            gt, lq = paired_random_crop(gt, lq, self.gt_size, self.scale, rng, name=name)
            gt, lq = random_augment([gt, lq], rng, flip=self.flip, rotate=self.rotate)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "path": str(gt_path)}


@DATASETS.register("sr_benchmark")
class BenchmarkDataset(Dataset):
    """A benchmark folder of HR images (Set5, Set14, BSD100, ...), read lazily, one whole image per item.

    ``gt = mod_crop(HR, scale)``, ``lq = clip(imresize(gt, 1/scale), 0, 1)`` (not quantised to 8 bits).
    Item: ``{"lq": (3, H/s, W/s), "gt": (3, H, W), "name": file stem}``, float32 in [0, 1].
    """

    def __init__(self, root: str, scale: int = 4):
        _check_scale(scale)
        self.root = root
        self.scale = scale
        self.paths = _list_folder("root", root)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.paths)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        path = self.paths[index]
        gt = mod_crop(read_image(path).rgb, self.scale)
        lq = downscale(gt, self.scale)
        return {"lq": to_tensor(lq), "gt": to_tensor(gt), "name": path.stem}
