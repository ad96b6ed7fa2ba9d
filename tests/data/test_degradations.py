"""Real-ESRGAN's second-order degradations (restore.data.degradations) and their place on the fast SR data path.

The parameter draws are measured on 1,000 items against the options' ranges and probabilities (binomial
tolerances); the device side is checked against direct computations (plain bicubic/area resizes when every
stage is switched off, noise statistics on flat images); items are pure functions of (seed, epoch, index); the
three real-world recipes train a couple of steps; bad options are one error line naming file and key.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, default_collate

from restore.cli import main
from restore.data.degradations import (
    KERNELS,
    RESIZE_MODES,
    DegradationOptions,
    KernelDraw,
    degrade_images,
    draw_item,
    usm_sharpen,
)
from restore.data.device_ops import downscale_batch
from restore.data.io import write_image
from restore.data.sr import HRFolderDataset
from restore.registry import OptionValueError

ROOT = Path(__file__).resolve().parents[2]
N = 1000
DEFAULT = DegradationOptions(type="realesrgan")
# every stage off: no blur, no resize before the last one, zero noise, no JPEG, no sinc; one interpolation
IDENTITY = dict(type="realesrgan", blur_prob=0.0, second_blur_prob=0.0, final_sinc_prob=0.0, resize_prob=[0, 0, 1],
                resize_prob2=[0, 0, 1], gaussian_noise_prob=1.0, gaussian_noise_prob2=1.0, noise_range=[0, 0],
                noise_range2=[0, 0], jpeg_prob=0.0, jpeg_prob2=0.0, resize_modes=["bicubic"])


def _close(hits: int, n: int, p: float) -> bool:
    """A frequency within 4.5 binomial standard deviations (plus one count) of its probability."""
    return abs(hits / n - p) <= 4.5 * math.sqrt(p * (1 - p) / n) + 1 / n


@pytest.fixture(scope="module")
def draws() -> list:
    return [draw_item(DEFAULT, np.random.default_rng([3, 0, i])) for i in range(N)]


# ------------------------------------------------------------------------------------------------ parameter draws
def _check_kernels(kernels: list[KernelDraw], sinc_prob: float, sigma: tuple[float, float]) -> None:
    sizes = [k.size for k in kernels]
    assert set(sizes) <= set(range(7, 22, 2))
    for s in range(7, 22, 2):
        assert _close(sizes.count(s), N, 1 / 8), f"kernel size {s}: {sizes.count(s)} of {N}"
    sinc = [k for k in kernels if k.kind == "sinc"]
    assert _close(len(sinc), N, sinc_prob)
    for k in sinc:  # Real-ESRGAN: omega_c in [pi/3, pi] below 13 px, [pi/5, pi] from 13 px
        assert (math.pi / 3 if k.size < 13 else math.pi / 5) <= k.omega <= math.pi
    assert min(k.omega for k in sinc if k.size >= 13) < math.pi / 3  # the wider range is used
    mixed = [k for k in kernels if k.kind != "sinc"]
    for name, p in zip(KERNELS, DEFAULT.kernel_prob, strict=True):
        hits = sum(k.kind == name for k in mixed)
        assert _close(hits, len(mixed), p), f"{name}: {hits} of {len(mixed)}, expected p={p}"
    for k in mixed:
        assert sigma[0] <= k.sigma_x <= sigma[1] and sigma[0] <= k.sigma_y <= sigma[1]
        if k.kind.endswith("aniso"):
            assert -math.pi <= k.theta <= math.pi
        else:
            assert k.sigma_y == k.sigma_x and k.theta == 0
    sx = np.array([k.sigma_x for k in mixed])
    assert abs(sx.mean() - sum(sigma) / 2) < 4.5 * (sigma[1] - sigma[0]) / math.sqrt(12 * len(sx))  # uniform
    gen = [k.beta for k in mixed if k.kind.startswith("generalized")]
    plat = [k.beta for k in mixed if k.kind.startswith("plateau")]
    assert gen and plat and all(0.5 <= b <= 4 for b in gen) and all(1 <= b <= 2 for b in plat)
    assert _close(sum(b < 1 for b in gen), len(gen), 0.5)  # Real-ESRGAN: U[low, 1] or U[1, high], equal odds
    assert all(math.isnan(k.beta) for k in mixed if k.kind in ("iso", "aniso"))


def test_kernel_draws_follow_the_options(draws: list) -> None:
    first = [d.first.kernel for d in draws]
    assert all(k is not None for k in first)  # the first stage always blurs (blur_prob 1)
    _check_kernels(first, 0.1, (0.2, 3.0))
    second = [d.second.kernel for d in draws if d.second.kernel is not None]
    assert _close(len(second), N, 0.8)  # second_blur_prob
    finals = [d.final_sinc for d in draws if d.final_sinc is not None]
    assert _close(len(finals), N, 0.8)  # final_sinc_prob
    assert all(k.kind == "sinc" and math.pi / 3 <= k.omega <= math.pi and 7 <= k.size <= 21 for k in finals)
    # the second kernels, drawn over the whole stage, follow blur_sigma2
    all_second = [draw_item(DEFAULT, np.random.default_rng([4, 0, i])) for i in range(N)]
    kernels2 = [d.second.kernel for d in all_second if d.second.kernel is not None]
    assert all(k.kind == "sinc" or 0.2 <= k.sigma_x <= 1.5 for k in kernels2)
    assert max(k.sigma_x for k in kernels2 if k.kind != "sinc") > 1.4


def test_resize_noise_and_jpeg_draws_follow_the_options(draws: list) -> None:
    for stage, probs, span, noise, poisson in (
            ("first", (0.2, 0.7, 0.1), (0.15, 1.5), (1, 30), (0.05, 3)),
            ("second", (0.3, 0.4, 0.3), (0.3, 1.2), (1, 25), (0.05, 2.5))):
        s = [getattr(d, stage) for d in draws]
        for kind, p in zip(("up", "down", "keep"), probs, strict=True):
            assert _close(sum(x.updown == kind for x in s), N, p), (stage, kind)
        assert all(1 <= x.resize <= span[1] for x in s if x.updown == "up")
        assert all(span[0] <= x.resize <= 1 for x in s if x.updown == "down")
        assert all(x.resize == 1 for x in s if x.updown == "keep")
        for mode in RESIZE_MODES:
            assert _close(sum(x.mode == mode for x in s), N, 1 / 3), (stage, mode)
        gauss = [x for x in s if x.gaussian]
        assert _close(len(gauss), N, 0.5)
        assert all(noise[0] <= x.sigma <= noise[1] and x.poisson == 0 for x in gauss)
        assert all(poisson[0] <= x.poisson <= poisson[1] and x.sigma == 0 for x in s if not x.gaussian)
        assert _close(sum(x.gray for x in s), N, 0.4)
        assert all(x.jpeg is not None and 30 <= x.jpeg <= 95 for x in s)
        q = np.array([x.jpeg for x in s])
        assert q.min() < 32 and q.max() > 93 and not np.allclose(q, q.round())  # continuous, as DiffJPEG takes it
    assert _close(sum(d.sinc_first for d in draws), N, 0.5)
    assert len({d.noise_seed for d in draws}) == N


def test_changed_options_change_the_draws() -> None:
    opts = DegradationOptions(type="realesrgan", kernel_range=(3, 5), kernel_list=("plateau_iso",), kernel_prob=(1,),
                              sinc_prob=0.0, betap_range=(0.8, 1.0), resize_prob=(1, 0, 0), resize_range=(0.5, 1.1),
                              gaussian_noise_prob=0.0, poisson_scale_range=(2.0, 2.5), gray_noise_prob=1.0,
                              jpeg_range=(70, 71), jpeg_prob2=0.0, resize_modes=("area",), sinc_first_prob=1.0)
    for i in range(200):
        d = draw_item(opts, np.random.default_rng(i))
        assert d.first.kernel.kind == "plateau_iso" and d.first.kernel.size in (3, 5)
        assert 0.8 <= d.first.kernel.beta <= 1.0
        assert d.first.updown == "up" and 1 <= d.first.resize <= 1.1 and d.first.mode == "area"
        assert not d.first.gaussian and 2.0 <= d.first.poisson <= 2.5 and d.first.gray
        assert 70 <= d.first.jpeg <= 71 and d.second.jpeg is None and d.sinc_first


def test_kernels_are_basicsr_kernels_equal_to_their_formulas() -> None:
    yy, xx = np.mgrid[-4:5, -4:5].astype(np.float64)
    iso = KernelDraw("iso", 9, 1.3, 1.3).array(13)
    assert iso.shape == (13, 13) and abs(iso.sum() - 1) < 1e-6
    assert np.all(iso[:2] == 0) and np.all(iso[:, -2:] == 0)  # zero-padded around the centre
    direct = np.exp(-(xx**2 + yy**2) / (2 * 1.3**2))
    np.testing.assert_allclose(iso[2:-2, 2:-2], direct / direct.sum(), rtol=1e-6, atol=1e-8)
    plateau = KernelDraw("plateau_iso", 9, 1.1, 1.1, beta=1.7).array(9)
    direct = 1 / (1 + ((xx**2 + yy**2) / 1.1**2) ** 1.7)
    np.testing.assert_allclose(plateau, direct / direct.sum(), rtol=1e-6, atol=1e-8)
    aniso = KernelDraw("aniso", 9, 2.0, 0.5, theta=0.0).array(9)  # theta 0: wide along x, narrow along y
    assert aniso[4, 0] > aniso[0, 4] and abs(aniso.sum() - 1) < 1e-6
    sinc = KernelDraw("sinc", 7, omega=math.pi / 2).array(7)
    assert abs(sinc.sum() - 1) < 1e-6 and np.allclose(sinc, sinc.T) and sinc[3, 3] == sinc.max()


# ------------------------------------------------------------------------------------------------ the images
def _photo_like(b: int = 3, size: int = 96, seed: int = 0) -> torch.Tensor:
    """Smooth random images with edges: noise blurred, plus a bright square."""
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.rand(b, 3, size + 8, size + 8, generator=g), 9, stride=1)
    x[:, :, size // 4: size // 2, size // 4: size // 2] += 0.4
    return x.clamp(0, 1)


def test_degrade_images_is_deterministic_per_seed_and_independent_of_the_batch() -> None:
    hr = _photo_like(4)
    a = degrade_images(hr, 4, [0, 1, 2, 3])
    assert a.shape == (4, 3, 24, 24) and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a * 255, (a * 255).round())  # Real-ESRGAN rounds the LR to 8-bit levels
    assert torch.equal(a, degrade_images(hr, 4, [0, 1, 2, 3]))
    assert torch.equal(a[[2, 0]], degrade_images(hr[[2, 0]], 4, [2, 0]))  # batch composition does not matter
    assert torch.equal(a[3:], degrade_images(hr[3:], 4, [3]))
    b = degrade_images(hr, 4, [10, 11, 12, 13])
    assert all(not torch.equal(a[i], b[i]) for i in range(4))
    same = degrade_images(hr[[0, 0]], 4, [5, 6])
    assert not torch.equal(same[0], same[1])
    bicubic = downscale_batch(hr, 4)
    assert float((a - bicubic).abs().mean()) > 0.01  # it degrades: far from the plain bicubic LR
    torch.testing.assert_close(degrade_images(hr, 4, [0] * 4, {"type": "bicubic"}), bicubic, rtol=0, atol=0)


def test_with_every_stage_off_it_is_one_plain_resize() -> None:
    hr = _photo_like(2, 64)
    for mode in ("bicubic", "area", "bilinear"):
        lq = degrade_images(hr, 4, [0, 1], {**IDENTITY, "resize_modes": [mode]})
        direct = F.interpolate(hr, size=(16, 16), mode=mode).clamp(0, 1)
        torch.testing.assert_close(lq, (direct * 255).round() / 255, rtol=0, atol=1e-7)
    # bicubic is Real-ESRGAN's (no antialiasing), not MATLAB's: within a few levels of the project's bicubic LR
    lq = degrade_images(hr, 4, [0, 1], IDENTITY)
    assert float((lq - downscale_batch(hr, 4)).abs().mean()) < 0.03


def test_noise_statistics_match_the_drawn_parameters() -> None:
    flat = torch.full((1, 3, 128, 128), 0.5)
    keep_area = {**IDENTITY, "resize_modes": ["area"]}  # the last resize averages 4x4 blocks: std / 4
    for gray in (0.0, 1.0):
        lq = degrade_images(flat, 4, [1], {**keep_area, "noise_range": [20, 20], "gray_noise_prob": gray})
        assert abs(float(lq.std()) - 20 / 255 / 4) < 0.1 * 20 / 255 / 4
        assert torch.equal(lq[:, 0], lq[:, 1]) == (gray == 1.0)  # grey noise: the same on every channel
    poisson = {**keep_area, "gaussian_noise_prob": 0.0, "poisson_scale_range": [0.2, 0.2]}
    lq = degrade_images(flat, 4, [2], poisson)
    # one grey level -> vals = 1: noise = 0.2 * (Poisson(0.5) - 0.5), variance 0.2^2 * 0.5, then 16-pixel means
    assert abs(float(lq.std()) - 0.2 * math.sqrt(0.5) / 4) < 0.1 * 0.2 * math.sqrt(0.5) / 4


def test_jpeg_and_sinc_act_when_switched_on() -> None:
    hr = _photo_like(1, 64)
    plain = degrade_images(hr, 4, [0], IDENTITY)
    jpeg = degrade_images(hr, 4, [0], {**IDENTITY, "jpeg_prob2": 1.0, "jpeg_range2": [10, 10]})
    sinc = degrade_images(hr, 4, [0], {**IDENTITY, "final_sinc_prob": 1.0, "kernel_range": [7, 7]})
    for out in (jpeg, sinc):
        assert 0.002 < float((out - plain).abs().mean()) < 0.1


def test_usm_sharpen_is_basicsr_usm() -> None:
    hr = _photo_like(2, 64)
    sharp = usm_sharpen(hr)
    assert sharp.shape == hr.shape and float(sharp.min()) >= 0 and float(sharp.max()) <= 1
    assert float((sharp - hr).abs().max()) > 0.01  # edges are sharpened
    assert torch.equal(usm_sharpen(torch.full((1, 3, 32, 32), 0.3)), torch.full((1, 3, 32, 32), 0.3))


def test_degrade_images_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match=r"not divisible by the scale 4"):
        degrade_images(torch.rand(1, 3, 30, 32), 4, [0])
    with pytest.raises(ValueError, match=r"2 images but 1 seeds"):
        degrade_images(torch.rand(2, 3, 32, 32), 4, [0])
    with pytest.raises(ValueError, match=r"too small for the realesrgan degradation at x4: the second blur"):
        degrade_images(torch.rand(1, 3, 64, 64), 4, [0])
    with pytest.raises(OptionValueError, match=r"kernel_list\[0\] unknown kernel 'gauss'"):
        degrade_images(torch.rand(1, 3, 96, 96), 4, [0], {"type": "realesrgan", "kernel_list": ["gauss"]})


# ------------------------------------------------------------------------------------------------ the data set
def _folder(tmp_path: Path, n: int = 5) -> Path:
    rng = np.random.default_rng(4)
    for i in range(n):
        write_image(tmp_path / f"img{i}.png", rng.random((100, 110, 3), dtype=np.float32))
    return tmp_path


class _Staged(torch.utils.data.Dataset):
    def __init__(self, ds: HRFolderDataset):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        return self.ds.load_staged(i)


def test_items_are_a_function_of_seed_epoch_index(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    spec = DegradationOptions(type="realesrgan", usm_gt=True)
    ds = HRFolderDataset([str(folder)], gt_size=80, seed=3, rotate=False, degradation=spec)
    assert ds.staged and ds.realistic
    whole = ds.finish_batch(default_collate([ds.load_staged(i) for i in range(5)]))
    assert whole["lq"].shape == (5, 3, 20, 20) and not torch.equal(whole["gt_usm"], whole["gt"])
    for i in (4, 1):  # alone, each item is what it was in the batch; and what dataset[i] computes
        alone = ds.finish_batch(default_collate([ds.load_staged(i)]))
        ref = ds[i]
        for key in ("lq", "gt", "gt_usm"):
            assert torch.equal(alone[key][0], whole[key][i]) and torch.equal(ref[key], whole[key][i]), (i, key)
    loader = DataLoader(_Staged(ds), batch_size=2, num_workers=2)  # worker processes draw the same items
    got = [ds.finish_batch(b) for b in loader]
    assert torch.equal(torch.cat([g["lq"] for g in got]), whole["lq"])
    other = HRFolderDataset([str(folder)], gt_size=80, seed=3, rotate=False, degradation=spec)
    other.set_epoch(1)
    assert not torch.equal(other.finish_batch(default_collate([other.load_staged(0)]))["lq"][0], whole["lq"][0])
    plain = HRFolderDataset([str(folder)], gt_size=80, seed=3, rotate=False)  # same crops: degradation draws last
    assert torch.equal(plain[2]["gt"], whole["gt"][2]) and "gt_usm" not in plain[2]


def test_data_set_errors_name_the_key(tmp_path: Path) -> None:
    folder = str(_folder(tmp_path, 1))
    with pytest.raises(OptionValueError, match=r"gt_size 32 is too small for the realesrgan degradation at x4"):
        HRFolderDataset([folder], gt_size=32, degradation={"type": "realesrgan"})
    with pytest.raises(OptionValueError, match=r"^degradation\.noise_range must be a range \[low, high\] with low "):
        HRFolderDataset([folder], gt_size=96, degradation={"type": "realesrgan", "noise_range": [3, 1]})


# ------------------------------------------------------------------------------------------------ recipes, CLI
BAD = {
    "low > high": ("data.train.degradation.resize_range=[1.5,0.15]",
                   "data.train.degradation.resize_range must be a range [low, high] with low <= high"),
    "probability > 1": ("data.train.degradation.gray_noise_prob=1.2",
                        "data.train.degradation.gray_noise_prob must be a probability in [0, 1], got 1.2"),
    "unknown kernel": ("data.train.degradation.kernel_list2=[iso,sinc]",
                       "data.train.degradation.kernel_list2[1] must be one of 'iso', 'aniso'"),
    "probabilities sum": ("data.train.degradation.resize_prob=[0.5,0.5,0.5]",
                          "data.train.degradation.resize_prob must be probabilities (up, down, keep)"),
    "option of bicubic": ("data.train.degradation={type: bicubic, usm_gt: true}",  # (type= alone drops usm_gt)
                          "data.train.degradation.usm_gt is an option of degradation type realesrgan"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_restore_check_names_file_and_key(case: str, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    override, message = BAD[case]
    recipe = "options/train/sr/x4_real_psnr.yml"
    assert main(["check", "-opt", recipe, "--set", override]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert lines[0].startswith("error: --set data.train.degradation"), lines[0]  # the --set is named, list items too


RECIPES = ("x4_real_psnr", "x4_real_srresnet_san", "x4_real_rrdb_unet_sn")


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_pass_restore_check(name: str, shared: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["check", "-opt", f"options/train/sr/{name}.yml", "--set", "train.pretrained_generator=null"]) == 0
    out = capsys.readouterr().out
    assert "type: realesrgan" in out and "usm_gt: true" in out


def _tiny(name: str, shared: Path, root: Path, steps: int = 2, *extra: str) -> list[str]:
    data, vgg16 = shared / "data", shared / "weights" / "vgg16_imagenet_features.pth"
    sets = [f"path.root={root}", f"train.steps={steps}", "train.batch_size=2", "train.amp=none", "train.log_every=1",
            f"data.train.roots=[{data / 'sr-train' / 'sun_hays80'}]", "data.train.gt_size=80", "data.num_workers=0",
            f"data.val.root={data / 'sr-bench' / 'Set5'}", "val.max_images=1", f"val.every={steps}", "val.samples=1",
            f"checkpoint.every={steps}", "train.pretrained_generator=null"]
    if name == "x4_real_rrdb_unet_sn":
        sets += ["generator.channels=8", "generator.num_blocks=1", "generator.growth_channels=4",
                 "critic.num_feat=4", "losses.perceptual.network=vgg16", f"losses.perceptual.weights={vgg16}",
                 "losses.perceptual.layers={conv1_2: 0.1, conv2_2: 0.1, conv3_3: 1, conv4_3: 1, conv5_3: 1}"]
    else:
        sets += ["generator.channels=8", "generator.num_blocks=2"]
    if name == "x4_real_srresnet_san":
        sets += ["critic.image_size=80", "critic.width=4", "critic.dense=8", "losses.perceptual.network=vgg16",
                 f"losses.perceptual.weights={vgg16}"]
    argv = ["train", "-opt", f"options/train/sr/{name}.yml", "--no-progress"]
    for s in [*sets, *extra]:
        argv += ["--set", s]
    return argv


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_smoke_training(name: str, shared: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(_tiny(name, shared, tmp_path)) == 0
    run = tmp_path / name
    assert (run / f"{name}.safetensors").is_file() and (run / "checkpoints" / "step_00000002.pt").is_file()


def test_realesrgan_training_resumes_bit_exactly(shared: Path, tmp_path: Path, monkeypatch) -> None:
    """4 steps of the SAN real-world recipe (tiny) == 2 steps + resume + 2 steps, bit for bit."""
    from restore.engine.checkpoint import load

    monkeypatch.chdir(ROOT)
    name = "x4_real_srresnet_san"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(_tiny(name, shared, tmp_path / "a", 4, "data.val=null", "checkpoint.every=2")) == 0
        b = _tiny(name, shared, tmp_path / "b", 4, "data.val=null", "checkpoint.every=2")
        assert main([*b, "--until", "2"]) == 0
        assert main(b) == 0
    a = load(tmp_path / "a" / name / "checkpoints/step_00000004.pt")
    b = load(tmp_path / "b" / name / "checkpoints/step_00000004.pt")
    assert a["config"]["data"]["train"]["degradation"]["type"] == "realesrgan"
    for key in ("ema", "critic"):
        for k, tensor in a[key].items():
            assert torch.equal(tensor, b[key][k]), f"{key}.{k} differs after resume"
    for k, tensor in a["generator"]["state"].items():
        assert torch.equal(tensor, b["generator"]["state"][k]), f"generator.{k} differs after resume"


def test_losses_target_the_sharpened_gt_and_the_critic_the_plain_gt() -> None:
    from restore.config import load_options
    from restore.tasks.sr import SRTask

    opts = load_options(ROOT / "options/train/sr/x4_real_psnr.yml",
                        ["generator.channels=4", "generator.num_blocks=1"])
    task = SRTask(opts)
    gt = _photo_like(2, 32)
    batch = {"lq": downscale_batch(gt, 4), "gt": gt, "gt_usm": usm_sharpen(gt)}
    with torch.no_grad():
        fake = task.generate(task.generator, batch)
    _, scalars = task.generator_loss(None, batch, fake)
    assert scalars["g/content"] == pytest.approx(float(F.l1_loss(fake, batch["gt_usm"])), rel=1e-6)
    assert scalars["g/content"] != pytest.approx(float(F.l1_loss(fake, gt)), rel=1e-6)
    assert task.real_for_penalty(batch) is gt
