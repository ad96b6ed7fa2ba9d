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
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from restore.data.cache import DecodedCache, read_integers, to_unit
from restore.data.io import ImageReadError, list_images, to_tensor
from restore.data.sr import _EpochSeeded
from restore.registry import DATASETS, OptionValueError, did_you_mean

Preprocess = Literal["resize_and_crop", "fixed", "none"]
PREPROCESS_MODES: tuple[str, ...] = ("resize_and_crop", "fixed", "none")
DONT_CARE_NAME = "dont_care"
"""Name of the extra class that unlabelled ("don't care") pixels map to."""

_MAX_LISTED = 5  # offending values / colours / files listed in an error message

# ------------------------------------------------------------------------------------------------ class names
CITYSCAPES_CLASSES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("unlabeled", (0, 0, 0)),
    ("ego vehicle", (0, 0, 0)),
    ("rectification border", (0, 0, 0)),
    ("out of roi", (0, 0, 0)),
    ("static", (0, 0, 0)),
    ("dynamic", (111, 74, 0)),
    ("ground", (81, 0, 81)),
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("parking", (250, 170, 160)),
    ("rail track", (230, 150, 140)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("guard rail", (180, 165, 180)),
    ("bridge", (150, 100, 100)),
    ("tunnel", (150, 120, 90)),
    ("pole", (153, 153, 153)),
    ("polegroup", (153, 153, 153)),
    ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("caravan", (0, 0, 90)),
    ("trailer", (0, 0, 110)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
    ("license plate", (0, 0, 142)),
)
"""The 35 Cityscapes labels (id = position = raw labelIds value) with their official colours."""

COCO_STUFF_CLASSES: tuple[str, ...] = (
    # 91 "thing" ids (11 of them unused in COCO annotations, kept so that ids match the files)
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep",
    "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe", "eye glasses", "handbag",
    "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "plate", "wine glass", "cup", "fork", "knife", "spoon",
    "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake",
    "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk", "toilet", "door", "tv",
    "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator",
    "blender", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush", "hair brush",
    # 91 "stuff" ids
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet",
    "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain", "desk-stuff",
    "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood",
    "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house",
    "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper",
    "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing", "railroad", "river",
    "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow",
    "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent", "textile-other", "towel", "tree",
    "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood",
    "water-other", "waterdrops", "window-blind", "window-other", "wood",
)
"""The 182 COCO-Stuff classes in SPADE's label files (raw value v = COCO-Stuff id v + 1)."""

ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
"""The 150 ADE20K (SceneParsing) classes; raw value v in 1..150 is class v - 1."""

CMP_FACADES_CLASSES: tuple[str, ...] = (
    "background", "facade", "window", "door", "cornice", "sill", "balcony", "blind", "deco", "molding", "pillar",
    "shop",
)
"""The 12 CMP Facades classes; raw value v in 1..12 is class v - 1."""


# ------------------------------------------------------------------------------------------------ palettes
def default_palette(n: int) -> np.ndarray:
    """``n`` distinct colours, (n, 3) uint8, the same for every call: for class i the bits of i + 1 are dealt
    round-robin to R, G, B, most significant output bits first, so neighbouring ids get very different colours.
    Black is never used (it is left for the don't-care class); distinct for n < 2**24."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"default_palette: n must be an integer >= 0, got {n!r}")
    if n >= 2**24:
        raise ValueError(f"default_palette: at most {2**24 - 1} distinct colours, got n = {n}")
    code = np.arange(1, n + 1, dtype=np.int64)
    out = np.zeros((n, 3), np.int64)
    for bit in range(24):
        channel, level = bit % 3, 7 - bit // 3
        out[:, channel] |= ((code >> bit) & 1) << level
    return out.astype(np.uint8)


def _check_palette(palette: Any, what: str) -> np.ndarray:
    arr = np.asarray(palette)
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
        raise ValueError(f"{what}: palette must have shape (num_classes, 3), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"{what}: palette must hold integers in 0..255, got dtype {arr.dtype} "
                         f"with values {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8)


def read_palette(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """Read a palette file: one line ``<id> <R> <G> <B> [name ...]`` per class, ids 0..n-1 each exactly once (in any
    order), ``#`` starts a comment. Returns ((n, 3) uint8 colours, n names; a missing name becomes ``class_<id>``).
    Errors name ``file:line``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"palette file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read palette file {p}: {err}") from None
    entries: dict[int, tuple[tuple[int, int, int], str, int]] = {}
    for lineno, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{p}:{lineno}"
        fields = line.split()
        if len(fields) < 4:
            raise ValueError(f"{where}: expected '<id> <R> <G> <B> <name>', got {raw_line.strip()!r}")
        try:
            cid, r, g, b = (int(v) for v in fields[:4])
        except ValueError:
            raise ValueError(f"{where}: id and R G B must be integers, got {' '.join(fields[:4])!r}") from None
        if cid < 0:
            raise ValueError(f"{where}: class id must be >= 0, got {cid}")
        for channel, value in zip("RGB", (r, g, b), strict=True):
            if not 0 <= value <= 255:
                raise ValueError(f"{where}: {channel} must be in 0..255, got {value}")
        if cid in entries:
            raise ValueError(f"{where}: class id {cid} is listed twice (first on line {entries[cid][2]})")
        name = " ".join(fields[4:]) or f"class_{cid}"
        entries[cid] = ((r, g, b), name, lineno)
    if not entries:
        raise ValueError(f"{p}: palette file lists no classes (expected lines '<id> <R> <G> <B> <name>')")
    n = max(entries) + 1
    missing = [i for i in range(n) if i not in entries]
    if missing:
        shown = ", ".join(str(i) for i in missing[:_MAX_LISTED]) + (", ..." if len(missing) > _MAX_LISTED else "")
        raise ValueError(f"{p}: class ids must run from 0 to {n - 1} without gaps; missing {shown}")
    palette = np.array([entries[i][0] for i in range(n)], dtype=np.uint8)
    return palette, [entries[i][1] for i in range(n)]


