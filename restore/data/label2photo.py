"""Label-map -> photo datasets for SPADE: Cityscapes, COCO-Stuff, ADE20K, CMP Facades and a generic folder layout.

A label map holds one raw class value per pixel. It is read as raw integers (:func:`read_label_map`: palette
indices, 8-bit or 16-bit grey), never through :func:`restore.data.io.read_image`, which would turn palette indices
into colours. Each label set maps raw values to class ids ``0 .. num_classes - 1`` (:func:`label_map_to_ids`), with
an optional extra "dont_care" class for unlabelled pixels, and rejects anything else with an error naming the file
and the value: an out-of-range id would otherwise surface much later as an opaque CUDA scatter index error in
:func:`one_hot`.

Items are ``{"label": int64 (H, W) ids, "image": float32 (3, H, W) in [0, 1] (when photos exist),
"instance": float32 (1, H, W) instance edges (when use_instance), "path": label map path}``. Photos are resized
with area averaging when shrinking and bicubic when enlarging; label and instance maps with nearest neighbour, using
the same pixel-centre convention so that they stay aligned with the photo. Randomness (crop position, flip) comes
from ``np.random.default_rng([seed, epoch, index])`` as in :mod:`restore.data.sr`.

Importing this module registers the datasets ``cityscapes``, ``coco_stuff``, ``ade20k``, ``cmp_facades`` and
``label2photo_folder`` in :data:`restore.registry.DATASETS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from restore.data.cache import DecodedCache, read_integers, to_unit
from restore.data.io import list_images, to_tensor
from restore.data.labels import (
    ADE20K_CLASSES,
    CITYSCAPES_CLASSES,
    CMP_FACADES_CLASSES,
    COCO_STUFF_CLASSES,
    LABEL_SETS,
    LabelSet,
    check_int_option,
    colorize,
    decode_color_map,
    default_palette,
    folder_label_set,
    instance_edges,
    label_map_to_ids,
    one_hot,
    read_label_map,
    read_palette,
    write_palette,
)
from restore.data.sr import _EpochSeeded
from restore.registry import DATASETS, OptionValueError, did_you_mean

Preprocess = Literal["resize_and_crop", "fixed", "none"]
PREPROCESS_MODES: tuple[str, ...] = ("resize_and_crop", "fixed", "none")
def _resize_nearest(a: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of an integer (H, W) map by index arithmetic (any dtype, 16-bit and int64 safe),
    sampling at pixel centres like cv2's area/cubic resizes so that labels stay aligned with the photo."""
    h, w = a.shape[:2]
    if (h, w) == (height, width):
        return a
    rows = np.minimum(((np.arange(height) + 0.5) * (h / height)).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * (w / width)).astype(np.int64), w - 1)
    return a[rows[:, None], cols[None, :]]


