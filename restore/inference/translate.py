"""Image-to-image inference: label map -> photo (SPADE) and face -> face with chosen attributes (StarGAN).

Both take files or folders and need nothing but the model file (its metadata carries the label set, palette and
attribute names): SPADE inference needs no real photos, and StarGAN inference takes any photo (centre-cropped to a
square, resized to the model's size, translated, and pasted back so the output has the input's size).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from restore.data.io import read_image, write_image
from restore.inference.upscale import (
    Written,
    _check_targets,
    _Outcome,
    _plan,
    _resize,
    _Sources,
    existing_output,
    note_frames,
    output_suffix,
    refuse_existing_file,
)


# ----------------------------------------------------------------------------------------------------- SPADE
def spade_label_ids(path: Path, desc: dict[str, Any], palette: np.ndarray | None = None) -> np.ndarray:
    """(H, W) class ids of a label-map file: integer ids as the model's label set stores them (raw values mapped the
    same way as in training), or a colour-coded map decoded with ``palette`` (the model's own when None)."""
    from restore.data.labels import decode_color_map, label_map_to_ids, read_label_map

    try:
        raw = read_label_map(path)
    except ValueError as err:
        if "colour" not in str(err) and "color" not in str(err):
            raise
        rgb = read_image(path).rgb
        pal = palette if palette is not None else np.asarray(desc["palette"], dtype=np.uint8)
        ids = decode_color_map(np.round(rgb * 255).astype(np.uint8), pal)
        return ids
    return label_map_to_ids(raw, desc["label_set"], num_labels=desc.get("num_labels"),
                            dont_care=desc.get("dont_care"), name=str(path))


def resize_nearest(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of (H, W) or (H, W, C) arrays, sampled at pixel centres (exact for any id range)."""
    if a.shape[:2] == (height, width):
        return a
    h, w = a.shape[:2]
    rows = np.minimum((np.arange(height) + 0.5) * h / height, h - 1).astype(np.int64)
    cols = np.minimum((np.arange(width) + 0.5) * w / width, w - 1).astype(np.int64)
    return a[rows[:, None], cols[None, :]]


@torch.no_grad()
def spade_generate(model: nn.Module, desc: dict[str, Any], ids: np.ndarray, instance: np.ndarray | None = None,
                   seed: int = 0) -> np.ndarray:
    """(H, W) ids (any size) -> (h, w, 3) float photo in [0, 1] at the model's resolution.

    Models trained with instance edges get them from ``instance`` (an instance-id map) when given, else from the
    class boundaries of the label map (the closest stand-in). VAE models use a seeded random style.
    """
    from restore.data.labels import instance_edges, segmentation_input

    device = next(model.parameters()).device
    h, w = model.sample_shape()
    small = resize_nearest(ids, h, w)
    label = torch.from_numpy(small).long().unsqueeze(0).to(device)
    edges = None
    if desc.get("use_instance"):
        source = resize_nearest(instance, h, w) if instance is not None else small
        edges = torch.from_numpy(instance_edges(source)).to(device)
    seg = segmentation_input(label, int(desc["num_classes"]), edges)
    z = None
    if getattr(model, "use_vae", False):
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(1, model.z_dim, generator=gen).to(device)
    dtype = next(model.parameters()).dtype
    out = model(seg.to(dtype), z.to(dtype) if z is not None else None) if z is not None else model(seg.to(dtype))
    return ((out[0].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()


def spade_paths(model: nn.Module, desc: dict[str, Any], inputs: Sequence[Path], output: Path,
                palette: np.ndarray | None = None, instances: Path | None = None, keep_size: bool = False,
                seed: int = 0, suffix: str = "", overwrite: bool = False) -> Written:
    """Translate label-map files/folders; outputs are PNG photos at the model's resolution (or the input's with
    ``keep_size``), named ``<stem><suffix>.png`` in a folder output. ``instances``: a folder of instance maps matched
    by file stem (optional). Label maps that cannot be read or decoded, and outputs that exist (without
    ``overwrite``), are reported and skipped: returns the paths written with those inputs in ``.failed``."""
    from restore.data.labels import read_label_map

    jobs, to_file = _plan(inputs, output, suffix)
    jobs = [(src, dst.with_suffix(".png")) for src, dst in jobs]
    _check_targets(jobs, _Sources([src for src, _ in jobs]))
    if to_file:
        refuse_existing_file(jobs[0][1], overwrite)
    outcome = _Outcome(len(jobs))
    for src, dst in jobs:
        refusal = existing_output(dst, overwrite)
        if refusal is not None:
            outcome.fail(src, refusal)
            continue
        try:  # a label map's own problems (unreadable, values outside the label set) fail that file only
            ids = spade_label_ids(src, desc, palette)
            inst = None
            if instances is not None:
                cand = sorted(instances.glob(f"{src.stem}.*"))
                if cand:
                    inst = read_label_map(cand[0])
        except (ValueError, FileNotFoundError) as err:
            outcome.fail(src, getattr(err, "reason", None) or str(err))
            continue
        note_frames(src)
        photo = spade_generate(model, desc, ids, inst, seed=seed)
        if keep_size:
            photo = _resize(photo, *ids.shape)
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_image(dst, photo)
        outcome.written.append(dst)
    return outcome.result()


# ----------------------------------------------------------------------------------------------------- StarGAN
def parse_attribute_settings(settings: Sequence[str], names: Sequence[str]) -> dict[int, float]:
    """``["Male=1", "Young=0"]`` -> {index: value}; names are checked against the model's attributes."""
    from restore.registry import did_you_mean

    out: dict[int, float] = {}
    for text in settings:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"--set {text!r}: expected NAME=VALUE, e.g. --set {names[0]}=1")
        if key not in names:
            raise ValueError(f"--set {text!r}: the model has no attribute '{key}'{did_you_mean(key, list(names))}; "
                             f"its attributes: {', '.join(names)}")
        if value.strip() not in ("0", "1"):
            raise ValueError(f"--set {text!r}: value must be 0 or 1, got {value.strip()!r}")
        out[list(names).index(key)] = float(value)
    return out


