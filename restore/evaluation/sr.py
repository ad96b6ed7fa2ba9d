"""Benchmark evaluation of an SR method (a model, or MATLAB bicubic) on folders of HR images.

Protocol (the one SR papers report): HR = the image cropped to a multiple of the scale; LR = MATLAB bicubic
downscaling of it, clipped to [0, 1]; the method's output and the HR are quantised to 8 bits; PSNR and SSIM on the
Y channel of MATLAB's YCbCr with ``scale`` pixels dropped on every side; NIQE (no-reference, Y channel, same crop)
of the output; LPIPS-alex of output vs HR on RGB. Per-image rows and per-folder means (of the per-image values).
"""

from __future__ import annotations

import csv
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

from restore.data.io import list_images, to_numpy
from restore.data.sr import BenchmarkDataset, imresize
from restore.files import atomic_write_text
from restore.metrics.fidelity import psnr, ssim
from restore.metrics.niqe import niqe

METRICS: tuple[str, ...] = ("psnr", "ssim", "niqe", "lpips")
_HEADERS = {"psnr": "PSNR", "ssim": "SSIM", "niqe": "NIQE", "lpips": "LPIPS"}
_DIGITS = {"psnr": 2, "ssim": 4, "niqe": 3, "lpips": 4}

Upscaler = Callable[[np.ndarray], np.ndarray]


def bicubic_upscaler(scale: int) -> Upscaler:
    """MATLAB bicubic upscaling ``lq (H, W, 3) -> (sH, sW, 3)``, clipped to [0, 1]: the usual baseline."""

    def upscale(lq: np.ndarray) -> np.ndarray:
        return np.clip(imresize(lq, scale), 0.0, 1.0)

    upscale.__name__ = "bicubic"
    return upscale


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
) -> dict[str, Any]:
    """Evaluate ``upscale`` (``lq (H, W, 3) float32 [0, 1] -> (sH, sW, 3)``, or ``"bicubic"``) on each folder.

    Returns ``{"method", "scale", "protocol", "metrics" (those that ran), "skipped" {metric: reason},
    "datasets": [{"name" (folder basename), "folder", "images": [{"name", <metric>: float | None}],
    "mean": {<metric>: float | None}}]}``. A value is None where the image is too small for that metric (NIQE
    needs two 96x96 blocks); means skip those. LPIPS is skipped with a note on stderr (not an error) when no
    AlexNet weights are found; an explicit ``lpips_weights`` file that does not exist is an error.
    """
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
        rows = []
        for i in range(len(data)):
            t0 = time.perf_counter()
            item = data[i]
            lq, gt = to_numpy(item["lq"]), to_numpy(item["gt"])
            sr = np.asarray(fn(lq))
            if sr.shape != gt.shape:
                raise ValueError(f"{folder}/{item['name']}: the upscaler returned shape {sr.shape} for an LR of shape "
                                 f"{lq.shape}; expected {gt.shape} (x{scale})")
            if not np.isfinite(sr).all():
                raise ValueError(f"{folder}/{item['name']}: the upscaler returned NaN or infinite values")
            sr = np.clip(sr.astype(np.float32), 0.0, 1.0)
            row: dict[str, Any] = {"name": item["name"]}
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
    return {
        "method": getattr(fn, "__name__", type(fn).__name__),
        "scale": scale,
        "protocol": {"crop_border": scale, "y_channel": True, "quantised": "8-bit",
                     "lr": "MATLAB bicubic (antialiased) of the mod-cropped HR, clipped",
                     "lpips": "alex v0.1, RGB" if "lpips" in ran else None},
        "metrics": ran,
        "skipped": skipped,
        "datasets": datasets,
    }


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
    scale = result["scale"]
    lines += ["", f"{result['method']} x{scale}; PSNR/SSIM on Y, {scale}-pixel border cropped, 8-bit; NIQE on Y; "
                  "LPIPS-alex on RGB."]
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