def _resize_photo(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float32 -> (height, width, 3): INTER_AREA when shrinking, INTER_CUBIC when enlarging, clipped."""
    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img
    shrink = width <= w and height <= h
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------ checks
def _check_bool(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise OptionValueError(key, f"must be true or false, got {value!r}")


# ------------------------------------------------------------------------------------------------ pairing
@dataclass(frozen=True)
class _Sample:
    label: Path
    image: Path | None
    instance: Path | None


def _list(key: str, folder: Path, what: str, recursive: bool = False) -> list[Path]:
    try:
        return list_images(folder, recursive=recursive)
    except FileNotFoundError as err:
        raise OptionValueError(key, f"names no usable {what} folder: {err}") from None


def _by_key(paths: list[Path], suffix: str, key: str, what: str) -> dict[str, Path]:
    """Index files by stem with ``suffix`` (e.g. ``_gtFine_labelIds``) removed; two files for one key are an
    error (``x.png`` and ``x.jpg``)."""
    out: dict[str, Path] = {}
    for p in paths:
        stem = p.stem[: -len(suffix)] if suffix and p.stem.endswith(suffix) else p.stem
        if stem in out:
            raise OptionValueError(key, f"has two {what} files for '{stem}': {out[stem]} and {p}")
        out[stem] = p
    return out


def _unmatched(key: str, files: list[Path], what: str, partner: str, where: Path | str) -> OptionValueError:
    shown = ", ".join(str(f) for f in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    return OptionValueError(key, f"has {len(files)} {what} file(s) without a matching {partner} in {where}: {shown}")


def _pair(labels: dict[str, Path], label_dir: Path | str, images: dict[str, Path] | None, image_dir: Path | str,
          instances: dict[str, Path] | None, inst_dir: Path | str, use_instance: bool,
          keys: tuple[str, str, str] = ("labels", "images", "instances")) -> list[_Sample]:
    """Match label maps with photos (both ways) and, when used, instance maps (both ways) by key."""
    lab_key, img_key, inst_key = keys
    if images is not None:
        orphans = sorted(images[k] for k in set(images) - set(labels))
        if orphans:
            raise _unmatched(img_key, orphans, "photo", "label map", label_dir)
        orphans = sorted(labels[k] for k in set(labels) - set(images))
        if orphans:
            raise _unmatched(lab_key, orphans, "label map", "photo", image_dir)
    if use_instance and instances is not None:
        orphans = sorted(labels[k] for k in set(labels) - set(instances))
        if orphans:
            raise _unmatched(lab_key, orphans, "label map", "instance map", inst_dir)
        orphans = sorted(instances[k] for k in set(instances) - set(labels))
        if orphans:
            raise _unmatched(inst_key, orphans, "instance map", "label map", label_dir)
    return [_Sample(label=labels[k], image=None if images is None else images[k],
                    instance=instances[k] if (use_instance and instances is not None) else None)
            for k in sorted(labels)]


def _split_folders(root: Path, suffix: str) -> list[str]:
    """Split names ``x`` with a ``x<suffix>`` folder in ``root`` (for "available splits" hints)."""
    if not root.is_dir():
        return []
    return sorted(d.name[: len(d.name) - len(suffix)] for d in root.iterdir()
                  if d.is_dir() and d.name.endswith(suffix) and d.name != suffix)


# ------------------------------------------------------------------------------------------------ datasets
def _decode_sample(sample: _Sample) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(raw label map, photo as its integer samples or None, raw instance map or None): what the cache keeps."""
    photo = None if sample.image is None else read_integers(sample.image)
    inst = None if sample.instance is None else read_label_map(sample.instance)
    return read_label_map(sample.label), photo, inst


class Label2PhotoDataset(_EpochSeeded):
    """Shared loading, preprocessing and item layout of the label -> photo datasets (see the module docstring).

    Subclasses collect ``samples`` and call :meth:`_setup`. Attributes: ``num_classes`` (one-hot channels),
    ``class_names``, ``palette`` ((num_classes, 3) uint8), ``has_photos``, ``use_instance``, ``label_set`` (name),
    ``label_channels`` (num_classes + use_instance: the generator's and critic's label input), ``spec`` (the
    :class:`LabelSet` used to map raw values), ``dont_care_id`` (id of the don't-care class or None).

    Every subclass takes ``cache_mb`` (default 1024; 0: off): each process decodes a sample's files once and keeps
    them as integers (restore.data.cache), so items are bit-identical with and without it."""

    samples: list[_Sample]
    spec: LabelSet

    def _check_options(self, preprocess: str, load_size: int, crop_size: int, aspect_ratio: float, flip: bool,
                       random: bool, use_instance: bool, seed: int) -> None:
        """Validate the common options before any folder is scanned (cheap errors first)."""
        if preprocess not in PREPROCESS_MODES:
            raise OptionValueError("preprocess", f"must be one of {', '.join(PREPROCESS_MODES)}, got {preprocess!r}"
                                                 f"{did_you_mean(str(preprocess), PREPROCESS_MODES)}")
        check_int_option("load_size", load_size, 1)
        check_int_option("crop_size", crop_size, 1)
        if preprocess == "resize_and_crop" and crop_size > load_size:
            raise OptionValueError("crop_size", f"must be <= load_size ({load_size}) for resize_and_crop, "
                                                f"got {crop_size}")
        if (isinstance(aspect_ratio, bool) or not isinstance(aspect_ratio, (int, float))
                or not math.isfinite(aspect_ratio) or aspect_ratio <= 0):
            raise OptionValueError("aspect_ratio", f"must be a positive number (width / height), got {aspect_ratio!r}")
        if preprocess == "fixed" and round(crop_size / aspect_ratio) < 1:
            raise OptionValueError("aspect_ratio", f"{aspect_ratio} makes the {crop_size}-wide image 0 pixels high")
        for key, value in (("flip", flip), ("random", random), ("use_instance", use_instance)):
            _check_bool(key, value)
        check_int_option("seed", seed, 0)

    def _setup(self, spec: LabelSet, samples: list[_Sample], has_instances: bool, preprocess: str, load_size: int,
               crop_size: int, aspect_ratio: float, flip: bool, random: bool, use_instance: bool, seed: int,
               where: str) -> None:
        if use_instance and not has_instances:
            raise OptionValueError("use_instance", f"is true but {where} has no instance maps; set use_instance: "
                                                   "false")
        if not samples:
            raise OptionValueError("root", f"{where} holds no label maps")
        self.spec = spec
        self.samples = samples
        self.label_set = spec.name
        self.num_classes = spec.num_classes
        self.class_names = list(spec.class_names)
        self.palette = spec.palette.copy()
        self.dont_care_id = spec.dont_care_id
        self.has_photos = samples[0].image is not None
        self.use_instance = use_instance
        self.label_channels = self.num_classes + int(use_instance)
        self.preprocess, self.load_size, self.crop_size = preprocess, int(load_size), int(crop_size)
        self.aspect_ratio = float(aspect_ratio)
        self.flip, self.random = flip, random
        self.seed, self.epoch = int(seed), 0

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.label_set}: {len(self)} items, {self.num_classes} classes, "
                f"photos={self.has_photos}, use_instance={self.use_instance})")

    def _target_size(self, w: int, h: int) -> tuple[int, int]:
        """(width, height) after resizing, before cropping."""
        if self.preprocess == "resize_and_crop":
            return self.load_size, self.load_size
        if self.preprocess == "fixed":
            return self.crop_size, round(self.crop_size / self.aspect_ratio)
        return w, h

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        sample = self.samples[index]
        raw, photo, inst = self._cache.get(index, lambda: _decode_sample(sample))
        ids = self.spec.to_ids(raw, str(sample.label))
        h, w = ids.shape
        if photo is not None:
            photo = to_unit(photo)
            if photo.shape[:2] != (h, w):
                raise ValueError(f"{sample.image}: photo is {photo.shape[1]}x{photo.shape[0]} (WxH) but its label map "
                                 f"{sample.label} is {w}x{h}")
        if inst is not None:
            if inst.shape != (h, w):
                raise ValueError(f"{sample.instance}: instance map is {inst.shape[1]}x{inst.shape[0]} (WxH) but its "
                                 f"label map {sample.label} is {w}x{h}")

        rng = self._rng(index)
        do_flip = bool(rng.random() < 0.5) and self.flip and self.random  # drawn first, whatever the flags
        tw, th = self._target_size(w, h)
        ids = _resize_nearest(ids, tw, th)
        inst = None if inst is None else _resize_nearest(inst, tw, th)
        photo = None if photo is None else _resize_photo(photo, tw, th)
        if self.preprocess == "resize_and_crop":
            c = self.crop_size
            if self.random:
                top, left = int(rng.integers(0, th - c + 1)), int(rng.integers(0, tw - c + 1))
            else:
                top, left = (th - c) // 2, (tw - c) // 2
            ids = ids[top:top + c, left:left + c]
            inst = None if inst is None else inst[top:top + c, left:left + c]
            photo = None if photo is None else photo[top:top + c, left:left + c]
        if do_flip:
            ids = ids[:, ::-1]
            inst = None if inst is None else inst[:, ::-1]
            photo = None if photo is None else photo[:, ::-1]

        item: dict[str, Any] = {"label": torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))}
        if photo is not None:
            item["image"] = to_tensor(photo)
        if inst is not None:
            item["instance"] = torch.from_numpy(instance_edges(inst)[None])
        item["path"] = str(sample.label)
        return item