def target_vector(source: np.ndarray | None, settings: dict[int, float], names: Sequence[str],
                  groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Full (A,) target: the chosen values; setting 1 in an exclusive group clears the rest of the group; the other
    attributes keep ``source`` (the photo's own, e.g. from an attribute classifier). Without a source every
    attribute must be decided by the settings (or its group), else the error names the undecided ones."""
    a = len(names)
    target = np.full(a, np.nan) if source is None else source.astype(np.float64).copy()
    for i, v in settings.items():
        target[i] = v
        if v == 1:
            for g in groups:
                if i in g:
                    for j in g:
                        if j != i:
                            target[j] = 0.0
    for g in groups:  # a group with one member set and the others unspecified: the others are 0
        if any(target[j] == 1 for j in g):
            for j in g:
                if np.isnan(target[j]):
                    target[j] = 0.0
    missing = [names[i] for i in range(a) if np.isnan(target[i])]
    if missing:
        raise ValueError(f"the target leaves {', '.join(missing)} undecided: set them too (e.g. --set "
                         f"{missing[0]}=0), or pass an attribute classifier (--classifier) to keep the photo's own "
                         "values for attributes you do not set")
    return target.astype(np.float32)


def centre_square(h: int, w: int) -> tuple[int, int, int]:
    """(top, left, side) of the centred square crop."""
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side


@torch.no_grad()
def stargan_translate(model: nn.Module, rgb: np.ndarray, target: np.ndarray, image_size: int) -> np.ndarray:
    """(H, W, 3) photo in [0, 1] -> same size, its centred square translated (at image_size) and pasted back."""
    device = next(model.parameters()).device
    top, left, side = centre_square(*rgb.shape[:2])
    crop = rgb[top:top + side, left:left + side]
    x = torch.from_numpy(_resize(crop, image_size, image_size)).permute(2, 0, 1).unsqueeze(0).to(device)
    c = torch.from_numpy(target).unsqueeze(0).to(device)
    dtype = next(model.parameters()).dtype
    y = model((x * 2 - 1).to(dtype), c.to(dtype))
    out = ((y[0].float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).cpu().numpy()
    result = rgb.copy()
    result[top:top + side, left:left + side] = _resize(out, side, side)
    return result


@torch.no_grad()
def classify_attributes(classifier: nn.Module, rgb: np.ndarray, image_size: int) -> np.ndarray:
    """(A,) {0, 1} attributes of a photo's centred square by an attribute classifier."""
    device = next(classifier.parameters()).device
    top, left, side = centre_square(*rgb.shape[:2])
    x = torch.from_numpy(_resize(rgb[top:top + side, left:left + side], image_size, image_size))
    logits = classifier(x.permute(2, 0, 1).unsqueeze(0).to(device) * 2 - 1)
    return (logits[0].float().cpu().numpy() > 0).astype(np.float32)


def stargan_paths(model: nn.Module, desc: dict[str, Any], inputs: Sequence[Path], output: Path,
                  settings: Sequence[str], classifier: nn.Module | None = None, suffix: str = "",
                  overwrite: bool = False) -> Written:
    """Translate photos/folders to the attributes ``settings`` (``NAME=0|1``); outputs keep each input's size,
    alpha and bit depth (PNG where the input's format cannot hold them, and for GIFs), named
    ``<stem><suffix><ext>`` in a folder output. Photos that cannot be read, and outputs that exist (without
    ``overwrite``), are reported and skipped: returns the paths written with those inputs in ``.failed``."""
    from restore.data.io import ImageReadError

    names = desc["attribute_names"]
    groups = desc.get("exclusive_groups", [])
    chosen = parse_attribute_settings(settings, names)
    if not chosen:
        raise ValueError(f"choose at least one attribute to change, e.g. --set {names[0]}=1 (attributes: "
                         f"{', '.join(names)})")
    size = int(desc.get("image_size") or 128)
    fixed = target_vector(None, chosen, names, groups) if classifier is None else None  # refused before any work
    jobs, to_file = _plan(inputs, output, suffix)
    sources = _Sources([src for src, _ in jobs])
    _check_targets(jobs, sources)
    if to_file:
        refuse_existing_file(jobs[0][1], overwrite)
    outcome = _Outcome(len(jobs))
    for src, dst in jobs:
        try:
            img = read_image(src)
        except (ImageReadError, FileNotFoundError) as err:
            outcome.fail(src, getattr(err, "reason", None) or str(err))
            continue
        dst = dst.with_suffix(output_suffix(dst.suffix, img.alpha is not None, img.bit_depth))
        _check_targets([(src, dst)], sources)
        refusal = existing_output(dst, overwrite)
        if refusal is not None:
            outcome.fail(src, refusal)
            continue
        note_frames(src)
        source = classify_attributes(classifier, img.rgb, size) if classifier is not None else None
        target = fixed if fixed is not None else target_vector(source, chosen, names, groups)
        out = stargan_translate(model, img.rgb, target, size)
        if img.grey:
            out = np.repeat(out.mean(2, keepdims=True), 3, axis=2)
        dst.parent.mkdir(parents=True, exist_ok=True)
        write_image(dst, out, alpha=img.alpha, bit_depth=img.bit_depth, grey=img.grey)
        outcome.written.append(dst)
    return outcome.result()
