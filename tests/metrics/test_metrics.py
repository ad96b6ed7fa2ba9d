"""PSNR/SSIM against hand computations, NIQE behaviour, LPIPS weight loading and ordering."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from restore.data.io import read_image
from restore.metrics import niqe, psnr, ssim


def _pair(seed: int = 0, shape: tuple[int, int] = (40, 48)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hr = rng.random((*shape, 3), dtype=np.float32)
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape).astype(np.float32), 0, 1)
    return sr, hr


def _matlab_y(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr luma of the 8-bit image, in [16, 235] (unrounded), from R, G, B in [0, 1]."""
    q = np.rint(rgb.astype(np.float64) * 255) / 255
    return 16 + 65.481 * q[..., 0] + 128.553 * q[..., 1] + 24.966 * q[..., 2]


def test_psnr_matches_hand_computation_on_y() -> None:
    sr, hr = _pair()
    c = 4
    ys, yh = _matlab_y(sr)[c:-c, c:-c], _matlab_y(hr)[c:-c, c:-c]
    expected = 10 * np.log10(255.0**2 / np.mean((ys - yh) ** 2))
    assert psnr(sr, hr, crop_border=c) == pytest.approx(expected, abs=1e-3)  # basicsr's Y is float32
    # RGB PSNR: mean over all three channels of the quantised images
    qs, qh = np.rint(sr.astype(np.float64) * 255), np.rint(hr.astype(np.float64) * 255)
    rgb_expected = 10 * np.log10(255.0**2 / np.mean((qs[c:-c, c:-c] - qh[c:-c, c:-c]) ** 2))
    assert psnr(sr, hr, crop_border=c, y_channel=False) == pytest.approx(rgb_expected, abs=1e-9)


def test_psnr_identical_is_inf_and_quantisation_rounds() -> None:
    _, hr = _pair()
    assert psnr(hr, hr, crop_border=2) == float("inf")  # basicsr returns inf when the MSE is 0
    levels = np.rint(hr.astype(np.float64) * 255)
    below = np.clip((levels - 0.3) / 255, 0, 1).astype(np.float32)  # rounds back up; truncation would not
    assert psnr(below, hr, crop_border=0) == float("inf")
    assert ssim(below, hr, crop_border=0) == pytest.approx(1.0)
    assert np.isfinite(psnr(np.clip((levels - 0.7) / 255, 0, 1).astype(np.float32), hr, crop_border=0))


def test_ssim_matches_skimage_gaussian_ssim_on_y() -> None:
    sr, hr = _pair(1, (64, 72))
    c = 3
    ys, yh = _matlab_y(sr)[c:-c, c:-c], _matlab_y(hr)[c:-c, c:-c]
    expected = structural_similarity(ys, yh, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255)
    value = ssim(sr, hr, crop_border=c)
    assert 0 < value < 1
    assert value == pytest.approx(expected, abs=2e-4)
    assert ssim(hr, hr, crop_border=c) == pytest.approx(1.0)


def test_metric_errors_name_the_shapes() -> None:
    sr, hr = _pair()
    with pytest.raises(ValueError, match=r"sr \(40, 47, 3\) and hr \(40, 48, 3\)"):
        psnr(sr[:, :47], hr, crop_border=4)
    with pytest.raises(ValueError, match=r"sr \(40, 47, 3\) and hr \(40, 48, 3\)"):
        ssim(sr[:, :47], hr, crop_border=4)
    with pytest.raises(ValueError, match=r"too small for crop_border 20"):
        psnr(sr, hr, crop_border=20)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) RGB image, got shape \(40, 48\)"):
        psnr(sr[..., 0], hr[..., 0], crop_border=0)


def test_niqe_real_image_and_blur_ordering(shared: Path) -> None:
    img = read_image(shared / "data/sr-bench/Set5/baby.png").rgb
    sharp = niqe(img, crop_border=4)
    assert np.isfinite(sharp) and 0 < sharp < 20
    blurred = cv2.GaussianBlur(img, (0, 0), 3.0)
    assert niqe(blurred, crop_border=4) > sharp + 1  # NIQE rises (worse) as natural statistics are lost
    with pytest.raises(ValueError, match="two 96x96 blocks"):
        niqe(img[:150, :150], crop_border=4)


# ------------------------------------------------------------------------------------------------- LPIPS
@pytest.fixture(scope="module")
def alexnet_file(shared: Path) -> Path:
    path = shared / "weights/alexnet_imagenet_features.pth"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def lpips_metric(alexnet_file: Path):
    from restore.metrics.lpips import LPIPSMetric

    return LPIPSMetric(alexnet_file)


@pytest.fixture(scope="module")
def photo(shared: Path) -> np.ndarray:
    return read_image(shared / "data/sr-bench/Set5/bird.png").rgb[:128, :128]