@DATASETS.register("cityscapes")
class CityscapesDataset(Label2PhotoDataset):
    """Cityscapes fine annotations, 35 classes (ids = raw labelIds 0..34), with instance maps.

    ``root`` holds either the official layout (``leftImg8bit/<split>/<city>/*_leftImg8bit.png``,
    ``gtFine/<split>/<city>/*_gtFine_labelIds.png`` and ``*_gtFine_instanceIds.png``) or pix2pixHD's
    (``<split>_img/``, ``<split>_label/``, ``<split>_inst/``); files are matched by their shared prefix
    (``aachen_000000_000019``). Without photos for the split (the test split) the set is label-only.
    Typical SPADE setting: ``preprocess: fixed, crop_size: 512, aspect_ratio: 2`` (512x256)."""

    def __init__(self, root: str, split: str = "train", preprocess: Preprocess = "resize_and_crop",
                 load_size: int = 286, crop_size: int = 256, aspect_ratio: float = 1.0, flip: bool = True,
                 random: bool = True, use_instance: bool = False, seed: int = 0, cache_mb: float = 1024):
        self._check_options(preprocess, load_size, crop_size, aspect_ratio, flip, random, use_instance, seed)
        base = Path(root)
        if (base / "gtFine" / split).is_dir():
            label_dir = inst_dir = base / "gtFine" / split
            image_dir = base / "leftImg8bit" / split
            label_paths = sorted(label_dir.rglob("*_gtFine_labelIds.png"))
            inst_paths = sorted(label_dir.rglob("*_gtFine_instanceIds.png"))
            image_paths = sorted(image_dir.rglob("*_leftImg8bit.png")) if image_dir.is_dir() else None
            if not label_paths:
                raise OptionValueError("root", f"{label_dir} holds no *_gtFine_labelIds.png files")
        elif (base / f"{split}_label").is_dir():
            label_dir, inst_dir, image_dir = base / f"{split}_label", base / f"{split}_inst", base / f"{split}_img"
            label_paths = _list("root", label_dir, "label map")
            inst_paths = _list("root", inst_dir, "instance map") if inst_dir.is_dir() else []
            image_paths = _list("root", image_dir, "photo") if image_dir.is_dir() else None
        else:
            splits = sorted(set(_split_folders(base / "gtFine", "")) | set(_split_folders(base, "_label")))
            found = f"; splits found: {', '.join(splits)}" if splits else ""
            raise OptionValueError("root", f"{root} has no Cityscapes split '{split}' (looked for {base}/gtFine/{split}"
                                           f"/<city>/ and {base}/{split}_label/){found}")
        labels = _by_key(label_paths, "_gtFine_labelIds", "root", "label map")
        images = None if image_paths is None else _by_key(image_paths, "_leftImg8bit", "root", "photo")
        instances = _by_key(inst_paths, "_gtFine_instanceIds", "root", "instance map") if inst_paths else None
        samples = _pair(labels, label_dir, images, image_dir, instances, inst_dir, use_instance,
                        keys=("root", "root", "root"))
        self.root, self.split = root, split
        self._cache = DecodedCache(cache_mb, what=f"{type(self).__name__} label maps and photos")
        self._setup(LABEL_SETS["cityscapes"], samples, instances is not None, preprocess, load_size, crop_size,
                    aspect_ratio, flip, random, use_instance, seed, f"Cityscapes {split} split in {root}")


