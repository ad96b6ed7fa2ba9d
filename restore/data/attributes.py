"""Face attribute datasets for StarGAN-style translation: CelebA, UTKFace and a folder-per-domain layout.

Item: ``{"image": float32 (3, S, S) in [0, 1], "attrs": float32 (A,) in {0, 1}, "path": str}``. Every dataset also
exposes ``attribute_names`` (A names), ``exclusive_groups`` (lists of attribute indices of which at most one is 1 in
a target, e.g. hair colours or age groups), ``labels`` ((N, A) float32, all items, for picking real images of a
domain) and ``paths``.

Images are centre-cropped to ``crop_size`` (None: the whole image) and resized to ``image_size`` x ``image_size``
with OpenCV (INTER_AREA when shrinking, INTER_CUBIC when enlarging, then clipped to [0, 1]); the only random choice,
the horizontal flip, comes from ``default_rng([seed, epoch, index])`` like the SR datasets.
"""

from __future__ import annotations

import hashlib
import random
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from torch import Tensor

from restore.data.cache import DecodedCache, read_integers, to_unit
from restore.data.io import list_images, to_tensor
from restore.data.sr import _check_seed, _EpochSeeded
from restore.registry import DATASETS, OptionValueError, did_you_mean

CELEBA_HAIR_COLOURS: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
"""CelebA attributes that StarGAN treats as one exclusive choice (a target has exactly one hair colour)."""

_DIGITS = re.compile(r"[0-9]+")
UTKFACE_RACES: tuple[str, ...] = ("White", "Black", "Asian", "Indian", "Others", "Race", "Ethnicity")


# ------------------------------------------------------------------------------------------------ target helpers
def _group_of(index: int, exclusive_groups: Sequence[Sequence[int]]) -> Sequence[int] | None:
    for group in exclusive_groups:
        if index in group:
            return group
    return None


def translation_targets(attrs: Tensor, index: int, exclusive_groups: Sequence[Sequence[int]]) -> Tensor:
    """Test-time target labels (N, A) for domain ``index`` (StarGAN's protocol), from source labels (N, A).

    An attribute in an exclusive group is set to 1 and the rest of its group to 0 (e.g. "make the hair blond");
    any other attribute is flipped (e.g. "change the gender"). The other attributes are kept. ``attrs`` is not
    modified.
    """
    if attrs.dim() != 2:
        raise ValueError(f"attrs must be an (N, A) tensor, got shape {tuple(attrs.shape)}")
    num = attrs.shape[1]
    if not 0 <= index < num:
        raise ValueError(f"domain index {index} is out of range for {num} attributes")
    target = attrs.clone()
    group = _group_of(index, exclusive_groups)
    if group is None:
        target[:, index] = 1 - target[:, index]
    else:
        target[:, list(group)] = 0
        target[:, index] = 1
    return target


def shuffled_targets(attrs: Tensor, generator: torch.Generator) -> Tensor:
    """Training targets (N, A): the labels of a random permutation of the batch (StarGAN's scheme), so targets
    follow the label distribution of the data (real combinations of attributes only)."""
    if attrs.dim() != 2:
        raise ValueError(f"attrs must be an (N, A) tensor, got shape {tuple(attrs.shape)}")
    perm = torch.randperm(attrs.shape[0], generator=generator, device=generator.device)
    return attrs[perm.to(attrs.device)]


def domain_name(attribute_names: Sequence[str], index: int, exclusive_groups: Sequence[Sequence[int]]) -> str:
    """Name of the translation :func:`translation_targets` makes for ``index``: the attribute ("Blond_Hair") when it
    is set within an exclusive group, "<attribute>=flip" ("Male=flip") when it is flipped."""
    if not 0 <= index < len(attribute_names):
        raise ValueError(f"domain index {index} is out of range for {len(attribute_names)} attributes")
    name = attribute_names[index]
    return name if _group_of(index, exclusive_groups) is not None else f"{name}=flip"


# ------------------------------------------------------------------------------------------------ shared pieces
def _check_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionValueError(key, f"must be an integer >= {minimum}, got {value!r}")


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise OptionValueError(key, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}"
                                    f"{did_you_mean(str(value), choices)}")


