"""evaluate_sr: the published bicubic Set5 figures, output formats, LPIPS skipping, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from restore.data.io import read_image, write_image
from restore.data.sr import BenchmarkDataset
from restore.evaluation.sr import evaluate_sr, format_table, write_csv, write_json


def test_bicubic_set5_x4_reproduces_published_psnr_ssim(shared: Path) -> None:
    """Bicubic x4 on Set5, Y channel, 4-pixel border: 28.42 dB / 0.8104 in the SR literature (e.g. SRCNN, EDSR)."""
    result = evaluate_sr("bicubic", [str(shared / "data/sr-bench/Set5")], scale=4, metrics=("psnr", "ssim"))
    (ds,) = result["datasets"]
    assert ds["name"] == "Set5" and len(ds["images"]) == 5
    assert ds["mean"]["psnr"] == pytest.approx(28.42, abs=0.02)
    assert ds["mean"]["ssim"] == pytest.approx(0.8104, abs=0.02)
    assert ds["mean"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in ds["images"]]))
    assert result["metrics"] == ["psnr", "ssim"] and result["method"] == "bicubic"


@pytest.fixture()
def small_bench(tmp_path: Path, shared: Path) -> Path:
    """Two 200x216 crops of real photos (big enough for NIQE's two 96x96 blocks after the border crop)."""
    folder = tmp_path / "Mini"
    for name in ("baby", "bird"):
        img = read_image(shared / f"data/sr-bench/Set5/{name}.png").rgb
        write_image(folder / f"{name}.png", img[:200, :216])
    return folder


def _oracle(folder: Path, scale: int):
    """An 'upscaler' that returns the ground truth for image 0 and bicubic otherwise (PSNR inf for image 0)."""
    ds = BenchmarkDataset(str(folder), scale=scale)
    first = ds[0]
    key, gt = first["lq"].numpy().tobytes(), first["gt"].permute(1, 2, 0).numpy()

    def upscale(lq: np.ndarray) -> np.ndarray:
        if np.ascontiguousarray(lq.transpose(2, 0, 1)).tobytes() == key:
            return gt
        return np.repeat(np.repeat(lq, scale, axis=0), scale, axis=1)

    return upscale


def test_outputs_table_json_csv(small_bench: Path, tmp_path: Path) -> None:
    result = evaluate_sr(_oracle(small_bench, 4), [str(small_bench)], scale=4, metrics=("psnr", "ssim", "niqe"))
    (ds,) = result["datasets"]
    rows = ds["images"]
    assert [r["name"] for r in rows] == ["baby", "bird"]
    assert rows[0]["psnr"] == float("inf") and rows[0]["ssim"] == pytest.approx(1.0)
    assert np.isfinite(rows[1]["psnr"]) and rows[1]["psnr"] < 40 and all(np.isfinite(r["niqe"]) for r in rows)

    table = format_table(result)
    lines = table.splitlines()
    assert lines[0] == "| dataset | PSNR | SSIM | NIQE | LPIPS |"
    assert lines[2] == f"| Mini | inf | {ds['mean']['ssim']:.4f} | {ds['mean']['niqe']:.3f} | - |"

    write_json(result, tmp_path / "out/r.json")
    back = json.loads((tmp_path / "out/r.json").read_text())
    assert back["datasets"][0]["images"][0]["psnr"] is None  # strict JSON: inf written as null
    assert back["datasets"][0]["images"][1]["psnr"] == rows[1]["psnr"]
    assert back["metrics"] == ["psnr", "ssim", "niqe"] and back["scale"] == 4

    write_csv(result, tmp_path / "out/r.csv")
    with open(tmp_path / "out/r.csv", newline="") as f:
        table_rows = list(csv.reader(f))
    assert table_rows[0] == ["dataset", "image", "psnr", "ssim", "niqe"]
    assert [r[:2] for r in table_rows[1:]] == [["Mini", "baby"], ["Mini", "bird"]]
    assert float(table_rows[1][2]) == float("inf")
    assert float(table_rows[2][3]) == rows[1]["ssim"]  # full precision
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["r.csv", "r.json"]  # no temp files


def test_lpips_is_skipped_with_a_note_when_no_weights(small_bench: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import restore.metrics.lpips as lp

    monkeypatch.delenv(lp.ENV_VAR, raising=False)
    monkeypatch.setattr(lp, "find_alexnet_weights", lambda: None)
    result = evaluate_sr("bicubic", [str(small_bench)], metrics=("psnr", "lpips"))
    assert result["metrics"] == ["psnr"] and "lpips" in result["skipped"]
    assert "lpips" not in result["datasets"][0]["images"][0]
    assert "no ImageNet AlexNet weights found" in capsys.readouterr().err
    assert "LPIPS skipped" in format_table(result)
    with pytest.raises(FileNotFoundError, match=r"missing\.pth"):  # an explicit file must exist
        evaluate_sr("bicubic", [str(small_bench)], metrics=("lpips",), lpips_weights=str(small_bench / "missing.pth"))


def test_lpips_runs_with_explicit_weights(small_bench: Path, shared: Path) -> None:
    weights = shared / "weights/alexnet_imagenet_features.pth"
    if not weights.is_file():
        pytest.skip(f"{weights} not found")
    result = evaluate_sr("bicubic", [str(small_bench)], metrics=("lpips",), lpips_weights=str(weights))
    values = [r["lpips"] for r in result["datasets"][0]["images"]]
    assert result["metrics"] == ["lpips"] and all(0 < v < 1 for v in values)


def test_evaluate_errors(small_bench: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['fid'\]; valid: psnr, ssim, niqe, lpips"):
        evaluate_sr("bicubic", [str(small_bench)], metrics=("psnr", "fid"))
    with pytest.raises(ValueError, match="callable or 'bicubic', got 'lanczos'"):
        evaluate_sr("lanczos", [str(small_bench)])
    with pytest.raises(FileNotFoundError, match=r"nowhere"):
        evaluate_sr("bicubic", [str(tmp_path / "nowhere")])
    with pytest.raises(ValueError, match=r"Mini/baby: the upscaler returned shape \(50, 54, 3\) .*expected \(200, 216"):
        evaluate_sr(lambda lq: lq, [str(small_bench)], metrics=("psnr",))