@DATASETS.register("coco_stuff")
class CocoStuffDataset(Label2PhotoDataset):
    """COCO-Stuff in SPADE's layout (``<split>_img/*.jpg``, ``<split>_label/*.png``, ``<split>_inst/*.png``),
    matched by stem: raw 0..181 are classes 0..181, raw 255 (unlabelled) is class 182 "dont_care"; 183 classes."""

    def __init__(self, root: str, split: str = "train", preprocess: Preprocess = "resize_and_crop",
                 load_size: int = 286, crop_size: int = 256, aspect_ratio: float = 1.0, flip: bool = True,
                 random: bool = True, use_instance: bool = False, seed: int = 0, cache_mb: float = 1024):
        self._check_options(preprocess, load_size, crop_size, aspect_ratio, flip, random, use_instance, seed)
        base = Path(root)
        label_dir, inst_dir, image_dir = base / f"{split}_label", base / f"{split}_inst", base / f"{split}_img"
        if not label_dir.is_dir():
            splits = _split_folders(base, "_label")
            found = f"; splits found: {', '.join(splits)}" if splits else ""
            raise OptionValueError("root", f"{root} has no COCO-Stuff split '{split}' (looked for {label_dir}){found}")
        labels = _by_key(_list("root", label_dir, "label map"), "", "root", "label map")
        images = _by_key(_list("root", image_dir, "photo"), "", "root", "photo") if image_dir.is_dir() else None
        instances = (_by_key(_list("root", inst_dir, "instance map"), "", "root", "instance map")
                     if inst_dir.is_dir() else None)
        samples = _pair(labels, label_dir, images, image_dir, instances, inst_dir, use_instance,
                        keys=("root", "root", "root"))
        self.root, self.split = root, split
        self._cache = DecodedCache(cache_mb, what=f"{type(self).__name__} label maps and photos")
        self._setup(LABEL_SETS["coco_stuff"], samples, instances is not None, preprocess, load_size, crop_size,
                    aspect_ratio, flip, random, use_instance, seed, f"COCO-Stuff {split} split in {root}")


