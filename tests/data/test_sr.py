"""SR datasets and transforms: shapes, ranges, determinism, alignment, MATLAB resize convention, errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from restore.data.io import ImageReadError, read_image, to_numpy, write_image
from restore.data.sr import (
    BenchmarkDataset,
    HRFolderDataset,
    PairedFolderDataset,
    downscale,
    imresize,
    mod_crop,
)
from restore.data.transforms import augment, paired_random_crop
from restore.registry import DATASETS, OptionValueError


def _rand(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def _quantised(img: np.ndarray) -> np.ndarray:
    return (np.rint(img * 255) / 255).astype(np.float32)


# ------------------------------------------------------------------------------------------------ resize, crop
def test_imresize_follows_matlab_coordinates_on_a_linear_ramp() -> None:
    """Bicubic (Keys, a = -0.5) reproduces linear functions, so away from the borders the output samples the
    ramp at MATLAB's input coordinate u = x / s + 0.5 (1 - 1 / s) (x, u 1-based): checks the convention."""
    n = 64
    ramp = (np.arange(1, n + 1, dtype=np.float64) / 100.0)[None, :, None].repeat(4, axis=0)  # f(u) = u / 100
    up = imresize(ramp, 2)[0, :, 0]
    x = np.arange(1, 2 * n + 1)
    np.testing.assert_allclose(up[8:-8], (x / 2 + 0.25)[8:-8] / 100, atol=1e-5)
    down = imresize(ramp, 0.5)[0, :, 0]  # antialiased: kernel widened to 8 taps, still symmetric and normalised
    x = np.arange(1, n // 2 + 1)
    np.testing.assert_allclose(down[4:-4], (2 * x - 0.5)[4:-4] / 100, atol=1e-5)
    assert imresize(ramp, 0.5).shape == (2, 32, 1) and imresize(ramp, 0.5).dtype == np.float32


def test_imresize_is_not_clipped_but_downscale_is() -> None:
    edge = np.zeros((16, 16, 3), np.float32)
    edge[:, 8:] = 1.0
    up = imresize(edge, 4)
    assert up.max() > 1.0 and up.min() < 0.0  # bicubic overshoot at a step edge
    lq = downscale(edge, 2)
    assert lq.shape == (8, 8, 3) and lq.min() >= 0.0 and lq.max() <= 1.0
    np.testing.assert_array_equal(lq, np.clip(imresize(edge, 0.5), 0, 1))


def test_downscale_by_3_has_exact_shape() -> None:
    gt = mod_crop(_rand(511, 301), 3)
    assert gt.shape == (510, 300, 3)
    assert downscale(gt, 3).shape == (170, 100, 3)


def test_mod_crop() -> None:
    img = _rand(10, 13)
    assert mod_crop(img, 4).shape == (8, 12, 3)
    np.testing.assert_array_equal(mod_crop(img, 4), img[:8, :12])
    with pytest.raises(ValueError, match="smaller than the scale"):
        mod_crop(_rand(3, 10), 4)


# ------------------------------------------------------------------------------------------------- transforms
def test_augment_gives_eight_distinct_symmetries_applied_identically() -> None:
    a = np.arange(12).reshape(3, 4, 1)
    b = a * 10
    seen = set()
    for h in (False, True):
        for v in (False, True):
            for r in (False, True):
                x, y = augment([a, b], hflip=h, vflip=v, rot90=r)
                np.testing.assert_array_equal(y, x * 10)
                assert x.shape == ((4, 3, 1) if r else (3, 4, 1)) and x.flags.c_contiguous
                seen.add(x.tobytes() + bytes(x.shape))
    assert len(seen) == 8


def test_paired_random_crop_is_aligned_and_checks_sizes() -> None:
    rng = np.random.default_rng(0)
    lq = rng.random((20, 30, 3))
    gt = np.repeat(np.repeat(lq, 4, axis=0), 4, axis=1)  # nearest-neighbour x4: alignment is exact
    for _ in range(5):
        g, q = paired_random_crop(gt, lq, 32, 4, rng)
        assert g.shape == (32, 32, 3) and q.shape == (8, 8, 3)
        np.testing.assert_array_equal(g, np.repeat(np.repeat(q, 4, axis=0), 4, axis=1))
    with pytest.raises(ValueError, match=r"pic\.png: GT is 119x80 .* LQ is 30x20"):
        paired_random_crop(gt[:, :119], lq, 32, 4, rng, name="pic.png")
    with pytest.raises(ValueError, match=r"LQ is 30x20 .*smaller than the 24x24 LQ crop"):
        paired_random_crop(gt, lq, 96, 4, rng)
    with pytest.raises(ValueError, match="not a multiple of scale 4"):
        paired_random_crop(gt, lq, 30, 4, rng)


# ------------------------------------------------------------------------------------------------ HR folder
@pytest.fixture()
def small_hr(tmp_path: Path) -> Path:
    folder = tmp_path / "hr"
    for i in range(3):
        write_image(folder / f"img{i}.png", _rand(40, 52, seed=i))
    return folder


def test_hr_folder_items_shapes_ranges_and_lq(small_hr: Path) -> None:
    ds = HRFolderDataset([str(small_hr)], scale=4, gt_size=16)
    assert len(ds) == 3
    item = ds[1]
    assert item["gt"].shape == (3, 16, 16) and item["lq"].shape == (3, 4, 4)
    assert item["gt"].dtype == torch.float32 and item["lq"].dtype == torch.float32
    assert item["path"].endswith("img1.png")
    for key in ("gt", "lq"):
        assert 0.0 <= float(item[key].min()) and float(item[key].max()) <= 1.0
    gt = to_numpy(item["gt"])
    np.testing.assert_array_equal(to_numpy(item["lq"]), np.clip(imresize(gt, 0.25), 0, 1))


def test_hr_folder_crop_comes_from_the_image(small_hr: Path) -> None:
    ds = HRFolderDataset([str(small_hr)], scale=2, gt_size=8, flip=False, rotate=False)
    hr = read_image(small_hr / "img2.png").rgb
    gt = to_numpy(ds[2]["gt"])
    windows = np.lib.stride_tricks.sliding_window_view(hr, (8, 8, 3))[:, :, 0]
    matches = np.argwhere((windows == gt).all(axis=(2, 3, 4)))
    assert len(matches) == 1


def test_hr_folder_is_deterministic_per_seed_epoch_index(small_hr: Path) -> None:
    a = HRFolderDataset([str(small_hr)], gt_size=16, seed=3)
    b = HRFolderDataset([str(small_hr)], gt_size=16, seed=3)
    _ = b[2], b[0]  # access order must not matter
    for i in range(3):
        assert torch.equal(a[i]["gt"], b[i]["gt"]) and torch.equal(a[i]["lq"], b[i]["lq"])
    first = a[0]["gt"]
    a.set_epoch(1)
    assert not torch.equal(a[0]["gt"], first)
    a.set_epoch(0)
    assert torch.equal(a[0]["gt"], first)
    c = HRFolderDataset([str(small_hr)], gt_size=16, seed=4)
    assert not torch.equal(c[0]["gt"], first)


def test_hr_folder_real_photos(shared: Path) -> None:
    ds = HRFolderDataset([str(shared / "data/sr-train/sun_hays80")], scale=4, gt_size=64, seed=0)
    assert len(ds) == 80
    item = ds[5]
    assert item["gt"].shape == (3, 64, 64) and item["lq"].shape == (3, 16, 16)
    assert 0.0 <= float(item["gt"].min()) and float(item["gt"].max()) <= 1.0
    again = HRFolderDataset([str(shared / "data/sr-train/sun_hays80")], scale=4, gt_size=64, seed=0)[5]
    assert torch.equal(item["gt"], again["gt"]) and torch.equal(item["lq"], again["lq"])
    np.testing.assert_array_equal(to_numpy(item["lq"]), np.clip(imresize(to_numpy(item["gt"]), 0.25), 0, 1))


def test_hr_smaller_than_gt_size_names_file_and_sizes(tmp_path: Path) -> None:
    write_image(tmp_path / "tiny.png", _rand(20, 30))
    ds = HRFolderDataset([str(tmp_path)], gt_size=32)
    with pytest.raises(ValueError, match=r"tiny\.png: image is 30x20 .*gt_size 32x32"):
        ds[0]


def test_hr_folder_option_errors(tmp_path: Path, small_hr: Path) -> None:
    with pytest.raises(OptionValueError, match=r"gt_size must be a multiple of scale 4, got 30") as err:
        HRFolderDataset([str(small_hr)], gt_size=30)
    assert err.value.key == "gt_size"
    with pytest.raises(OptionValueError, match=r"roots must list at least one") as err:
        HRFolderDataset([])
    assert err.value.key == "roots"
    with pytest.raises(OptionValueError, match=r"roots .*missing_dir"):
        HRFolderDataset([str(tmp_path / "missing_dir")])
    with pytest.raises(OptionValueError, match=r"seed must be an integer >= 0, got -1"):
        HRFolderDataset([str(small_hr)], seed=-1)
    with pytest.raises(OptionValueError, match=r"gt_size_typo is not an option"):
        DATASETS.build_checked("sr_hr_folder", {"roots": [str(small_hr)], "gt_size_typo": 3})
    assert DATASETS.get("sr_hr_folder") is HRFolderDataset


def test_skip_bad_warns_once_and_uses_next_image(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", _rand(20, 20, seed=1))
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n corrupt")
    write_image(tmp_path / "c.png", _rand(20, 20, seed=2))
    strict = HRFolderDataset([str(tmp_path)], gt_size=16)
    with pytest.raises(ImageReadError, match=r"b\.png: .*set skip_bad: true"):  # the message says the way out
        strict[1]
    ds = HRFolderDataset([str(tmp_path)], gt_size=16, skip_bad=True)
    with pytest.warns(RuntimeWarning, match=r"b\.png") as record:
        item = ds[1]
    assert len(record) == 1 and item["path"].endswith("c.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = ds[1]  # reported once per file
    assert torch.equal(again["gt"], item["gt"])
    fresh = HRFolderDataset([str(tmp_path)], gt_size=16, skip_bad=True)  # same result in a fresh instance
    with pytest.warns(RuntimeWarning):
        assert torch.equal(fresh[1]["gt"], item["gt"])


def test_skip_bad_with_every_file_bad_raises(tmp_path: Path) -> None:
    for name in ("x.png", "y.jpg"):
        (tmp_path / name).write_text("not an image")
    ds = HRFolderDataset([str(tmp_path)], gt_size=16, skip_bad=True)
    with pytest.warns(RuntimeWarning), pytest.raises(ValueError, match="every one of the 2 images"):
        ds[0]


# ------------------------------------------------------------------------------------------------ paired
def _write_pairs(tmp_path: Path, names: list[str], lq_suffix: str = "") -> tuple[Path, Path]:
    lq_dir, gt_dir = tmp_path / "lq", tmp_path / "gt"
    for i, name in enumerate(names):
        lq = _quantised(_rand(12, 10, seed=i))
        write_image(lq_dir / f"{name}{lq_suffix}.png", lq)
        write_image(gt_dir / f"{name}.png", np.repeat(np.repeat(lq, 4, axis=0), 4, axis=1))
    return lq_dir, gt_dir


def test_paired_crops_are_aligned_and_deterministic(tmp_path: Path) -> None:
    lq_dir, gt_dir = _write_pairs(tmp_path, ["a", "b"], lq_suffix="x4")  # DIV2K-style LR names
    ds = PairedFolderDataset(str(lq_dir), str(gt_dir), scale=4, gt_size=16, seed=1)
    assert len(ds) == 2
    for i in range(2):
        item = ds[i]
        gt, lq = to_numpy(item["gt"]), to_numpy(item["lq"])
        assert gt.shape == (16, 16, 3) and lq.shape == (4, 4, 3)
        np.testing.assert_array_equal(gt, np.repeat(np.repeat(lq, 4, axis=0), 4, axis=1))
    again = PairedFolderDataset(str(lq_dir), str(gt_dir), scale=4, gt_size=16, seed=1)
    assert torch.equal(again[1]["gt"], ds[1]["gt"])
    epochs = set()
    for e in range(6):
        ds.set_epoch(e)
        epochs.add(ds[0]["gt"].numpy().tobytes())
    assert len(epochs) > 1
    full = PairedFolderDataset(str(lq_dir), str(gt_dir), scale=4, gt_size=None)
    assert full[0]["gt"].shape == (3, 48, 40) and full[0]["lq"].shape == (3, 12, 10)


def test_paired_unmatched_stems_are_listed(tmp_path: Path) -> None:
    lq_dir, gt_dir = _write_pairs(tmp_path, ["a", "b"])
    for name in ("c", "d", "e", "f", "g", "h"):
        write_image(gt_dir / f"{name}.png", _rand(8, 8))
    with pytest.raises(OptionValueError, match=r"no LR image for 6 .*: c, d, e, f, g, \.\.\. \(1 more\)"):
        PairedFolderDataset(str(lq_dir), str(gt_dir))
    lq_dir2, gt_dir2 = _write_pairs(tmp_path / "two", ["a"])
    write_image(lq_dir2 / "zz.png", _rand(8, 8))
    with pytest.raises(OptionValueError, match=r"no HR image for 1 .*zz\.png"):
        PairedFolderDataset(str(lq_dir2), str(gt_dir2))


def test_paired_size_mismatch_names_file_and_sizes(tmp_path: Path) -> None:
    lq_dir, gt_dir = _write_pairs(tmp_path, ["a"])
    write_image(gt_dir / "a.png", _rand(47, 40))
    ds = PairedFolderDataset(str(lq_dir), str(gt_dir), scale=4, gt_size=16)
    with pytest.raises(ValueError, match=r"a\.png .*HR is 40x47 .*LR is 10x12.*must be 40x48"):
        ds[0]


# ------------------------------------------------------------------------------------------------ benchmark
def test_benchmark_set5(shared: Path) -> None:
    ds = BenchmarkDataset(str(shared / "data/sr-bench/Set5"), scale=4)
    assert len(ds) == 5
    names = [ds[i]["name"] for i in range(len(ds))]
    assert names == ["baby", "bird", "butterfly", "head", "woman"]
    item = ds[4]  # woman
    gt, lq = to_numpy(item["gt"]), to_numpy(item["lq"])
    hr = read_image(shared / "data/sr-bench/Set5/woman.png").rgb
    assert gt.shape == (hr.shape[0] // 4 * 4, hr.shape[1] // 4 * 4, 3)
    np.testing.assert_array_equal(gt, mod_crop(hr, 4))
    assert lq.shape == (gt.shape[0] // 4, gt.shape[1] // 4, 3)
    np.testing.assert_array_equal(lq, np.clip(imresize(gt, 0.25), 0, 1))
    assert lq.min() >= 0 and lq.max() <= 1


def test_benchmark_grey_source_has_three_equal_channels(shared: Path) -> None:
    ds = BenchmarkDataset(str(shared / "data/sr-bench/Set14"), scale=3)
    names = [p.stem for p in ds.paths]
    item = ds[names.index("bridge")]
    gt = item["gt"]
    assert gt.shape[0] == 3 and gt.shape[1] % 3 == 0 and gt.shape[2] % 3 == 0
    assert torch.equal(gt[0], gt[1]) and torch.equal(gt[1], gt[2])
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]
