"""restore eval --degradation: benchmark LR made by degrading the HR with fixed per-image seeds, and NIQE on real
photos; the results always say which degradation and seed they come from."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from restore.cli import main
from restore.data.degradations import degrade_images
from restore.data.io import read_image, to_numpy, to_tensor, write_image
from restore.data.sr import BenchmarkDataset, imresize
from restore.evaluation.sr import (
    REAL_CROP,
    default_real_photos,
    evaluate_real_photos,
    evaluate_sr,
    format_table,
    image_seed,
    write_json,
)
from restore.metrics.niqe import niqe

FIDELITY = ("psnr", "ssim")


@pytest.fixture()
def bench(tmp_path: Path, shared: Path) -> Path:
    """Three 128x136 crops of real Set5 photos."""
    folder = tmp_path / "Tiny"
    for name in ("baby", "bird", "head"):
        img = read_image(shared / f"data/sr-bench/Set5/{name}.png").rgb
        write_image(folder / f"{name}.png", img[40:168, 40:176])
    return folder


@pytest.fixture()
def photo(tmp_path: Path, shared: Path) -> Path:
    """One real photo (a 300x340 crop of a plasma photo), as a real-world input."""
    img = read_image(shared / "data/sr-train/plasma_photos/Kite.jpg").rgb
    path = tmp_path / "photos" / "kite.png"
    write_image(path, img[600:900, 1000:1340])
    return path


def recording_bicubic(seen: dict[int, np.ndarray]):
    """The bicubic baseline, remembering every LR it was given (by call order)."""

    def upscale(lq: np.ndarray) -> np.ndarray:
        seen[len(seen)] = lq.copy()
        return np.clip(imresize(lq, 4), 0, 1)

    upscale.__name__ = "bicubic"
    return upscale


def test_seed_rule_is_sha256_of_seed_and_file_stem():
    digest = hashlib.sha256(b"7/baby").digest()
    assert image_seed(7, "baby") == int.from_bytes(digest[:8], "big") >> 1
    assert 0 <= image_seed(0, "baby") < 2**63 and image_seed(0, "baby") != image_seed(1, "baby")
    assert image_seed(0, "baby") != image_seed(0, "bird")


def test_degraded_lr_is_the_degraded_hr_and_scores_lower_than_clean(bench: Path):
    """The upscaler sees exactly degrade_images(HR, seed of the image); bicubic then loses PSNR/SSIM on every image."""
    seen: dict[int, np.ndarray] = {}
    degraded = evaluate_sr(recording_bicubic(seen), [str(bench)], metrics=FIDELITY, degradation="realesrgan",
                           degradation_seed=0)
    clean = evaluate_sr("bicubic", [str(bench)], metrics=FIDELITY)
    data = BenchmarkDataset(str(bench), scale=4)
    for i, row in enumerate(degraded["datasets"][0]["images"]):
        item = data[i]
        assert row["name"] == item["name"] and row["seed"] == image_seed(0, item["name"])
        expected = to_numpy(degrade_images(item["gt"][None], 4, [row["seed"]])[0])
        np.testing.assert_array_equal(seen[i], expected)
        assert not np.allclose(seen[i], to_numpy(item["lq"]), atol=1 / 255)  # not the bicubic LR
    for d_row, c_row in zip(degraded["datasets"][0]["images"], clean["datasets"][0]["images"], strict=True):
        assert d_row["psnr"] < c_row["psnr"] and d_row["ssim"] < c_row["ssim"]
    assert degraded["datasets"][0]["mean"]["psnr"] < clean["datasets"][0]["mean"]["psnr"] - 1


def test_results_name_the_degradation_and_seed(bench: Path, tmp_path: Path):
    result = evaluate_sr("bicubic", [str(bench)], metrics=FIDELITY, degradation="realesrgan", degradation_seed=3)
    deg = result["degradation"]
    assert deg["type"] == "realesrgan" and deg["seed"] == 3 and "sha256" in deg["seed_rule"]
    assert deg["options"]["type"] == "realesrgan" and deg["options"]["jpeg_range"] == [30.0, 95.0]
    assert result["datasets"][0]["name"] == "Tiny [realesrgan seed 3]"
    assert "realesrgan" in result["protocol"]["lr"] and "seed 3" in result["protocol"]["lr"]
    table = format_table(result)
    assert "| Tiny [realesrgan seed 3] |" in table
    assert "LR: realesrgan degradation of the HR, seed 3" in table and "not the clean bicubic LR" in table
    write_json(result, tmp_path / "r.json")
    stored = json.loads((tmp_path / "r.json").read_text())
    assert stored["degradation"]["seed"] == 3 and stored["datasets"][0]["images"][0]["seed"] == image_seed(3, "baby")
    clean = evaluate_sr("bicubic", [str(bench)], metrics=("psnr",))
    assert clean["degradation"] is None and clean["datasets"][0]["name"] == "Tiny"
    assert "LR:" not in format_table(clean)


def test_same_seed_same_numbers_other_seed_other_numbers(bench: Path):
    def run(seed: int) -> list[dict]:
        return evaluate_sr("bicubic", [str(bench)], metrics=FIDELITY, degradation="realesrgan",
                           degradation_seed=seed)["datasets"][0]["images"]

    first = run(0)
    assert run(0) == first
    other = run(1)
    assert all(a["psnr"] != b["psnr"] for a, b in zip(first, other, strict=True))


def test_an_image_degrades_the_same_alone_or_among_others(bench: Path, tmp_path: Path):
    """Seeds come from file names, so adding or removing images changes no other image's LR."""
    alone = tmp_path / "Alone"
    alone.mkdir()
    (alone / "head.png").write_bytes((bench / "head.png").read_bytes())
    full = evaluate_sr("bicubic", [str(bench)], metrics=FIDELITY, degradation="realesrgan")
    single = evaluate_sr("bicubic", [str(alone)], metrics=FIDELITY, degradation="realesrgan")
    assert single["datasets"][0]["images"] == [r for r in full["datasets"][0]["images"] if r["name"] == "head"]