def stored_values(desc: dict[str, Any]) -> list[int | None]:
    """For each class id of a SPADE model (its weights' description), the value an integer-id label map stores
    (None: the don't-care class of a folder set without one)."""
    n = int(desc["num_classes"])
    if desc.get("label_set") in LABEL_SETS:
        ls = LABEL_SETS[desc["label_set"]]
        first, labels, dont_care = ls.first_value, ls.num_labels, ls.dont_care
    else:
        first, labels, dont_care = 0, int(desc.get("num_labels") or n), desc.get("dont_care")
    return [first + i if i < labels else dont_care for i in range(n)]


def write_palette(path: str | os.PathLike, palette: np.ndarray, names: list[str] | tuple[str, ...],
                  comments: Sequence[str] = ()) -> None:
    """Write ``palette`` ((n, 3) ints in 0..255) and ``names`` (n single-line strings) in :func:`read_palette`'s
    format, so that a colour-coded label set can be described once and decoded later."""
    p = Path(path)
    pal = _check_palette(palette, f"cannot write {p}")
    if len(names) != len(pal):
        raise ValueError(f"cannot write {p}: {len(pal)} colours but {len(names)} names")
    lines = [f"# {c}" for c in comments] + ["# <id> <R> <G> <B> <name>"]
    for i, (colour, name) in enumerate(zip(pal.tolist(), names, strict=True)):
        name = str(name).strip()
        if "\n" in name or "\r" in name or "#" in name:
            raise ValueError(f"cannot write {p}: class {i} name {name!r} must be one line without '#'")
        lines.append(f"{i} {colour[0]} {colour[1]} {colour[2]} {name or f'class_{i}'}")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class ids (H, W) -> (H, W, 3) uint8 colours from ``palette`` (num_classes, 3), for side-by-side views."""
    pal = _check_palette(palette, "colorize")
    ids = np.asarray(labels)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"colorize: labels must be integer class ids, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= len(pal)):
        bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
        raise ValueError(f"colorize: class id {bad} is outside the palette's range 0..{len(pal) - 1}")
    return pal[ids]


def decode_color_map(rgb: np.ndarray, palette: np.ndarray, name: str = "colour map") -> np.ndarray:
    """Colour-coded label map (H, W, 3) uint8 -> (H, W) int64 class ids by exact colour match with ``palette``.

    Where the palette repeats a colour (Cityscapes uses black for five classes) the lowest id wins. Colours not in
    the palette raise ValueError listing up to 5 of them with their pixel counts (JPEG-compressed or resized colour
    maps have blended colours at edges and cannot be decoded exactly)."""
    pal = _check_palette(palette, name).astype(np.int64)
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name}: a colour-coded label map must have shape (H, W, 3), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) or (arr.size and (arr.min() < 0 or arr.max() > 255)):
        raise ValueError(f"{name}: colours must be integers in 0..255 (uint8), got dtype {arr.dtype}")
    a = arr.astype(np.int64)
    codes = (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]
    pal_codes = (pal[:, 0] << 16) | (pal[:, 1] << 8) | pal[:, 2]
    uniq, first = np.unique(pal_codes, return_index=True)  # first: lowest id per colour
    pos = np.clip(np.searchsorted(uniq, codes), 0, len(uniq) - 1)
    known = uniq[pos] == codes
    if not known.all():
        bad, counts = np.unique(codes[~known], return_counts=True)
        order = np.argsort(-counts, kind="stable")[:_MAX_LISTED]
        shown = ", ".join(f"({c >> 16}, {(c >> 8) & 255}, {c & 255}): {n} px" for c, n in
                          zip(bad[order].tolist(), counts[order].tolist(), strict=True))
        more = f" and {len(bad) - len(order)} more" if len(bad) > len(order) else ""
        raise ValueError(f"{name}: {len(bad)} colour(s) are not in the palette ({len(pal)} classes): {shown}{more}; "
                         "add them to the palette file or re-export the label map losslessly (PNG, no resizing)")
    return first[pos].astype(np.int64)


# ------------------------------------------------------------------------------------------------ label sets
@dataclass(frozen=True, eq=False)
class LabelSet:
    """How one label set's raw values map to class ids, plus what a saved model needs to draw and name them.

    Raw values ``first_value .. first_value + num_labels - 1`` are ids ``0 .. num_labels - 1``; raw ``dont_care``
    (if not None) is the extra id ``num_labels``. ``binary_masks``: a map whose values are a subset of {0, 255} has
    255 read as 1 (two-class masks saved as black/white images)."""

    name: str
    num_labels: int
    first_value: int = 0
    dont_care: int | None = None
    class_names: tuple[str, ...] = ()
    palette: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))
    binary_masks: bool = False

    @property
    def num_classes(self) -> int:
        """One-hot channels: the real classes plus the don't-care class, if any."""
        return self.num_labels + int(self.dont_care is not None)

    @property
    def dont_care_id(self) -> int | None:
        return None if self.dont_care is None else self.num_labels

    def to_ids(self, raw: np.ndarray, name: str = "label map") -> np.ndarray:
        """Raw (H, W) integer values -> (H, W) int64 ids in [0, num_classes); ValueError on anything else."""
        arr = np.asarray(raw)
        if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise ValueError(f"{name}: a label map must hold integer class values, got dtype {arr.dtype}")
        vals = arr.astype(np.int64)
        if vals.size == 0:
            return vals
        lo, hi = self.first_value, self.first_value + self.num_labels - 1
        vmin, vmax = int(vals.min()), int(vals.max())
        if self.binary_masks and self.dont_care not in (0, 255) and vmax == 255:
            if np.isin(vals, (0, 255)).all():
                return (vals == 255).astype(np.int64)
        ids = vals - self.first_value
        if lo <= vmin and vmax <= hi and (self.dont_care is None or not lo <= self.dont_care <= hi):
            return ids  # common fast path: every value is a real class
        care = np.ones(vals.shape, bool) if self.dont_care is None else vals != self.dont_care
        bad = care & ((vals < lo) | (vals > hi))
        if bad.any():
            values, counts = np.unique(vals[bad], return_counts=True)
            shown = ", ".join(f"{v} ({c} px)" for v, c in zip(values[:_MAX_LISTED].tolist(),
                                                             counts[:_MAX_LISTED].tolist(), strict=True))
            more = f" and {len(values) - _MAX_LISTED} more" if len(values) > _MAX_LISTED else ""
            raise ValueError(f"{name}: label value(s) {shown}{more} outside the valid range {lo}..{hi} of label set "
                             f"'{self.name}' ({self._range_hint()}); out-of-range ids would crash one-hot encoding "
                             "(a CUDA scatter index error)")
        if self.dont_care is not None:
            ids[~care] = self.num_labels
        return ids

    def _range_hint(self) -> str:
        dc = ("no don't-care value" if self.dont_care is None
              else f"don't-care value {self.dont_care} -> class {self.num_labels}")
        if self.name == "label2photo_folder":
            return (f"num_labels {self.num_labels}, {dc}; raise num_labels above the largest class value, or set "
                    "dont_care to the value marking unlabelled pixels")
        return f"{self.num_labels} classes, {dc}"


