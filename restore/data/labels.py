"""Label sets, palettes and label decoding for label-map -> photo: which raw values a label map may hold, how
they map to class ids, their colours, and the one-hot input SPADE takes.

A label map holds one raw class value per pixel. It is read as raw integers (:func:`read_label_map`: palette
indices, 8-bit or 16-bit grey), never through :func:`restore.data.io.read_image`, which would turn palette indices
into colours. Each label set maps raw values to class ids ``0 .. num_classes - 1`` (:func:`label_map_to_ids`), with
an optional extra "dont_care" class for unlabelled pixels, and rejects anything else with an error naming the file
and the value: an out-of-range id would otherwise surface much later as an opaque CUDA scatter index error in
:func:`one_hot`. The data sets that use these live in :mod:`restore.data.label2photo`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from restore.data.io import ImageReadError
from restore.registry import OptionValueError, did_you_mean

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


def check_int_option(key: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise OptionValueError(key, f"must be an integer >= {low}, got {value!r}")


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


def folder_label_set(num_labels: int, dont_care: int | None) -> LabelSet:
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
    check_int_option("num_labels", num_labels, 1)
    if dont_care is not None:
        check_int_option("dont_care", dont_care, 0)
    return folder_label_set(num_labels, dont_care).to_ids(raw, name)


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