def _select(key: str, requested: Sequence[str], available: Sequence[str], where: str, hint: str = "") -> list[int]:
    """Indices of ``requested`` names in ``available``; unknown or repeated names are an error naming them."""
    if isinstance(requested, str):
        raise OptionValueError(key, f"must be a list of attribute names, got the string {requested!r}")
    if not requested:
        raise OptionValueError(key, "must name at least one attribute, got []")
    out: list[int] = []
    for name in requested:
        if name not in available:
            extra = hint if name in UTKFACE_RACES and hint else ""
            raise OptionValueError(key, f"'{name}' is not an attribute of {where}{did_you_mean(str(name), available)}"
                                        f"{extra}; available: {', '.join(available)}")
        if available.index(name) in out:
            raise OptionValueError(key, f"names '{name}' twice")
        out.append(available.index(name))
    return out


def _file_hash(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def grouped_split(paths: Sequence[Path], test_fraction: float, split_seed: int) -> np.ndarray:
    """Boolean test mask (N,) of a seeded split in which byte-identical files (same SHA-1) share a side.

    Groups of identical files are ordered by their first path, shuffled with ``default_rng(split_seed)``, and the
    first ``round(test_fraction * groups)`` groups are the test set: deterministic for a given file set.
    """
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(paths):
        groups.setdefault(_file_hash(p), []).append(i)
    ordered = sorted(groups.values(), key=lambda idx: str(paths[idx[0]]))
    order = np.random.default_rng(split_seed).permutation(len(ordered))
    n_test = int(round(test_fraction * len(ordered)))
    mask = np.zeros(len(paths), dtype=bool)
    for g in order[:n_test]:
        mask[ordered[g]] = True
    return mask


def _check_fraction(test_fraction: float) -> None:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 <= test_fraction < 1:
        raise OptionValueError("test_fraction", f"must be in [0, 1), got {test_fraction!r}")


def _split_mask(split: str, paths: Sequence[Path], test_fraction: float, split_seed: int) -> np.ndarray:
    """Keep-mask (N,) for ``split`` of the hash-grouped seeded split."""
    if split == "all":
        return np.ones(len(paths), dtype=bool)
    test = grouped_split(paths, test_fraction, split_seed)
    return test if split == "test" else ~test


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    interp = cv2.INTER_AREA if size <= min(h, w) else cv2.INTER_CUBIC
    out = cv2.resize(img, (size, size), interpolation=interp)
    return np.clip(out, 0.0, 1.0) if interp == cv2.INTER_CUBIC else out


class _AttributeDataset(_EpochSeeded):
    """Common loading: subclasses fill ``paths``, ``labels``, ``attribute_names`` and ``exclusive_groups``.

    ``cache_mb`` (default 1024; 0: off): each process decodes a photo once and keeps its integer samples
    (restore.data.cache); items are bit-identical with and without it."""

    paths: list[Path]
    labels: np.ndarray
    attribute_names: list[str]
    exclusive_groups: list[list[int]]

    def _init_common(self, image_size: int, crop_size: int | None, flip: bool, seed: int, cache_mb: float) -> None:
        _check_int("image_size", image_size, 1)
        if crop_size is not None:
            _check_int("crop_size", crop_size, 1)
        _check_seed(seed)
        self.image_size, self.crop_size, self.flip = image_size, crop_size, flip
        self.seed, self.epoch = seed, 0
        self._cache = DecodedCache(cache_mb, what=f"{type(self).__name__} photos")

    def _finish(self, paths: list[Path], labels: np.ndarray, keep: np.ndarray, what: str) -> None:
        self.paths = [p for p, k in zip(paths, keep, strict=True) if k]
        self.labels = np.ascontiguousarray(labels[keep], dtype=np.float32)
        if not self.paths:
            raise OptionValueError("split", f"leaves no image of {what} in this split")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._check_index(index)
        path = self.paths[index]
        img = to_unit(self._cache.get(index, lambda: read_integers(path)))
        if self.crop_size is not None:
            h, w = img.shape[:2]
            c = self.crop_size
            if c > h or c > w:
                raise ValueError(f"{path}: image is {w}x{h} (WxH), smaller than crop_size {c}; lower crop_size or "
                                 "set it to null (whole image)")
            top, left = int(round((h - c) / 2.0)), int(round((w - c) / 2.0))  # as torchvision's CenterCrop
            img = img[top:top + c, left:left + c]
        img = _resize(img, self.image_size)
        if self.flip and self._rng(index).random() < 0.5:
            img = img[:, ::-1]
        return {"image": to_tensor(img), "attrs": torch.from_numpy(self.labels[index].copy()), "path": str(path)}


# ------------------------------------------------------------------------------------------------ CelebA
def parse_celeba_attributes(path: str | Path) -> tuple[list[str], list[tuple[str, np.ndarray]]]:
    """Parse ``list_attr_celeba.txt``: line 1 the image count, line 2 the attribute names, then one row per image
    ``name v1 v2 ...`` (whitespace-separated, values 1 or -1).

    Returns (names, rows) with each row (file name, int8 array of +-1 values). Errors name file and line. A count
    on line 1 that differs from the number of rows is an error too (a truncated download looks exactly like that).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CelebA attribute file not found: {path}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if len(lines) < 2:
        raise ValueError(f"{path}: expected the image count on line 1 and the attribute names on line 2, "
                         f"found {len(lines)} line(s)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{path}:1: expected the number of images, got {lines[0].strip()!r}") from None
    names = lines[1].split()
    if not names:
        raise ValueError(f"{path}:2: expected the attribute names, found an empty line")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{path}:2: attribute names repeat: {', '.join(dup)}")
    rows: list[tuple[str, np.ndarray]] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        file, values = fields[0], fields[1:]
        if len(values) != len(names):
            raise ValueError(f"{path}:{lineno}: {file} has {len(values)} attribute values, expected {len(names)} "
                             "(one per name on line 2)")
        bad = [(n, v) for n, v in zip(names, values, strict=True) if v not in ("1", "-1")]
        if bad:
            raise ValueError(f"{path}:{lineno}: {file} has value {bad[0][1]!r} for {bad[0][0]}; values must be 1 or -1")
        if file in seen:
            raise ValueError(f"{path}:{lineno}: {file} is listed twice (first on line {seen[file]})")
        seen[file] = lineno
        rows.append((file, np.array([1 if v == "1" else -1 for v in values], dtype=np.int8)))
    if count != len(rows):
        raise ValueError(f"{path}:1: says {count} images but the file lists {len(rows)}; the file may be truncated "
                         "(download it again) or, if you wrote it, correct line 1")
    return names, rows


def _parse_partition(path: Path) -> dict[str, int]:
    """``list_eval_partition.txt``: ``name partition`` rows, 0 train, 1 validation, 2 test."""
    if not path.is_file():
        raise FileNotFoundError(f"split_mode 'official' needs CelebA's list_eval_partition.txt next to the "
                                f"attribute file: {path} not found")
    out: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}:{lineno}: expected '<file> <0|1|2>', got {line.strip()!r}")
            out[fields[0]] = int(fields[1])
    return out


@DATASETS.register("celeba")
class CelebADataset(_AttributeDataset):
    """CelebA aligned faces (178x218) with chosen binary attributes; StarGAN's setup by default.

    Layout: ``root/img_align_celeba/*.jpg`` and ``root/list_attr_celeba.txt``; ``attr_file`` and ``images``
    (absolute, or relative to root) point elsewhere, so any multi-label data in the same text format works.
    split_mode: "stargan" shuffles the rows as StarGAN does (``random.seed(split_seed); random.shuffle(rows)``, done
    on a private ``random.Random`` so global state is untouched) and the first ``test_count`` are the test set;
    "official" uses ``list_eval_partition.txt`` beside the attribute file (validation goes to train); "seeded" is a
    numpy permutation with ``split_seed``. Hair colours among ``attributes`` (two or more) form one exclusive group.
    """

    def __init__(self, root: str, attributes: Sequence[str] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male",
                                                                "Young"),
                 attr_file: str | None = None, images: str | None = None,
                 split: Literal["train", "test", "all"] = "train",
                 split_mode: Literal["stargan", "official", "seeded"] = "stargan", test_count: int = 2000,
                 split_seed: int = 1234, image_size: int = 128, crop_size: int | None = 178, flip: bool = True,
                 seed: int = 0, cache_mb: float = 1024):
        _check_choice("split", split, ("train", "test", "all"))
        _check_choice("split_mode", split_mode, ("stargan", "official", "seeded"))
        _check_int("test_count", test_count, 0)
        _check_int("split_seed", split_seed, 0)
        self._init_common(image_size, crop_size, flip, seed, cache_mb)
        root_path = Path(root)
        attr_path = root_path / (attr_file if attr_file is not None else "list_attr_celeba.txt")
        image_dir = root_path / (images if images is not None else "img_align_celeba")
        if not image_dir.is_dir():
            raise OptionValueError("images" if images is not None else "root",
                                   f"names no image folder: {image_dir} not found")
        names, rows = parse_celeba_attributes(attr_path)
        cols = _select("attributes", attributes, names, str(attr_path))
        self.attribute_names = [names[i] for i in cols]
        hair = [i for i, n in enumerate(self.attribute_names) if n in CELEBA_HAIR_COLOURS]
        self.exclusive_groups = [hair] if len(hair) >= 2 else []
        self.split, self.split_mode = split, split_mode

        n = len(rows)
        keep = np.ones(n, dtype=bool)
        if split != "all":
            keep = self._test_rows(rows, attr_path, split_mode, test_count, split_seed)
            if split == "train":
                keep = ~keep
        kept = np.flatnonzero(keep)
        paths = [image_dir / rows[i][0] for i in kept]
        signs = np.stack([rows[i][1] for i in kept])[:, cols] if len(kept) else np.zeros((0, len(cols)), np.int8)
        self._finish(paths, (signs.astype(np.float32) + 1) / 2, np.ones(len(paths), dtype=bool), f"{attr_path}")
        present = {p.name for p in image_dir.iterdir()}
        missing_files = [p.name for p in self.paths if p.name not in present]
        if missing_files:
            more = f" and {len(missing_files) - 3} more" if len(missing_files) > 3 else ""
            raise FileNotFoundError(f"{len(missing_files)} image(s) listed in {attr_path} are missing from "
                                    f"{image_dir}: {', '.join(missing_files[:3])}{more}")

    @staticmethod
    def _test_rows(rows: list[tuple[str, np.ndarray]], attr_path: Path, split_mode: str, test_count: int,
                   split_seed: int) -> np.ndarray:
        """Boolean test mask over the rows of the attribute file."""
        n = len(rows)
        if split_mode == "official":
            part_path = attr_path.parent / "list_eval_partition.txt"
            part = _parse_partition(part_path)
            missing = [f for f, _ in rows if f not in part]
            if missing:
                raise ValueError(f"{part_path} has no partition for {len(missing)} image(s) of {attr_path}, "
                                 f"e.g. {missing[0]}")
            return np.array([part[f] == 2 for f, _ in rows], dtype=bool)
        if test_count > n:
            raise OptionValueError("test_count", f"is {test_count}, more than the {n} images in {attr_path}")
        if split_mode == "stargan":
            order = list(range(n))
            random.Random(split_seed).shuffle(order)  # the permutation StarGAN's random.seed + shuffle makes
        else:
            order = np.random.default_rng(split_seed).permutation(n).tolist()
        test = np.zeros(n, dtype=bool)
        test[order[:test_count]] = True
        return test


# ------------------------------------------------------------------------------------------------ UTKFace
def age_group_names(boundaries: Sequence[int]) -> list[str]:
    """Age-group attribute names for increasing ``boundaries``: [20, 40, 60] -> Age_0-19, ..., Age_60+."""
    edges = [0, *boundaries]
    names = [f"Age_{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return [*names, f"Age_{edges[-1]}+"]


def _check_age_groups(age_groups: Sequence[int]) -> None:
    ok = not isinstance(age_groups, str) and len(age_groups) > 0
    ok = ok and all(isinstance(b, int) and not isinstance(b, bool) for b in age_groups)
    if not ok or any(b <= a for a, b in zip([0, *age_groups], age_groups, strict=False)):
        raise OptionValueError("age_groups", f"must be increasing positive integer age boundaries, e.g. [20, 40, 60]; "
                                             f"got {age_groups!r}")


def parse_utkface_name(name: str) -> tuple[int, int, int] | None:
    """(age, gender, race) from ``age_gender_race_datetime.jpg.chip.jpg`` (gender 0 male, 1 female); None when
    the name does not follow that pattern."""
    fields = name.split(".", 1)[0].split("_")
    if len(fields) != 4 or not all(_DIGITS.fullmatch(f) for f in fields):
        return None
    age, gender, race = int(fields[0]), int(fields[1]), int(fields[2])
    if gender not in (0, 1):
        return None
    return age, gender, race


@DATASETS.register("utkface")
class UTKFaceDataset(_AttributeDataset):
    """UTKFace aligned and cropped faces (200x200), with "Male" and age-group attributes from the file names.

    UTKFace is released for non-commercial research purposes only; check its license before using it or models
    trained on it. Race/ethnicity labels are deliberately not offered as attributes. File names that do not follow
    ``age_gender_race_datetime.jpg.chip.jpg`` are skipped with one warning. The age groups form one exclusive group.
    The split is seeded and keeps byte-identical files on one side (see :func:`grouped_split`).
    """

    def __init__(self, root: str, attributes: Sequence[str] = ("Male", "Age_0-19", "Age_20-39", "Age_40-59",
                                                                "Age_60+"),
                 age_groups: Sequence[int] = (20, 40, 60), split: Literal["train", "test", "all"] = "train",
                 test_fraction: float = 0.1, split_seed: int = 0, image_size: int = 128,
                 crop_size: int | None = None, flip: bool = True, seed: int = 0, cache_mb: float = 1024):
        _check_choice("split", split, ("train", "test", "all"))
        _check_fraction(test_fraction)
        _check_int("split_seed", split_seed, 0)
        _check_age_groups(age_groups)
        self._init_common(image_size, crop_size, flip, seed, cache_mb)
        groups = age_group_names(age_groups)
        available = ["Male", *groups]
        cols = _select("attributes", attributes, available, "UTKFace",
                       hint=" (race/ethnicity labels are deliberately not offered as attributes)")
        self.attribute_names = [available[i] for i in cols]
        age_cols = [j for j, i in enumerate(cols) if i >= 1]
        self.exclusive_groups = [age_cols] if len(age_cols) >= 2 else []
        self.split = split

        files = _list_or_error("root", root)
        paths: list[Path] = []
        rows: list[np.ndarray] = []
        bad: list[str] = []
        edges = np.array(age_groups)
        for p in files:
            parsed = parse_utkface_name(p.name)
            if parsed is None:
                bad.append(p.name)
                continue
            age, gender, _race = parsed
            full = np.zeros(len(available), dtype=np.float32)
            full[0] = 1.0 if gender == 0 else 0.0
            full[1 + int(np.searchsorted(edges, age, side="right"))] = 1.0
            paths.append(p)
            rows.append(full[cols])
        if bad:
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            warnings.warn(f"utkface: skipped {len(bad)} file(s) in {root} whose names do not follow "
                          f"age_gender_race_datetime.jpg.chip.jpg: {', '.join(bad[:3])}{more}", UserWarning,
                          stacklevel=2)
        if not paths:
            raise OptionValueError("root", f"{root} holds no UTKFace images (age_gender_race_datetime.jpg.chip.jpg)")
        labels = np.stack(rows)
        self._finish(paths, labels, _split_mask(split, paths, test_fraction, split_seed), f"UTKFace in {root}")


def _list_or_error(key: str, folder: str) -> list[Path]:
    try:
        return list_images(folder)
    except FileNotFoundError as err:
        raise OptionValueError(key, f"names no usable image folder: {err}") from None


# ------------------------------------------------------------------------------------------------ folder per domain
@DATASETS.register("attribute_folder")
class AttributeFolderDataset(_AttributeDataset):
    """Your own domains, one folder each: ``root/<domain>/*.jpg|png|...``; attributes are the sorted domain names
    with one-hot labels, all in one exclusive group (each image belongs to exactly one domain).

    Images are resized whole to a square (set ``crop_size`` to centre-crop first). The split is seeded and keeps
    byte-identical files on one side (see :func:`grouped_split`).
    """

    def __init__(self, root: str, split: Literal["train", "test", "all"] = "train", test_fraction: float = 0.1,
                 split_seed: int = 0, image_size: int = 128, crop_size: int | None = None, flip: bool = True,
                 seed: int = 0, cache_mb: float = 1024):
        _check_choice("split", split, ("train", "test", "all"))
        _check_fraction(test_fraction)
        _check_int("split_seed", split_seed, 0)
        self._init_common(image_size, crop_size, flip, seed, cache_mb)
        base = Path(root)
        if not base.is_dir():
            raise OptionValueError("root", f"names no folder: {base} not found")
        domains = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
        if len(domains) < 2:
            raise OptionValueError("root", f"{base} must hold one subfolder of images per domain (at least two), "
                                           f"found {len(domains)}: {', '.join(domains) or 'none'}")
        paths: list[Path] = []
        rows: list[np.ndarray] = []
        for j, d in enumerate(domains):
            for p in _list_or_error("root", str(base / d)):
                paths.append(p)
                rows.append(np.eye(len(domains), dtype=np.float32)[j])
        self.attribute_names = domains
        self.exclusive_groups = [list(range(len(domains)))]
        self.split = split
        self._finish(paths, np.stack(rows), _split_mask(split, paths, test_fraction, split_seed), f"{base}")