def _builtin(name: str, names: tuple[str, ...], first_value: int, dont_care: int | None,
             palette: np.ndarray | None = None) -> LabelSet:
    n = len(names)
    if palette is None:
        palette = default_palette(n)
    if dont_care is not None:
        names = (*names, DONT_CARE_NAME)
        palette = np.concatenate([palette, np.zeros((1, 3), np.uint8)])
    return LabelSet(name=name, num_labels=n, first_value=first_value, dont_care=dont_care, class_names=names,
                    palette=palette.astype(np.uint8))


LABEL_SETS: dict[str, LabelSet] = {
    "cityscapes": _builtin("cityscapes", tuple(n for n, _ in CITYSCAPES_CLASSES), 0, None,
                           np.array([c for _, c in CITYSCAPES_CLASSES], np.uint8)),
    "coco_stuff": _builtin("coco_stuff", COCO_STUFF_CLASSES, 0, 255),
    "ade20k": _builtin("ade20k", ADE20K_CLASSES, 1, 0),
    "cmp_facades": _builtin("cmp_facades", CMP_FACADES_CLASSES, 1, None),
}
"""The built-in label sets by dataset name: 35, 183, 151 and 12 classes (num_classes, class_names, palette)."""


def _folder_set(num_labels: int, dont_care: int | None) -> LabelSet:
    """The generic set of :class:`Label2PhotoFolderDataset`: ids = raw values in [0, num_labels)."""
    names = tuple(f"class_{i}" for i in range(num_labels))
    palette = default_palette(num_labels)
    if dont_care is not None:
        names = (*names, DONT_CARE_NAME)
        palette = np.concatenate([palette, np.zeros((1, 3), np.uint8)])
    return LabelSet(name="label2photo_folder", num_labels=num_labels, first_value=0, dont_care=dont_care,
                    class_names=names, palette=palette, binary_masks=num_labels == 2)


