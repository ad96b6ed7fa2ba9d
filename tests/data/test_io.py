"""restore.data.io: round trips, EXIF orientation, palettes, errors that name the file, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from restore.data.io import Image, ImageReadError, list_images, read_image, to_numpy, to_tensor, write_image


def _rand(h: int = 9, w: int = 13, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def _exif(orientation: int) -> PILImage.Exif:
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp", ".webp"])
def test_8bit_round_trip_is_exact_after_rounding(tmp_path: Path, ext: str) -> None:
    rgb = _rand()
    write_image(tmp_path / f"a{ext}", rgb)
    img = read_image(tmp_path / f"a{ext}")
    assert img.rgb.shape == (9, 13, 3) and img.rgb.dtype == np.float32
    assert (img.bit_depth, img.grey, img.alpha) == (8, False, None)
    np.testing.assert_array_equal(np.rint(img.rgb * 255), np.rint(rgb * 255))  # rounded, not truncated


def test_write_rounds_instead_of_truncating(tmp_path: Path) -> None:
    rgb = np.full((2, 2, 3), 0.999 / 255 + 100 / 255, np.float32)  # 100.999 -> 101, truncation would give 100
    rgb[0, 0] = [-0.5, 1.7, 0.5]  # out of range: clipped; 127.5 rounds half to even (128)
    write_image(tmp_path / "r.png", rgb)
    raw = np.asarray(PILImage.open(tmp_path / "r.png"))
    assert raw[1, 1].tolist() == [101, 101, 101]
    assert raw[0, 0].tolist() == [0, 255, 128]


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_values_preserved_exactly(tmp_path: Path, ext: str) -> None:
    values = np.random.default_rng(1).integers(0, 65536, size=(7, 5, 3))
    values[0, 0] = [0, 65535, 257]
    write_image(tmp_path / f"d{ext}", (values / 65535.0).astype(np.float64), bit_depth=16)
    img = read_image(tmp_path / f"d{ext}")
    assert img.bit_depth == 16 and not img.grey
    np.testing.assert_array_equal(np.rint(img.rgb.astype(np.float64) * 65535).astype(np.int64), values)


def test_16bit_rgba_and_grey_alpha_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 65536, size=(6, 4))
    alpha = rng.integers(0, 65536, size=(6, 4))
    rgb = np.repeat(grey[:, :, None], 3, axis=2) / 65535.0
    write_image(tmp_path / "ga.png", rgb, alpha=alpha / 65535.0, bit_depth=16, grey=True)
    img = read_image(tmp_path / "ga.png")
    assert (img.bit_depth, img.grey) == (16, True)
    np.testing.assert_array_equal(np.rint(img.rgb[:, :, 1] * 65535.0).astype(np.int64), grey)
    np.testing.assert_array_equal(np.rint(img.alpha * 65535.0).astype(np.int64), alpha)
    # an independent decoder agrees that this is a 16-bit grey+alpha PNG (IHDR bit depth 16, colour type 4)
    head = (tmp_path / "ga.png").read_bytes()[:26]
    assert head[24] == 16 and head[25] == 4


def test_grey_round_trip_and_bt601_conversion(tmp_path: Path) -> None:
    g = _rand(5, 6)[:, :, :1]
    write_image(tmp_path / "g.png", np.repeat(g, 3, axis=2), grey=True)
    assert PILImage.open(tmp_path / "g.png").mode == "L"
    img = read_image(tmp_path / "g.png")
    assert img.grey and img.rgb.shape == (5, 6, 3)
    np.testing.assert_array_equal(img.rgb[:, :, 0], img.rgb[:, :, 2])
    np.testing.assert_array_equal(np.rint(img.rgb[:, :, 0] * 255), np.rint(g[:, :, 0] * 255))
    # unequal channels: ITU-R BT.601 luma
    col = np.zeros((1, 3, 3), np.float32)
    col[0, 0, 0], col[0, 1, 1], col[0, 2, 2] = 1.0, 1.0, 1.0
    write_image(tmp_path / "y.png", col, grey=True)
    assert np.asarray(PILImage.open(tmp_path / "y.png"))[0].tolist() == [76, 150, 29]  # 0.299, 0.587, 0.114 * 255


def test_rgba_round_trip(tmp_path: Path) -> None:
    rgb, alpha = _rand(4, 5), np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    write_image(tmp_path / "a.png", rgb, alpha=alpha)
    assert PILImage.open(tmp_path / "a.png").mode == "RGBA"
    img = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(np.rint(img.alpha * 255), np.rint(alpha * 255))
    np.testing.assert_array_equal(np.rint(img.rgb * 255), np.rint(rgb * 255))


def test_palette_with_transparency(tmp_path: Path) -> None:
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    pal = PILImage.fromarray(idx).convert("P")
    pal.putpalette([255, 0, 0, 0, 255, 0, 10, 20, 30] + [0] * (256 * 3 - 9))
    pal.save(tmp_path / "p.png", transparency=1)  # palette entry 1 (green) is fully transparent
    img = read_image(tmp_path / "p.png")
    assert not img.grey and img.alpha is not None
    np.testing.assert_array_equal(img.alpha, (idx != 1).astype(np.float32))
    np.testing.assert_array_equal(np.rint(img.rgb[0, 2] * 255), [10, 20, 30])
    np.testing.assert_array_equal(np.rint(img.rgb[1, 2] * 255), [255, 0, 0])
    # without transparency: plain RGB, no alpha
    pal.save(tmp_path / "q.png")
    assert read_image(tmp_path / "q.png").alpha is None


def test_jpeg_exif_orientation_6_comes_out_upright(tmp_path: Path) -> None:
    stored = np.zeros((32, 48, 3), np.uint8)  # stored landscape: red top-left quarter, blue bottom-right
    stored[:16, :24] = [255, 0, 0]
    stored[16:, 24:] = [0, 0, 255]
    PILImage.fromarray(stored).save(tmp_path / "o.jpg", quality=95, exif=_exif(6))
    img = read_image(tmp_path / "o.jpg")
    assert img.rgb.shape == (48, 32, 3)  # 6 = rotate 90 degrees clockwise to display
    expected = np.rot90(stored, k=-1) / 255.0
    assert np.abs(img.rgb - expected).mean() < 0.02
    assert img.rgb[2, -3, 0] > 0.9 and img.rgb[2, -3, 2] < 0.1  # red is now top-right


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_orientation_matches_pillow_transpose(tmp_path: Path, orientation: int) -> None:
    """The 16-bit path (OpenCV pixels, our own EXIF ops) must orient like Pillow's exif_transpose."""
    values = np.random.default_rng(orientation).integers(0, 256, size=(5, 7)).astype(np.uint16)
    PILImage.fromarray(values * 257).save(tmp_path / "w.png", exif=_exif(orientation))  # I;16
    PILImage.fromarray(values.astype(np.uint8)).save(tmp_path / "n.png", exif=_exif(orientation))  # L
    wide, narrow = read_image(tmp_path / "w.png"), read_image(tmp_path / "n.png")
    assert wide.bit_depth == 16 and narrow.bit_depth == 8 and wide.grey and narrow.grey
    assert wide.rgb.shape == narrow.rgb.shape == ((5, 7, 3) if orientation < 5 else (7, 5, 3))
    np.testing.assert_allclose(wide.rgb, narrow.rgb, atol=1e-6)


