"""upscale_image / upscale_paths: colour through the model, alpha bicubic, grey and 16-bit kept, folders mirrored."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from restore.data.io import Image, read_image, write_image
from restore.inference.upscale import output_size, output_suffix, upscale_image, upscale_paths
from tests.inference.test_tiling import small_sr_net

TOL = 1.0 / 255.0


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return small_sr_net(lr_convs=3)


def reference(net: torch.nn.Module, rgb: np.ndarray) -> np.ndarray:
    """Untiled model output, clipped: (4H, 4W, 3) float32."""
    x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        y = net(x)[0].permute(1, 2, 0).numpy()
    return np.clip(y, 0, 1)


def rand_rgb(h: int = 20, w: int = 27, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def test_rgb_goes_through_the_model_tiled(net: torch.nn.Module) -> None:
    rgb = rand_rgb()
    out = upscale_image(net, Image(rgb=rgb, alpha=None, bit_depth=8, grey=False), 4, tile=24, overlap=8)
    ref = reference(net, rgb)
    assert out.rgb.shape == (80, 108, 3) and out.rgb.dtype == np.float32
    assert out.rgb.min() >= 0 and out.rgb.max() <= 1
    assert ref.min() == 0 and ref.max() == 1  # the net overshoots, so the clipping is exercised
    assert np.abs(out.rgb - ref).max() < TOL
    assert out.alpha is None and out.bit_depth == 8 and not out.grey


def test_grey_in_grey_out(net: torch.nn.Module) -> None:
    grey = np.random.default_rng(1).random((20, 27), dtype=np.float32)
    rgb = np.repeat(grey[:, :, None], 3, axis=2)
    out = upscale_image(net, Image(rgb=rgb, alpha=None, bit_depth=8, grey=True), 4, tile=None)
    assert out.grey and out.rgb.shape == (80, 108, 3)
    assert np.array_equal(out.rgb[..., 0], out.rgb[..., 1]) and np.array_equal(out.rgb[..., 0], out.rgb[..., 2])
    np.testing.assert_allclose(out.rgb[..., 0], reference(net, rgb).mean(axis=2), atol=1e-5)


def test_alpha_is_bicubic_not_the_model(net: torch.nn.Module) -> None:
    rgb = rand_rgb()
    alpha = np.zeros((20, 27), np.float32)
    alpha[5:15, 8:20] = 1.0  # hard edges: bicubic overshoots, so the clipping is exercised
    out = upscale_image(net, Image(rgb=rgb, alpha=alpha, bit_depth=8, grey=False), 4, tile=None)
    plain = upscale_image(net, Image(rgb=rgb, alpha=None, bit_depth=8, grey=False), 4, tile=None)
    expected = cv2.resize(alpha, (108, 80), interpolation=cv2.INTER_CUBIC)
    assert expected.min() < 0 and expected.max() > 1
    assert out.alpha is not None and out.alpha.shape == (80, 108)
    np.testing.assert_allclose(out.alpha, np.clip(expected, 0, 1), atol=1e-6)
    np.testing.assert_array_equal(out.rgb, plain.rgb)  # the alpha channel does not touch the colour


def test_sixteen_bit_is_kept(net: torch.nn.Module) -> None:
    out = upscale_image(net, Image(rgb=rand_rgb(), alpha=None, bit_depth=16, grey=False), 4, tile=None)
    assert out.bit_depth == 16


@pytest.mark.parametrize(("outscale", "size"), [(2, (40, 54)), (3.5, (70, 94)), (4, (80, 108)), (5.0, (100, 135))])
def test_outscale_sizes(net: torch.nn.Module, outscale: float, size: tuple[int, int]) -> None:
    alpha = np.full((20, 27), 0.5, np.float32)
    out = upscale_image(net, Image(rgb=rand_rgb(), alpha=alpha, bit_depth=8, grey=False), 4, outscale=outscale,
                        tile=None)
    assert out.rgb.shape == (*size, 3) and out.alpha is not None and out.alpha.shape == size
    assert output_size(20, 27, 4, outscale) == size
    assert out.rgb.min() >= 0 and out.rgb.max() <= 1
    np.testing.assert_allclose(out.alpha, 0.5, atol=1e-6)


def test_outscale_shrinks_the_model_output_by_area(net: torch.nn.Module) -> None:
    rgb = rand_rgb()
    out = upscale_image(net, Image(rgb=rgb, alpha=None, bit_depth=8, grey=False), 4, outscale=2, tile=None)
    expected = cv2.resize(reference(net, rgb), (54, 40), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(out.rgb, expected, atol=1e-5)


def test_bad_options(net: torch.nn.Module) -> None:
    img = Image(rgb=rand_rgb(), alpha=None, bit_depth=8, grey=False)
    with pytest.raises(ValueError, match="fp16.* needs a CUDA device.*'cpu'"):
        upscale_image(net, img, 4, half=True, device="cpu")
    with pytest.raises(ValueError, match="outscale must be a positive number.*got 0"):
        upscale_image(net, img, 4, outscale=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_half_on_cuda_is_close_to_fp32(net: torch.nn.Module) -> None:
    rgb = rand_rgb(64, 80)
    cuda_net = small_sr_net(lr_convs=3).cuda()
    out = upscale_image(cuda_net, Image(rgb=rgb, alpha=None, bit_depth=8, grey=False), 4, tile=32, overlap=8,
                        half=True)
    assert np.abs(out.rgb - reference(net, rgb)).max() < 0.02


def test_output_suffix() -> None:
    assert output_suffix(".jpg", has_alpha=False, bit_depth=8) == ".jpg"
    assert output_suffix(".JPG", has_alpha=True, bit_depth=8) == ".png"
    assert output_suffix(".bmp", has_alpha=True, bit_depth=8) == ".png"
    assert output_suffix(".webp", has_alpha=True, bit_depth=8) == ".webp"
    assert output_suffix(".webp", has_alpha=False, bit_depth=16) == ".png"
    assert output_suffix(".tif", has_alpha=True, bit_depth=16) == ".tif"
    assert output_suffix("", has_alpha=False, bit_depth=8) == ".png"


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    """Six inputs: RGB PNG, RGBA PNG, 16-bit PNG, RGB JPEG, grey PNG, and a corrupt PNG."""
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(3)
    write_image(src / "a.png", rng.random((12, 10, 3), dtype=np.float32))
    write_image(src / "b.png", rng.random((9, 14, 3), dtype=np.float32),
                alpha=rng.random((9, 14), dtype=np.float32))
    write_image(src / "c.png", rng.random((8, 8, 3), dtype=np.float32), bit_depth=16)
    write_image(src / "d.jpg", rng.random((10, 11, 3), dtype=np.float32))
    write_image(src / "e.png", np.repeat(rng.random((7, 5, 1), dtype=np.float32), 3, axis=2), grey=True)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return src


def test_folder_to_folder_skips_a_corrupt_file(net: torch.nn.Module, folder: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    written = upscale_paths(net, [folder], out, 4, tile=None, progress=False)
    assert [p.name for p in written] == ["a.png", "b.png", "c.png", "d.jpg", "e.png"]
    assert all(p.parent == out and p.is_file() for p in written)
    err = capsys.readouterr().err
    assert "broken.png" in err and "skipped 1 of 6" in err
    a, b, c, d, e = (read_image(p) for p in written)
    assert a.rgb.shape == (48, 40, 3) and a.alpha is None
    assert b.rgb.shape == (36, 56, 3) and b.alpha is not None and b.alpha.shape == (36, 56)
    assert c.rgb.shape == (32, 32, 3) and c.bit_depth == 16
    assert d.rgb.shape == (40, 44, 3)
    assert e.rgb.shape == (28, 20, 3) and e.grey
    src = read_image(folder / "a.png")
    assert np.abs(a.rgb - reference(net, src.rgb)).max() <= 0.5 / 255 + 1e-6  # only the 8-bit rounding


def test_file_to_file_and_into_a_folder(net: torch.nn.Module, folder: Path, tmp_path: Path) -> None:
    target = tmp_path / "one.png"
    assert upscale_paths(net, [folder / "a.png"], target, 4, outscale=2, tile=None, progress=False) == [target]
    assert read_image(target).rgb.shape == (24, 20, 3)
    into = tmp_path / "dir"
    into.mkdir()
    written = upscale_paths(net, [folder / "d.jpg", folder / "a.png"], into, 4, tile=None, suffix="_x4",
                            progress=False)
    assert written == [into / "d_x4.jpg", into / "a_x4.png"]


def test_alpha_or_16_bit_from_a_jpeg_go_to_png(net: torch.nn.Module, folder: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """JPEG cannot hold alpha or 16 bits; the output keeps the stem and becomes PNG (a decoder could report them)."""
    def read_with_extras(path: Path) -> Image:
        img = read_image(path)
        img.alpha = np.full(img.rgb.shape[:2], 0.25, np.float32)
        img.bit_depth = 16
        return img

    monkeypatch.setattr("restore.inference.upscale.read_image", read_with_extras)
    written = upscale_paths(net, [folder / "d.jpg"], tmp_path / "o", 4, tile=None, progress=False)
    assert written == [tmp_path / "o" / "d.png"]
    back = read_image(written[0])
    assert back.bit_depth == 16 and back.alpha is not None and np.allclose(back.alpha, 0.25, atol=1e-4)


def test_refuses_to_overwrite_inputs(net: torch.nn.Module, folder: Path) -> None:
    before = (folder / "a.png").read_bytes()
    with pytest.raises(ValueError, match=r"refusing to overwrite input file .*a\.png"):
        upscale_paths(net, [folder], folder, 4, tile=None, progress=False)
    with pytest.raises(ValueError, match=r"refusing to overwrite input file .*a\.png"):
        upscale_paths(net, [folder / "a.png"], folder / "a.png", 4, tile=None, progress=False)
    assert (folder / "a.png").read_bytes() == before


def test_bad_paths_are_named(net: torch.nn.Module, folder: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.png"):
        upscale_paths(net, [tmp_path / "missing.png"], tmp_path / "o", 4, progress=False)
    with pytest.raises(ValueError, match=r"output .*x\.png names one image file"):
        upscale_paths(net, [folder], tmp_path / "x.png", 4, progress=False)
    with pytest.raises(ValueError, match="inputs .*a.png and .*a.png would both be written"):
        upscale_paths(net, [folder / "a.png", folder / "a.png"], tmp_path / "o", 4, progress=False)