def label_map_to_ids(raw: np.ndarray, label_set: str, num_labels: int | None = None, dont_care: int | None = None,
                     name: str = "label map") -> np.ndarray:
    """Map a raw label map (H, W) to int64 class ids the way the datasets do, so that inference can map a user's
    map exactly like the training data. ``label_set``: a key of :data:`LABEL_SETS`, or any other name (such as
    ``label2photo_folder``) with ``num_labels`` (and optional ``dont_care``) for a generic set. ``name`` (usually
    the file) goes into error messages."""
    if label_set in LABEL_SETS:
        if num_labels is not None or dont_care is not None:
            raise ValueError(f"{name}: label set '{label_set}' has fixed classes; num_labels and dont_care only apply "
                             "to a generic (label2photo_folder) set")
        return LABEL_SETS[label_set].to_ids(raw, name)
    if num_labels is None:
        raise ValueError(f"{name}: unknown label set '{label_set}'{did_you_mean(str(label_set), list(LABEL_SETS))}; "
                         f"valid: {', '.join(LABEL_SETS)}, or pass num_labels for a generic label2photo_folder set")
    _check_int("num_labels", num_labels, 1)
    if dont_care is not None:
        _check_int("dont_care", dont_care, 0)
    return _folder_set(num_labels, dont_care).to_ids(raw, name)