def test_missing_file_and_bad_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.png"):
        read_image(tmp_path / "nothing.png")
    (tmp_path / "notes.png").write_text("this is not an image")
    with pytest.raises(ImageReadError, match=r"notes\.png: not an image file"):
        read_image(tmp_path / "notes.png")
    write_image(tmp_path / "full.png", _rand(64, 64))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.png: corrupt or truncated"):
        read_image(tmp_path / "cut.png")
    (tmp_path / "junk.png").write_bytes(data[:60] + b"x" * 4000)  # valid header, garbage pixels
    with pytest.raises(ImageReadError, match=r"junk\.png"):
        read_image(tmp_path / "junk.png")
    write_image(tmp_path / "p.jpg", _rand(64, 64))
    jpeg = (tmp_path / "p.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_write_refuses_what_the_format_cannot_hold(tmp_path: Path) -> None:
    rgb = _rand(3, 3)
    with pytest.raises(ValueError, match=r"x\.jpg.*alpha"):
        write_image(tmp_path / "x.jpg", rgb, alpha=np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"x\.jpg.*16-bit"):
        write_image(tmp_path / "x.jpg", rgb, bit_depth=16)
    with pytest.raises(ValueError, match=r"x\.gif.*extension"):
        write_image(tmp_path / "x.gif", rgb)
    with pytest.raises(ValueError, match=r"x\.png.*\(H, W, 3\)"):
        write_image(tmp_path / "x.png", rgb[:, :, 0])
    with pytest.raises(ValueError, match=r"x\.png.*alpha must have shape \(3, 3\)"):
        write_image(tmp_path / "x.png", rgb, alpha=np.ones((2, 3)))
    bad = rgb.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"x\.png.*NaN"):
        write_image(tmp_path / "x.png", bad)
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp files left


def test_atomic_write_creates_parents_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "out.png"
    write_image(target, _rand())
    write_image(target, _rand(seed=5))  # overwrite in place
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.png"]
    np.testing.assert_array_equal(np.rint(read_image(target).rgb * 255), np.rint(_rand(seed=5) * 255))
    # a failing encode leaves the previous file intact and no temporary file behind
    with pytest.raises(ValueError):
        write_image(target, np.full((9, 13, 3), np.inf))
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.png"]


def test_list_images(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "c.txt", ".hidden.png", "sub/d.webp"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["a.jpg", "b.PNG", "d.webp"]
    with pytest.raises(FileNotFoundError, match=r"no images in .*empty.*\.png"):
        (tmp_path / "empty").mkdir()
        list_images(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"not found: .*nope.*\.jpg"):
        list_images(tmp_path / "nope")


def test_tensor_round_trip() -> None:
    arr = _rand(4, 6)
    t = to_tensor(arr)
    assert t.shape == (3, 4, 6) and t.dtype == torch.float32
    assert torch.equal(t[1], torch.from_numpy(arr[:, :, 1]))
    np.testing.assert_array_equal(to_numpy(t), arr)
    with pytest.raises(ValueError, match=r"\(C, H, W\).*\(1, 3, 4, 6\)"):
        to_numpy(t[None])


def test_image_dataclass_fields() -> None:
    img = Image(rgb=_rand(2, 2), alpha=None, bit_depth=8, grey=False)
    assert img.path == ""


def test_real_set5_image(shared: Path) -> None:
    img = read_image(shared / "data/sr-bench/Set5/baby.png")
    assert img.rgb.shape == (512, 512, 3) and img.rgb.dtype == np.float32
    assert (img.bit_depth, img.grey, img.alpha) == (8, False, None)
    assert 0.0 <= img.rgb.min() and img.rgb.max() <= 1.0
    assert img.path.endswith("baby.png")
    bridge = read_image(shared / "data/sr-bench/Set14/bridge.png")
    assert bridge.grey and bridge.rgb.shape[2] == 3
    np.testing.assert_array_equal(bridge.rgb[:, :, 0], bridge.rgb[:, :, 2])
