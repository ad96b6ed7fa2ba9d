"""Benchmark evaluation of an SR method (a model, or MATLAB bicubic) on folders of HR images.

Protocol (the one SR papers report): HR = the image cropped to a multiple of the scale; LR = MATLAB bicubic
downscaling of it, clipped to [0, 1]; the method's output and the HR are quantised to 8 bits; PSNR and SSIM on the
Y channel of MATLAB's YCbCr with ``scale`` pixels dropped on every side; NIQE (no-reference, Y channel, same crop)
of the output; LPIPS-alex of output vs HR on RGB. Per-image rows and per-folder means (of the per-image values).

With a ``degradation`` (``realesrgan``) the LR is instead the degraded HR (:func:`restore.data.degradations.
degrade_images`), one seed per image from :func:`image_seed`, so models can be compared on real-world-like inputs
with fixed, reproducible degradations; the results name the degradation and seed everywhere. ``real_photos``: NIQE
of the method's outputs on real photos used as they are (no reference, nothing degraded).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from restore.assets import REPO_ROOT
from restore.data.io import IMAGE_EXTENSIONS, list_images, read_image, to_numpy, to_tensor
from restore.data.sr import BenchmarkDataset, imresize
from restore.files import atomic_write_text
from restore.metrics.fidelity import psnr, ssim
from restore.metrics.niqe import niqe

METRICS: tuple[str, ...] = ("psnr", "ssim", "niqe", "lpips")
_HEADERS = {"psnr": "PSNR", "ssim": "SSIM", "niqe": "NIQE", "lpips": "LPIPS"}
_DIGITS = {"psnr": 2, "ssim": 4, "niqe": 3, "lpips": 4}

Upscaler = Callable[[np.ndarray], np.ndarray]

#: LR side (pixels) real photos are centre-cropped to before upscaling (0: whole photos).
REAL_CROP = 256


def bicubic_upscaler(scale: int) -> Upscaler:
    """MATLAB bicubic upscaling ``lq (H, W, 3) -> (sH, sW, 3)``, clipped to [0, 1]: the usual baseline."""

    def upscale(lq: np.ndarray) -> np.ndarray:
        return np.clip(imresize(lq, scale), 0.0, 1.0)

    upscale.__name__ = "bicubic"
    return upscale


def degradation_names() -> tuple[str, ...]:
    """The ``degradation`` values :func:`evaluate_sr` accepts: the degradation types of
    :class:`restore.data.degradations.DegradationOptions` but ``bicubic`` (which is the clean protocol itself)."""
    import typing

    from restore.data.degradations import DegradationOptions

    kinds = typing.get_args(typing.get_type_hints(DegradationOptions)["type"])
    return tuple(k for k in kinds if k != "bicubic")


def degradation_spec(degradation: str) -> dict[str, Any]:
    """Every option of ``degradation`` with its default, as plain values (what the results record)."""
    import dataclasses

    from restore.data.degradations import as_options

    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(as_options({"type": degradation})).items()}


def image_seed(seed: int, name: str) -> int:
    """The degradation seed of benchmark image ``name`` (file stem): the first 63 bits of sha256("<seed>/<name>").

    It depends only on the run's seed and the image's own name, so adding, removing or reordering images in a folder
    (or evaluating one image alone) leaves every other image's degraded LR unchanged.
    """
    digest = hashlib.sha256(f"{int(seed)}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _check_degradation(degradation: str | None, seed: int) -> None:
    if degradation is None:
        return
    names = degradation_names()
    if degradation not in names:
        raise ValueError(f"degradation {degradation!r} is not known; valid: {', '.join(names)} (leave it out for "
                         "the clean bicubic protocol)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"degradation seed must be an integer >= 0, got {seed!r}")


def _degraded_lr(gt: np.ndarray, scale: int, seed: int, degradation: str, where: str) -> np.ndarray:
    """The degraded LR of a mod-cropped HR (H, W, 3), on the CPU, deterministic in ``seed``."""
    from restore.data.degradations import degrade_images

    try:
        lq = degrade_images(to_tensor(gt).unsqueeze(0), scale, [seed], {"type": degradation})
    except ValueError as err:  # e.g. an image too small for the pipeline's kernels: name the image
        raise ValueError(f"{where}: {err}") from None
    return to_numpy(lq[0])


def default_real_photos() -> list[Path]:
    """The real-photo inputs used when none are given: the repository's SR example photos
    (``weights/examples/sr_*``) and ``plasma_photos`` of the shared training data (``$RESTORE_SHARED`` or
    ``../shared`` beside the repository). Missing ones are left to the caller to report."""
    shared = Path(os.environ.get("RESTORE_SHARED") or REPO_ROOT.parent / "shared")
    examples = sorted(p for p in (REPO_ROOT / "weights" / "examples").glob("sr_*")
                      if p.suffix.lower() in IMAGE_EXTENSIONS)
    return [*examples, shared / "data" / "sr-train" / "plasma_photos"]


def _photo_paths(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += list_images(path)
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f"real photos: {path} is neither an image file nor a folder")
    return paths


def _centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    if size <= 0:
        return img
    h, w = img.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[top:top + size, left:left + size]


def evaluate_real_photos(upscale: Upscaler, inputs: Sequence[str | os.PathLike], scale: int,
                         crop: int = REAL_CROP, progress: bool = False) -> dict[str, Any]:
    """NIQE of ``upscale``'s outputs on real photos (files or folders), each used as the LR as it is.

    No reference exists and nothing is degraded: this asks how natural the outputs of real-world inputs look. Each
    photo is centre-cropped to at most ``crop`` x ``crop`` LR pixels first (0: whole photos) so that a folder of
    camera-sized photos takes seconds, not minutes. NIQE drops ``scale`` pixels per side, as on benchmarks.
    """
    if isinstance(crop, bool) or not isinstance(crop, int) or crop < 0:
        raise ValueError(f"real-photo crop must be an integer >= 0 (0: whole photos), got {crop!r}")
    rows = []
    paths = _photo_paths(inputs)
    for i, path in enumerate(paths):
        t0 = time.perf_counter()
        lq = _centre_crop(read_image(path).rgb, crop)
        sr = np.asarray(upscale(lq), dtype=np.float32)
        expected = (lq.shape[0] * scale, lq.shape[1] * scale, 3)
        if sr.shape != expected:
            raise ValueError(f"{path}: the upscaler returned shape {sr.shape} for an LR of shape {lq.shape}; "
                             f"expected {expected} (x{scale})")
        if not np.isfinite(sr).all():
            raise ValueError(f"{path}: the upscaler returned NaN or infinite values")
        sr = np.clip(sr, 0.0, 1.0)
        try:
            value: float | None = niqe(sr, crop_border=scale)
        except ValueError:  # too small for two 96x96 blocks
            value = None
        rows.append({"name": path.stem, "file": str(path), "lr_size": [int(lq.shape[1]), int(lq.shape[0])],
                     "niqe": value})
        if progress:
            print(f"real photos [{i + 1}/{len(paths)}] {path.name}: NIQE {_fmt(value, 'niqe')} "
                  f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)
    return {"inputs": [str(p) for p in inputs], "crop": crop, "images": rows,
            "mean": {"niqe": _mean([r["niqe"] for r in rows])}}


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def evaluate_sr(
    upscale: Upscaler | str,
    folders: Sequence[str],
    scale: int = 4,
    metrics: Sequence[str] = METRICS,
    lpips_weights: str | None = None,
    progress: bool = False,
    degradation: str | None = None,
    degradation_seed: int = 0,
    real_photos: Sequence[str | os.PathLike] = (),
    real_crop: int = REAL_CROP,
) -> dict[str, Any]:
    """Evaluate ``upscale`` (``lq (H, W, 3) float32 [0, 1] -> (sH, sW, 3)``, or ``"bicubic"``) on each folder.

    Returns ``{"method", "scale", "protocol", "degradation", "metrics" (those that ran), "skipped" {metric:
    reason}, "datasets": [{"name" (folder basename), "folder", "images": [{"name", <metric>: float | None}],
    "mean": {<metric>: float | None}}]}``. A value is None where the image is too small for that metric (NIQE
    needs two 96x96 blocks); means skip those. LPIPS is skipped with a note on stderr (not an error) when no
    AlexNet weights are found; an explicit ``lpips_weights`` file that does not exist is an error.

    ``degradation`` (e.g. ``"realesrgan"``): the LR of each image is the degraded HR, seeded by
    ``image_seed(degradation_seed, name)`` (each row records its seed); ``"degradation"`` then holds ``{"type",
    "seed", "seed_rule", "options"}`` (None for the clean protocol) and each data set's name gets
    `` [<type> seed <seed>]`` appended, so degraded numbers are never read as clean ones. ``real_photos`` (files
    or folders): :func:`evaluate_real_photos` of the same method, under ``"real_photos"``.
    """
    _check_degradation(degradation, degradation_seed)
    if isinstance(upscale, str):
        if upscale != "bicubic":
            raise ValueError(f"upscale must be a callable or 'bicubic', got '{upscale}'")
        fn: Upscaler = bicubic_upscaler(scale)
    elif callable(upscale):
        fn = upscale
    else:
        raise TypeError(f"upscale must be a callable or 'bicubic', got {type(upscale).__name__}")
    if isinstance(folders, (str, os.PathLike)):
        folders = [str(folders)]
    if not folders:
        raise ValueError("folders must list at least one benchmark folder")
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale!r}")
    wanted = list(dict.fromkeys(metrics))
    unknown = [m for m in wanted if m not in METRICS]
    if unknown or not wanted:
        raise ValueError(f"unknown metric(s) {unknown or wanted}; valid: {', '.join(METRICS)}")
    for folder in folders:
        list_images(folder)  # fail before any work when a folder is missing or empty
    _photo_paths(real_photos)  # the same for real photos

    skipped: dict[str, str] = {}
    lpips_metric = None
    if "lpips" in wanted:
        from restore.metrics.lpips import LPIPSMetric, find_alexnet_weights

        if lpips_weights is None and find_alexnet_weights() is None:
            skipped["lpips"] = ("no ImageNet AlexNet weights found (pass --lpips-weights PATH or set "
                                "RESTORE_ALEXNET); LPIPS not computed")
            print(f"note: {skipped['lpips']}", file=sys.stderr)
        else:
            lpips_metric = LPIPSMetric(lpips_weights)
    ran = [m for m in wanted if m not in skipped]

    datasets = []
    for folder in folders:
        data = BenchmarkDataset(str(folder), scale=scale)
        name = Path(folder).resolve().name or str(folder)
        if degradation is not None:
            name = f"{name} [{degradation} seed {degradation_seed}]"
        rows = []
        for i in range(len(data)):
            t0 = time.perf_counter()
            item = data[i]
            lq, gt = to_numpy(item["lq"]), to_numpy(item["gt"])
            row: dict[str, Any] = {"name": item["name"]}
            if degradation is not None:
                row["seed"] = image_seed(degradation_seed, item["name"])
                lq = _degraded_lr(gt, scale, row["seed"], degradation, f"{folder}/{item['name']}")
            sr = np.asarray(fn(lq))
            if sr.shape != gt.shape:
                raise ValueError(f"{folder}/{item['name']}: the upscaler returned shape {sr.shape} for an LR of shape "
                                 f"{lq.shape}; expected {gt.shape} (x{scale})")
            if not np.isfinite(sr).all():
                raise ValueError(f"{folder}/{item['name']}: the upscaler returned NaN or infinite values")
            sr = np.clip(sr.astype(np.float32), 0.0, 1.0)
            if "psnr" in ran:
                row["psnr"] = psnr(sr, gt, crop_border=scale, y_channel=True)
            if "ssim" in ran:
                row["ssim"] = ssim(sr, gt, crop_border=scale, y_channel=True)
            if "niqe" in ran:
                try:
                    row["niqe"] = niqe(sr, crop_border=scale)
                except ValueError:  # too small for two 96x96 blocks
                    row["niqe"] = None
            if "lpips" in ran and lpips_metric is not None:
                row["lpips"] = lpips_metric(sr, gt)
            rows.append(row)
            if progress:
                scores = " ".join(f"{_HEADERS[m]} {_fmt(row.get(m), m)}" for m in ran)
                print(f"{name} [{i + 1}/{len(data)}] {item['name']}: {scores} ({time.perf_counter() - t0:.1f} s)",
                      file=sys.stderr, flush=True)
        datasets.append({"name": name, "folder": str(folder), "images": rows,
                         "mean": {m: _mean([r.get(m) for r in rows]) for m in ran}})
    lr = "MATLAB bicubic (antialiased) of the mod-cropped HR, clipped"
    described = None
    if degradation is not None:
        lr = (f"{degradation} degradation of the mod-cropped HR (restore.data.degradations.degrade_images, CPU), "
              f"seed {degradation_seed}; not the clean bicubic LR")
        described = {"type": degradation, "seed": degradation_seed,
                     "seed_rule": "per image: first 63 bits of sha256('<seed>/<file stem>'), in each row's 'seed'",
                     "options": degradation_spec(degradation)}
    result = {
        "method": getattr(fn, "__name__", type(fn).__name__),
        "scale": scale,
        "protocol": {"crop_border": scale, "y_channel": True, "quantised": "8-bit", "lr": lr,
                     "lpips": "alex v0.1, RGB" if "lpips" in ran else None},
        "degradation": described,
        "metrics": ran,
        "skipped": skipped,
        "datasets": datasets,
    }
    if real_photos:
        result["real_photos"] = evaluate_real_photos(fn, real_photos, scale, real_crop, progress)
    return result


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{_DIGITS[metric]}f}"


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of the per-folder means: ``| dataset | PSNR | SSIM | NIQE | LPIPS |`` ("-" = not run),
    followed by a line stating the protocol and any skipped metric."""
    lines = ["| dataset | PSNR | SSIM | NIQE | LPIPS |", "|---|---|---|---|---|"]
    for ds in result["datasets"]:
        cells = [_fmt(ds["mean"].get(m), m) for m in METRICS]
        lines.append(f"| {ds['name']} | " + " | ".join(cells) + " |")
    real = result.get("real_photos")
    if real is not None:
        count = sum(r["niqe"] is not None for r in real["images"])
        images = f"{count} image{'' if count == 1 else 's'}"
        lines.append(f"| real photos ({images}, NIQE only) | - | - | {_fmt(real['mean']['niqe'], 'niqe')} | - |")
    scale = result["scale"]
    lines += ["", f"{result['method']} x{scale}; PSNR/SSIM on Y, {scale}-pixel border cropped, 8-bit; NIQE on Y; "
                  "LPIPS-alex on RGB."]
    deg = result.get("degradation")
    if deg:
        lines.append(f"LR: {deg['type']} degradation of the HR, seed {deg['seed']} (one seed per image from its file "
                     "name), not the clean bicubic LR.")
    if real is not None:
        crop = f"centre {real['crop']}x{real['crop']} LR crops" if real["crop"] else "whole photos"
        lines.append(f"Real photos: NIQE of the outputs of {', '.join(real['inputs'])} ({crop}, no degradation).")
    for metric, reason in result.get("skipped", {}).items():
        lines.append(f"{_HEADERS[metric]} skipped: {reason}")
    return "\n".join(lines)


def _finite(obj: Any) -> Any:
    """JSON has no inf/NaN: write them as null (PSNR is inf for a perfect reconstruction)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(result: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the whole result (strict JSON: non-finite values as null) atomically, creating parent folders."""
    text = json.dumps(_finite(result), indent=2, allow_nan=False)
    atomic_write_text(Path(path), text + "\n")


def write_csv(result: dict[str, Any], path: str | os.PathLike) -> None:
    """One row per image: ``dataset,image,<metric>...`` for the metrics that ran (empty cell = not available)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["dataset", "image", *result["metrics"]])
    for ds in result["datasets"]:
        for row in ds["images"]:
            cells = []
            for m in result["metrics"]:
                v = row.get(m)
                cells.append("" if v is None else repr(float(v)))
            writer.writerow([ds["name"], row["name"], *cells])
    atomic_write_text(Path(path), buf.getvalue())