# ------------------------------------------------------------------------------------------------ reading
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV")
_INDEX_MODES = ("P", "L", "1", "I", "I;16", "I;16L", "I;16B", "I;16N")


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Raw per-pixel values of a label map as (H, W) int64: palette indices for palette ("P") images, the values of
    8-bit ("L") and 16-bit grey images (Cityscapes instance maps reach 33000), 0/1 for bilevel images.

    Colour-coded (RGB) maps are refused: their colours must be decoded with a palette (:func:`read_palette` +
    :func:`decode_color_map`). Raises FileNotFoundError for a missing file and ImageReadError (a ValueError naming
    the file) for anything that cannot be decoded."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"label map not found: {p}")
    if p.is_dir():
        raise ImageReadError(p, "is a directory, not a label map")
    try:
        pil = PILImage.open(p)
    except UnidentifiedImageError:
        raise ImageReadError(p, "not an image file (cannot identify image)") from None
    except PILImage.DecompressionBombError as err:
        raise ImageReadError(p, f"too large to decode safely ({err})") from None
    except (OSError, ValueError, SyntaxError, struct.error) as err:
        raise ImageReadError(p, f"corrupt image header ({err})") from None
    with pil:
        mode = pil.mode
        if mode in _COLOUR_MODES:
            raise ImageReadError(p, f"is a colour-coded ({mode}) label map; label maps must hold one class value per "
                                    "pixel (palette, 8-bit or 16-bit grey PNG). Convert it with "
                                    "restore.data.label2photo.decode_color_map and a palette file (one line "
                                    "'<id> <R> <G> <B> <name>' per class, read with read_palette)")
        if mode not in _INDEX_MODES:
            raise ImageReadError(p, f"unsupported label map mode '{mode}' (use a palette, 8-bit or 16-bit grey "
                                    "image without alpha)")
        try:
            pil.load()
            try:
                orientation = int(pil.getexif().get(0x0112, 1))
            except Exception:  # broken EXIF must not make a readable map unreadable
                orientation = 1
            if orientation in range(2, 9):
                pil = ImageOps.exif_transpose(pil)
            arr = np.asarray(pil)
        except (OSError, ValueError, SyntaxError, struct.error, EOFError) as err:
            reason = str(err) or type(err).__name__
            raise ImageReadError(p, f"corrupt or truncated image data ({reason})") from None
    if arr.ndim != 2:
        raise ImageReadError(p, f"expected a single-channel label map, got shape {arr.shape}")
    return arr.astype(np.int64)


# ------------------------------------------------------------------------------------------------ transforms
def instance_edges(inst: np.ndarray) -> np.ndarray:
    """Instance boundaries as SPADE feeds them: (H, W) float32, 1 where any 4-neighbour has a different instance
    id (both pixels of a differing pair), else 0."""
    a = np.asarray(inst)
    if a.ndim != 2:
        raise ValueError(f"instance_edges expects an (H, W) instance map, got shape {a.shape}")
    edge = np.zeros(a.shape, bool)
    dx = a[:, 1:] != a[:, :-1]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    dy = a[1:] != a[:-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    return edge.astype(np.float32)


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, H, W) integer class ids -> (N, num_classes, H, W) float32 one-hot maps (SPADE's generator input).

    Checks the range first: scatter with an out-of-range index fails on CUDA with an unhelpful device assert."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"one_hot expects a torch.Tensor of class ids, got {type(labels).__name__}")
    if labels.ndim != 3:
        raise ValueError(f"one_hot expects class ids of shape (N, H, W), got {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"one_hot expects integer class ids, got dtype {labels.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"one_hot: num_classes must be a positive integer, got {num_classes!r}")
    labels = labels.long()
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"one_hot: label value {bad} is outside [0, {num_classes}) (num_classes {num_classes}); "
                             "check the dataset's num_labels / dont_care settings")
    n, h, w = labels.shape
    out = torch.zeros((n, num_classes, h, w), dtype=torch.float32, device=labels.device)
    return out.scatter_(1, labels.unsqueeze(1), 1.0)


def segmentation_input(labels: torch.Tensor, num_classes: int, edges: torch.Tensor | None = None) -> torch.Tensor:
    """What SPADE's generator and critic take: one-hot classes (N, C, H, W), plus the instance-edge channel
    ``edges`` ((N, 1, H, W) or (N, H, W)) when the model uses instances."""
    seg = one_hot(labels, num_classes)
    if edges is not None:
        seg = torch.cat([seg, edges.reshape(seg.shape[0], 1, *seg.shape[2:]).to(seg)], 1)
    return seg


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
def _check_int(key: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise OptionValueError(key, f"must be an integer >= {low}, got {value!r}")


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
        _check_int("load_size", load_size, 1)
        _check_int("crop_size", crop_size, 1)
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
        _check_int("seed", seed, 0)

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
        _check_int("test_count", test_count, 0)
        _check_int("split_seed", split_seed, 0)
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
        _check_int("num_labels", num_labels, 1)
        if dont_care is not None:
            _check_int("dont_care", dont_care, 0)
        spec = _folder_set(int(num_labels), None if dont_care is None else int(dont_care))
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