@DATASETS.register("ade20k")
class ADE20KDataset(Label2PhotoDataset):
    """ADE20K (SceneParsing ``ADEChallengeData2016``: ``images/<split>/*.jpg``, ``annotations/<split>/*.png``),
    matched by stem: raw 1..150 are classes 0..149, raw 0 ("other", not annotated) is class 150 "dont_care";
    151 classes, no instance maps."""

    def __init__(self, root: str, split: str = "training", preprocess: Preprocess = "resize_and_crop",
                 load_size: int = 286, crop_size: int = 256, aspect_ratio: float = 1.0, flip: bool = True,
                 random: bool = True, use_instance: bool = False, seed: int = 0, cache_mb: float = 1024):
        self._check_options(preprocess, load_size, crop_size, aspect_ratio, flip, random, use_instance, seed)
        if use_instance:
            raise OptionValueError("use_instance", "is true but ADE20K has no instance maps; set use_instance: false")
        base = Path(root)
        label_dir, image_dir = base / "annotations" / split, base / "images" / split
        if not label_dir.is_dir():
            splits = sorted(d.name for d in (base / "annotations").iterdir() if d.is_dir()) \
                if (base / "annotations").is_dir() else []
            found = f"; splits found: {', '.join(splits)}" if splits else ""
            raise OptionValueError("root", f"{root} has no ADE20K split '{split}' (looked for {label_dir}){found}")
        labels = _by_key(_list("root", label_dir, "label map"), "", "root", "label map")
        images = _by_key(_list("root", image_dir, "photo"), "", "root", "photo") if image_dir.is_dir() else None
        samples = _pair(labels, label_dir, images, image_dir, None, "", use_instance, keys=("root", "root", "root"))
        self.root, self.split = root, split
        self._cache = DecodedCache(cache_mb, what=f"{type(self).__name__} label maps and photos")
        self._setup(LABEL_SETS["ade20k"], samples, False, preprocess, load_size, crop_size, aspect_ratio, flip,
                    random, use_instance, seed, f"ADE20K {split} split in {root}")