def test_bad_degradation_values_are_clear_errors(bench: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="degradation 'foo' is not known; valid: realesrgan"):
        evaluate_sr("bicubic", [str(bench)], metrics=FIDELITY, degradation="foo")
    with pytest.raises(ValueError, match="degradation seed must be an integer >= 0, got -1"):
        evaluate_sr("bicubic", [str(bench)], metrics=FIDELITY, degradation="realesrgan", degradation_seed=-1)
    small = tmp_path / "Small"
    write_image(small / "tiny.png", np.full((32, 32, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"Small/tiny: degrade_images: a 32x32 \(WxH\) batch is too small"):
        evaluate_sr("bicubic", [str(small)], metrics=FIDELITY, degradation="realesrgan")


def test_niqe_on_real_photos_is_niqe_of_the_upscaled_centre_crop(photo: Path):
    result = evaluate_real_photos(lambda lq: np.clip(imresize(lq, 4), 0, 1), [photo.parent], scale=4, crop=100)
    (row,) = result["images"]
    img = read_image(photo).rgb  # 300 x 340
    crop = img[100:200, 120:220]
    assert row["name"] == "kite" and row["lr_size"] == [100, 100] and result["crop"] == 100
    assert row["niqe"] == pytest.approx(niqe(np.clip(imresize(crop, 4), 0, 1), crop_border=4))
    assert result["mean"]["niqe"] == row["niqe"]
    whole = evaluate_real_photos(lambda lq: np.clip(imresize(lq, 4), 0, 1), [photo], scale=4, crop=0)
    assert whole["images"][0]["lr_size"] == [340, 300]
    with pytest.raises(FileNotFoundError, match="real photos: .*nothing.png is neither an image file nor a folder"):
        evaluate_real_photos(lambda lq: lq, [photo.parent / "nothing.png"], scale=4)


def test_default_real_photos_are_the_sr_examples_and_plasma_photos(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("RESTORE_SHARED", str(tmp_path / "elsewhere"))
    paths = default_real_photos()
    assert [p.name for p in paths] == ["sr_scene.png", "plasma_photos"]
    assert paths[-1] == tmp_path / "elsewhere" / "data" / "sr-train" / "plasma_photos"


def test_cli_degraded_eval_records_everything_and_reports_real_photos(bench: Path, photo: Path, tmp_path: Path,
                                                                     capsys):
    out = tmp_path / "e.json"
    argv = ["eval", "--model", "bicubic", "--data", str(bench), "--no-lpips", "--degradation", "realesrgan",
            "--degradation-seed", "5", "--real-photos", str(photo), "--real-crop", "96", "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| Tiny [realesrgan seed 5] |" in text and "| real photos (1 image, NIQE only) |" in text
    result = json.loads(out.read_text())
    assert result["degradation"]["seed"] == 5 and result["real_photos"]["crop"] == 96
    assert result["real_photos"]["images"][0]["lr_size"] == [96, 96]


def test_cli_default_real_photos_that_are_missing_are_skipped_with_a_note(bench: Path, tmp_path: Path, monkeypatch,
                                                                          capsys):
    import restore.evaluation.sr as sr

    monkeypatch.setattr(sr, "default_real_photos", lambda: [tmp_path / "no_photos_here"])
    out = tmp_path / "e.json"
    argv = ["eval", "--model", "bicubic", "--data", str(bench), "--no-lpips", "--degradation", "realesrgan",
            "--json", str(out)]
    assert main(argv) == 0
    assert f"note: real photos {tmp_path / 'no_photos_here'} not found; NIQE on them skipped" in capsys.readouterr().err
    result = json.loads(out.read_text())
    assert "real_photos" not in result and result["degradation"]["seed"] == 0


@pytest.mark.parametrize(("extra", "message"), [
    (["--degradation", "foo"], "error: --degradation 'foo' is not a known degradation; valid: realesrgan"),
    (["--degradation-seed", "1"], "error: --degradation-seed needs --degradation"),
    (["--degradation", "realesrgan", "--degradation-seed", "-2"], "error: --degradation-seed must be >= 0, got -2"),
    (["--real-photos", "x.png", "--no-real-photos"], "error: --real-photos and --no-real-photos contradict"),
    (["--real-crop", "-1"], "error: --real-crop must be >= 0"),
    (["--real-photos", "{tmp}/none.png"], "error: real photos: {tmp}/none.png is neither an image file nor a folder"),
])
def test_cli_bad_values_are_one_error_line(bench: Path, tmp_path: Path, capsys, extra, message):
    argv = ["eval", "--model", "bicubic", "--data", str(bench), "--no-lpips",
            *[a.format(tmp=tmp_path) for a in extra]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "Traceback" not in err


def test_cli_real_crop_default_is_the_library_default():
    from restore.cli import build_parser

    args = build_parser().parse_args(["eval", "--model", "bicubic", "--data", "x"])
    assert args.real_crop == REAL_CROP and args.degradation is None and args.degradation_seed is None


def test_degrade_then_to_tensor_round_trip_is_exact(bench: Path):
    """The evaluation's numpy <-> tensor hops do not change the degraded LR (8-bit levels stay exact)."""
    gt = BenchmarkDataset(str(bench), scale=4)[0]["gt"]
    lq = degrade_images(gt[None], 4, [image_seed(0, "baby")])[0]
    np.testing.assert_array_equal(to_tensor(to_numpy(lq)).numpy(), lq.numpy())
    assert np.allclose(lq.numpy() * 255, np.round(lq.numpy() * 255), atol=1e-4)