def test_lpips_trunk_matches_torchvision_alexnet(lpips_metric, alexnet_file: Path) -> None:
    """The features loaded into lpips' slices must equal torchvision's AlexNet with the same file."""
    import torchvision

    ref = torchvision.models.alexnet().features.eval()
    ref.load_state_dict(torch.load(alexnet_file, map_location="cpu", weights_only=True))
    x = torch.randn(1, 3, 67, 67)
    outs = lpips_metric.model.net(x)
    taps, h = [], x
    with torch.no_grad():
        for i, layer in enumerate(ref):
            h = layer(h)
            if i in (1, 4, 7, 9, 11):  # ReLU outputs that LPIPS-alex compares
                taps.append(h)
    for k, (a, b) in enumerate(zip(outs, taps, strict=True)):
        torch.testing.assert_close(a, b, msg=f"slice {k + 1}")


def test_lpips_zero_for_identical_and_rises_with_blur(lpips_metric, photo: np.ndarray) -> None:
    assert lpips_metric(photo, photo) == pytest.approx(0.0, abs=1e-7)
    values = [lpips_metric(cv2.GaussianBlur(photo, (0, 0), s), photo) for s in (0.5, 1.5, 3.0)]
    assert values[0] < values[1] < values[2]
    assert 0 < values[0] and values[2] < 1


def test_lpips_random_weights_give_another_value(lpips_metric, photo: np.ndarray, tmp_path: Path) -> None:
    import torchvision

    from restore.metrics.lpips import LPIPSMetric

    torch.manual_seed(0)
    rand = tmp_path / "random_alexnet.pth"
    torch.save(torchvision.models.alexnet().features.state_dict(), rand)
    blurred = cv2.GaussianBlur(photo, (0, 0), 1.5)
    trained = lpips_metric(blurred, photo)
    other = LPIPSMetric(rand)(blurred, photo)
    assert abs(trained - other) > 0.05


def test_lpips_errors(tmp_path: Path, lpips_metric, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    import restore.metrics.lpips as lp

    bad = tmp_path / "bad.pth"
    torch.save({"0.weight": torch.zeros(64, 3, 11, 11)}, bad)
    with pytest.raises(ValueError, match=r"bad\.pth is not an AlexNet features state dict: missing 0\.bias"):
        lp.LPIPSMetric(bad)
    junk = tmp_path / "junk.pth"
    junk.write_text("nope")
    with pytest.raises(ValueError, match=r"cannot load AlexNet weights from .*junk\.pth"):
        lp.LPIPSMetric(junk)
    with pytest.raises(FileNotFoundError, match=r"nothere\.pth"):
        lp.LPIPSMetric(tmp_path / "nothere.pth")
    with pytest.raises(ValueError, match=r"sr \(128, 127, 3\) and hr \(128, 128, 3\)"):
        lpips_metric(photo[:, :127], photo)
    # discovery: env var first; a wrong env path is an error; nothing anywhere -> clear FileNotFoundError
    monkeypatch.setenv(lp.ENV_VAR, str(junk))
    assert lp.find_alexnet_weights() == junk
    monkeypatch.setenv(lp.ENV_VAR, str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match=r"RESTORE_ALEXNET is set to .*missing\.pth"):
        lp.find_alexnet_weights()
    monkeypatch.delenv(lp.ENV_VAR)
    monkeypatch.setattr(lp, "_candidates", lambda: [tmp_path / "hub/alexnet.pth", tmp_path / "shared/a.pth"])
    assert lp.find_alexnet_weights() is None
    with pytest.raises(FileNotFoundError, match=r"looked at .*hub/alexnet\.pth.*Pass weights=PATH"):
        lp.LPIPSMetric()


def test_find_alexnet_weights_default_locations(alexnet_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import restore.metrics.lpips as lp

    monkeypatch.delenv(lp.ENV_VAR, raising=False)
    monkeypatch.setattr(lp.torch.hub, "get_dir", lambda: "/nonexistent-hub")
    found = lp.find_alexnet_weights()
    if lp._REPO_ROOT.parent / lp.SHARED_FILE != alexnet_file:
        pytest.skip("the shared folder is not beside the repository (RESTORE_SHARED points elsewhere)")
    assert found == alexnet_file


def test_lpips_accepts_a_full_torchvision_checkpoint(lpips_metric, alexnet_file: Path, photo: np.ndarray,
                                                     tmp_path: Path) -> None:
    """torchvision's hub checkpoint holds the whole model (``features.*`` and ``classifier.*`` keys)."""
    from restore.metrics.lpips import LPIPSMetric

    features = torch.load(alexnet_file, map_location="cpu", weights_only=True)
    full = {f"features.{k}": v for k, v in features.items()}
    full["classifier.6.bias"] = torch.zeros(1000)
    torch.save(full, tmp_path / "alexnet-owt.pth")
    blurred = cv2.GaussianBlur(photo, (0, 0), 1.0)
    assert LPIPSMetric(tmp_path / "alexnet-owt.pth")(blurred, photo) == pytest.approx(lpips_metric(blurred, photo))