def _read_facade_names(path: Path) -> tuple[str, ...]:
    """CMP's ``label_names.txt``: lines ``<value> <name> <zorder>`` for values 1..12 -> 12 names by class id."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read CMP Facades class names {path}: {err}") from None
    names: dict[int, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) < 2 or not fields[0].lstrip("-").isdigit():
            raise ValueError(f"{path}:{lineno}: expected '<value> <name> <zorder>', got {line.strip()!r}")
        value = int(fields[0])
        if not 1 <= value <= len(CMP_FACADES_CLASSES):
            raise ValueError(f"{path}:{lineno}: label value must be in 1..{len(CMP_FACADES_CLASSES)}, got {value}")
        if value in names:
            raise ValueError(f"{path}:{lineno}: label value {value} is listed twice")
        words = fields[1:-1] if len(fields) > 2 and fields[-1].lstrip("-").isdigit() else fields[1:]
        names[value] = " ".join(words)
    missing = [v for v in range(1, len(CMP_FACADES_CLASSES) + 1) if v not in names]
    if missing:
        raise ValueError(f"{path}: no name for label value(s) {', '.join(map(str, missing))}")
    return tuple(names[v] for v in range(1, len(CMP_FACADES_CLASSES) + 1))


@DATASETS.register("cmp_facades")
class CMPFacadesDataset(Label2PhotoDataset):
    """CMP Facades: ``cmp_bNNNN.jpg`` photos and ``cmp_bNNNN.png`` palette label maps side by side in ``root``;
    raw 1..12 are classes 0..11 (12 classes, no instance maps). Class names come from ``label_names.txt`` in
    ``root`` or its parent when present. The set has no official split: ``split_seed`` draws a permutation, the
    first ``test_count`` items are "test" and the rest "train" (disjoint, the same on every machine)."""

    def __init__(self, root: str, split: Literal["all", "train", "test"] = "train", test_count: int = 28,
                 split_seed: int = 0, preprocess: Preprocess = "resize_and_crop", load_size: int = 286,
                 crop_size: int = 256, aspect_ratio: float = 1.0, flip: bool = True, random: bool = True,
                 use_instance: bool = False, seed: int = 0, cache_mb: float = 1024):
        self._check_options(preprocess, load_size, crop_size, aspect_ratio, flip, random, use_instance, seed)
        if use_instance:
            raise OptionValueError("use_instance", "is true but CMP Facades has no instance maps; set use_instance: "
                                                   "false")
        if split not in ("all", "train", "test"):
            raise OptionValueError("split", f"must be one of all, train, test, got {split!r}"
                                            f"{did_you_mean(str(split), ['all', 'train', 'test'])}")
        check_int_option("test_count", test_count, 0)
        check_int_option("split_seed", split_seed, 0)
        base = Path(root)
        files = _list("root", base, "CMP Facades")
        photos = _by_key([p for p in files if p.suffix.lower() in (".jpg", ".jpeg")], "", "root", "photo")
        labels = _by_key([p for p in files if p.suffix.lower() == ".png"], "", "root", "label map")
        if not labels:
            raise OptionValueError("root", f"{root} holds no .png label maps (expected cmp_bNNNN.png beside "
                                           "cmp_bNNNN.jpg)")
        samples = _pair(labels, base, photos, base, None, "", False, keys=("root", "root", "root"))
        n = len(samples)
        if split != "all":
            if test_count > n or (split == "train" and test_count == n) or (split == "test" and test_count == 0):
                raise OptionValueError("test_count", f"{test_count} leaves the {split} split of {n} facades empty")
            order = np.random.default_rng(split_seed).permutation(n)
            chosen = order[:test_count] if split == "test" else order[test_count:]
            samples = [samples[i] for i in sorted(chosen.tolist())]
        spec = LABEL_SETS["cmp_facades"]
        names_file = next((d / "label_names.txt" for d in (base, base.parent) if (d / "label_names.txt").is_file()),
                          None)
        if names_file is not None:
            spec = LabelSet(name=spec.name, num_labels=spec.num_labels, first_value=spec.first_value,
                            class_names=_read_facade_names(names_file), palette=spec.palette)
        self.root, self.split, self.test_count, self.split_seed = root, split, test_count, split_seed
        self._cache = DecodedCache(cache_mb, what=f"{type(self).__name__} label maps and photos")
        self._setup(spec, samples, False, preprocess, load_size, crop_size, aspect_ratio, flip, random,
                    use_instance, seed, f"CMP Facades in {root}")


@DATASETS.register("label2photo_folder")
class Label2PhotoFolderDataset(Label2PhotoDataset):
    """Generic layout: label maps in ``labels``, photos in ``images`` and instance maps in ``instances``, matched by
    file stem; ids are the raw values, which must lie in [0, num_labels).

    ``dont_care``: the raw value of unlabelled pixels; it becomes the extra class ``num_labels`` (so num_classes =
    num_labels + 1). Black/white masks: with ``num_labels: 2`` a map whose values are a subset of {0, 255} has 255
    read as class 1 (unless dont_care is 0 or 255). ``images: null`` makes a label-only set (inference; items have
    no "image"). ``class_names`` / ``palette`` (a :func:`read_palette` file, whose names are used when class_names
    is not given) list num_labels or num_classes entries; the don't-care class defaults to "dont_care", black."""

    def __init__(self, labels: str, num_labels: int, images: str | None = None, instances: str | None = None,
                 dont_care: int | None = None, class_names: list[str] | None = None, palette: str | None = None,
                 preprocess: Preprocess = "resize_and_crop", load_size: int = 286, crop_size: int = 256,
                 aspect_ratio: float = 1.0, flip: bool = True, random: bool = True, use_instance: bool = False,
                 seed: int = 0, cache_mb: float = 1024):
        self._check_options(preprocess, load_size, crop_size, aspect_ratio, flip, random, use_instance, seed)
        check_int_option("num_labels", num_labels, 1)
        if dont_care is not None:
            check_int_option("dont_care", dont_care, 0)
        spec = folder_label_set(int(num_labels), None if dont_care is None else int(dont_care))
        n_cls = spec.num_classes
        names, colours = list(spec.class_names), spec.palette.copy()
        if palette is not None:
            try:
                colours_read, names_read = read_palette(palette)
            except (OSError, ValueError) as err:
                raise OptionValueError("palette", f"is not a usable palette file: {err}") from None
            if len(colours_read) not in (num_labels, n_cls):
                raise OptionValueError("palette", f"{palette} lists {len(colours_read)} classes; expected "
                                                  f"num_labels ({num_labels}) or num_classes ({n_cls})")
            colours[: len(colours_read)] = colours_read
            names[: len(names_read)] = names_read
        if class_names is not None:
            if isinstance(class_names, str) or len(class_names) not in (num_labels, n_cls):
                raise OptionValueError("class_names", f"must list num_labels ({num_labels}) or num_classes ({n_cls}) "
                                                      f"names, got {class_names!r}")
            names[: len(class_names)] = [str(c) for c in class_names]
        spec = LabelSet(name=spec.name, num_labels=spec.num_labels, first_value=0, dont_care=spec.dont_care,
                        class_names=tuple(names), palette=colours, binary_masks=spec.binary_masks)
        label_dir = Path(labels)
        label_map = _by_key(_list("labels", label_dir, "label map"), "", "labels", "label map")
        image_map = None if images is None else _by_key(_list("images", Path(images), "photo"), "", "images",
                                                        "photo")
        inst_map = None if instances is None else _by_key(_list("instances", Path(instances), "instance map"), "",
                                                          "instances", "instance map")
        samples = _pair(label_map, label_dir, image_map, images or "", inst_map, instances or "", use_instance)
        self.labels_dir, self.images_dir, self.instances_dir = labels, images, instances
        where = f"label2photo_folder (labels {labels}" + (f", instances {instances})" if instances else ")")
        self._cache = DecodedCache(cache_mb, what=f"{type(self).__name__} label maps and photos")
        self._setup(spec, samples, inst_map is not None, preprocess, load_size, crop_size, aspect_ratio, flip,
                    random, use_instance, seed, where)


__all__ = [
    "ADE20KDataset",
    "ADE20K_CLASSES",
    "CITYSCAPES_CLASSES",
    "CMP_FACADES_CLASSES",
    "COCO_STUFF_CLASSES",
    "CMPFacadesDataset",
    "CityscapesDataset",
    "CocoStuffDataset",
    "LABEL_SETS",
    "Label2PhotoDataset",
    "Label2PhotoFolderDataset",
    "LabelSet",
    "colorize",
    "decode_color_map",
    "default_palette",
    "instance_edges",
    "label_map_to_ids",
    "one_hot",
    "read_label_map",
    "read_palette",
    "write_palette",
]
