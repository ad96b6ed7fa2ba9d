"""Out of device memory: inference halves the tile and retries; training says which options to lower.

CI has no GPU, so CUDA's out-of-memory error is simulated through the same code path: a model wrapper (or a
generator's forward) raises ``torch.cuda.OutOfMemoryError`` (constructible on CPU builds; CUDA raises exactly
this class) when its input is larger than a set number of pixels, as a GPU that holds only so much would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from restore.cli import main
from restore.data.io import read_image, write_image
from restore.inference.tiling import OOM_FLOOR, TilingHints, tiled_forward

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "options" / "train" / "sr" / "x4_smoke.yml"
TOL = 1e-5


def _oom(pixels: int) -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {pixels * 4 // 2**10} KiB. GPU 0 has "
                                       "a total capacity of 1 GiB of which 0 bytes is free.")


class OOMAbove(nn.Module):
    """``inner``, on a device that holds windows of at most ``limit`` pixels: larger ones raise CUDA's error."""

    def __init__(self, inner: nn.Module, limit: int, hints: TilingHints | None = None):
        super().__init__()
        self.inner, self.limit, self.refused, self.sizes = inner, limit, 0, []
        if hints is not None:
            self.tiling_hints = hints

    def forward(self, x: Tensor) -> Tensor:
        pixels = x.shape[-2] * x.shape[-1]
        if pixels > self.limit:
            self.refused += 1
            raise _oom(pixels)
        self.sizes.append(tuple(x.shape[-2:]))
        return self.inner(x)


def _net() -> nn.Module:
    import restore.archs  # noqa: F401
    from restore.registry import GENERATORS

    torch.manual_seed(0)
    return GENERATORS.build("srresnet", channels=8, num_blocks=1, scale=4).eval()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny SRResNet as restore publishes it (a real published model is minutes on two CPU cores here)."""
    from restore.engine.weights import save_generator

    path = tmp_path_factory.mktemp("w") / "tiny_x4.safetensors"
    return str(save_generator(_net(), path, "srresnet", {"channels": 8, "num_blocks": 1, "scale": 4}, "sr"))


def _photo(h: int = 100, w: int = 90) -> Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * w))


def test_the_tile_is_halved_until_it_fits_and_kept(capsys: pytest.CaptureFixture[str]) -> None:
    net = _net()
    model = OOMAbove(net, limit=40 * 40)
    x = _photo()
    with torch.no_grad():
        expected = net(x)
    y = tiled_forward(model, x, 4, tile=256, overlap=16)
    assert float((y - expected).abs().max()) < TOL  # the smaller tiles still blend seamlessly
    assert model.refused == 2 and max(h * w for h, w in model.sizes) <= 40 * 40  # 100 (one pass) -> 50 -> 32
    assert {h for h, _ in model.sizes} == {32}
    err = capsys.readouterr().err
    assert err.count("note: out of memory on cpu with 256-pixel tiles") == 1 and "ran with 32-pixel tiles" in err
    model.sizes.clear()
    y2 = tiled_forward(model, _photo(70, 80), 4, tile=256)  # the next image starts at the tile that fitted
    assert model.refused == 2 and {h for h, _ in model.sizes} == {32} and y2.shape == (1, 3, 280, 320)
    assert capsys.readouterr().err == ""  # said once


def test_one_pass_falls_back_to_tiles() -> None:
    net = _net()
    model = OOMAbove(net, limit=64 * 64)
    x = _photo(90, 120)
    y = tiled_forward(model, x, 4, tile=None)
    with torch.no_grad():
        assert float((y - net(x)).abs().max()) < TOL
    assert model.refused == 1 and {h for h, _ in model.sizes} == {60}  # 120 -> 60


def test_past_the_floor_is_one_error_that_says_what_to_do() -> None:
    model = OOMAbove(_net(), limit=10)
    with pytest.raises(ValueError) as info:
        tiled_forward(model, _photo(), 4, tile=128)
    text = str(info.value)
    assert f"out of memory on cpu even with {OOM_FLOOR}-pixel tiles" in text and "--device cpu" in text
    assert "\n" not in text


def test_the_floor_is_the_models_minimum_when_larger() -> None:
    model = OOMAbove(_net(), limit=50 * 50, hints=TilingHints(name="m", minimum=64))
    with pytest.raises(ValueError, match=r"even with 64-pixel tiles \(the floor is 64\)"):
        tiled_forward(model, _photo(), 4, tile=128)


def test_a_model_that_discourages_tiling_still_tiles_when_out_of_memory(capsys: pytest.CaptureFixture[str]) -> None:
    net = _net()
    model = OOMAbove(net, limit=50 * 50, hints=TilingHints(name="spandrel:SwinIR", advice="discouraged"))
    x = _photo(60, 80)
    y = tiled_forward(model, x, 4, tile=256)
    with torch.no_grad():
        assert float((y - net(x)).abs().max()) < TOL
    assert model.refused == 1 and {h for h, _ in model.sizes} == {40}  # one pass (80) -> 40
    err = capsys.readouterr().err
    assert "advises against tiling" in err and "out of memory" in err


# ------------------------------------------------------------------------------------------ the commands
@pytest.fixture
def oom_loader(monkeypatch: pytest.MonkeyPatch) -> dict:
    """``load_generator`` as the CLI calls it, its model behind :class:`OOMAbove` (``["limit"]`` LR pixels; the
    wrappers made are in ``["made"]``)."""
    from restore.engine import weights

    real = weights.load_generator
    state: dict = {"limit": 48 * 48, "made": []}

    def load(path, device="cpu"):
        model, desc = real(path, device)
        state["made"].append(OOMAbove(model, limit=state["limit"]))
        return state["made"][-1], desc

    monkeypatch.setattr(weights, "load_generator", load)
    return state


def _crop(shared: Path, name: str, h: int, w: int) -> np.ndarray:
    rgb = read_image(shared / "data" / "sr-bench" / "Set5" / f"{name}.png").rgb
    return np.ascontiguousarray(rgb[:h, :w])


def test_infer_retries_smaller_tiles(oom_loader, weights_file: str, shared: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("baby", "bird"):
        write_image(src / f"{name}.png", _crop(shared, name, 60, 70))
    assert main(["infer", "--model", weights_file, str(src), "-o", str(tmp_path / "oom"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert err.count("note: out of memory") == 1 and oom_loader["made"][0].refused == 1  # 70 -> 35 fits; said once
    oom_loader["limit"] = 10**9
    assert main(["infer", "--model", weights_file, str(src), "-o", str(tmp_path / "plain"), "--device", "cpu",
                 "--tile", "0"]) == 0
    for name in ("baby", "bird"):
        a, b = read_image(tmp_path / "oom" / f"{name}.png").rgb, read_image(tmp_path / "plain" / f"{name}.png").rgb
        assert np.abs(a - b).max() <= 1 / 255 + 1e-6  # 8-bit outputs of tiled vs one pass: rounding at most


def test_eval_retries_smaller_tiles(oom_loader, weights_file: str, shared: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "bench"
    folder.mkdir()
    for name in ("baby", "head"):
        write_image(folder / f"{name}.png", _crop(shared, name, 192, 200))  # LR 48x50: too large for one window
    runs = {}
    for label, limit in (("oom", 40 * 40), ("plain", 10**9)):
        oom_loader["limit"] = limit
        report = tmp_path / f"{label}.json"
        code = main(["eval", "--model", weights_file, "--data", str(folder), "--no-lpips", "--device", "cpu",
                     "--json", str(report)])
        assert code == 0
        runs[label] = json.loads(report.read_text())["datasets"][0]["mean"]
    assert oom_loader["made"][0].refused >= 1 and oom_loader["made"][1].refused == 0
    assert capsys.readouterr().err.count("note: out of memory") == 1
    assert runs["oom"]["psnr"] == pytest.approx(runs["plain"]["psnr"], abs=1e-3)


def test_demo_pipeline_retries_smaller_tiles(weights_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    from restore.hub.pipelines import load_pipeline

    pipe = load_pipeline(weights_file, "cpu")
    rgb = np.random.default_rng(0).random((70, 60, 3), dtype=np.float32)
    plain, _ = pipe(rgb, tile=0)
    pipe.model = OOMAbove(pipe.model, limit=40 * 40)
    out, _ = pipe(rgb, tile=256)
    assert pipe.model.refused >= 1 and np.abs(out - plain).max() < TOL
    assert "note: out of memory" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ training
def test_training_out_of_memory_is_one_line_naming_batch_and_crop(shared: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A generator that holds 2 LR crops of 8x8 but not 4: the error names train.batch_size=4 and
    data.train.gt_size=32 and gives --set overrides; the override it suggests for the batch then trains."""
    from restore.archs.srresnet import SRResNet

    forward = SRResNet.forward

    def limited(self, x):
        if x.shape[0] * x.shape[-2] * x.shape[-1] > 2 * 8 * 8:
            raise _oom(x.numel())
        return forward(self, x)

    monkeypatch.setattr(SRResNet, "forward", limited)
    common = ["train", "-opt", str(SMOKE), "--device", "cpu", "--no-progress",
              "--set", f"path.root={tmp_path / 'runs'}",
              "--set", f"data.train.roots=[{shared / 'data' / 'sr-train' / 'sun_hays80'}]",
              "--set", f"data.val.root={shared / 'data' / 'sr-bench' / 'Set5'}",
              "--set", f"losses.perceptual.weights={shared / 'weights' / 'vgg16_imagenet_features.pth'}"]
    code = main(common)
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in cap.err + cap.out, cap.err
    line = lines[0]
    assert line.startswith(f"error: {SMOKE}: out of memory on cpu at step 1 (Tried to allocate")
    assert "train.batch_size=4 and data.train.gt_size=32" in line
    assert "--set train.batch_size=2 --set data.train.gt_size=16 --set critic.image_size=16" in line
    assert not (tmp_path / "runs" / "x4_smoke").exists()  # nothing left behind by a run that never checkpointed
    assert main([*common, "--set", "train.batch_size=2", "--set", "train.steps=1"]) == 0


def test_the_message_names_the_crop_key_of_each_task() -> None:
    from restore.config import load_options
    from restore.engine.trainer import out_of_memory_message

    for recipe, key in (("spade/smoke.yml", "data.train.crop_size="), ("stargan/smoke.yml", "data.train.")):
        opts = load_options(ROOT / "options" / "train" / recipe)
        text = out_of_memory_message(opts, 3, torch.device("cuda:0"), _oom(10))
        assert f"train.batch_size={opts.train.batch_size}" in text and key in text and "at step 3" in text


def _smoke_args(shared: Path, tmp_path: Path) -> list[str]:
    return ["train", "-opt", str(SMOKE), "--device", "cpu", "--no-progress",
            "--set", f"path.root={tmp_path / 'runs'}",
            "--set", f"data.train.roots=[{shared / 'data' / 'sr-train' / 'sun_hays80'}]",
            "--set", f"data.val.root={shared / 'data' / 'sr-bench' / 'Set5'}",
            "--set", f"losses.perceptual.weights={shared / 'weights' / 'vgg16_imagenet_features.pth'}",
            "--set", "train.steps=2", "--set", "val.every=2", "--set", "val.max_images=2"]


def test_sr_validation_falls_back_to_tiles(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Training crops fit, whole Set5 validation images do not: validation runs them in tiles and still scores."""
    from restore.archs.srresnet import SRResNet

    forward = SRResNet.forward

    def limited(self, x):
        if not self.training and x.shape[-2] * x.shape[-1] > 64 * 64:
            raise _oom(x.numel())
        return forward(self, x)

    monkeypatch.setattr(SRResNet, "forward", limited)
    assert main(_smoke_args(shared, tmp_path)) == 0
    err = capsys.readouterr().err
    assert "out of memory" in err and "Traceback" not in err, err
    rows = [json.loads(line) for line in (tmp_path / "runs" / "x4_smoke" / "metrics.jsonl").read_text().splitlines()]
    psnr = [r["val/psnr"] for r in rows if "val/psnr" in r]
    assert len(psnr) == 1 and 10 < psnr[0] < 40, rows


def test_out_of_memory_while_validating_is_one_line(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from restore.tasks.sr import SRTask

    def refuse(self, generator, device):
        raise _oom(10**6)

    monkeypatch.setattr(SRTask, "validate", refuse)
    code = main(_smoke_args(shared, tmp_path))
    cap = capsys.readouterr()
    lines = [line for line in cap.err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in cap.err + cap.out, cap.err
    assert "out of memory on cpu while validating at step 2" in lines[0] and "--set val.max_images=N" in lines[0]
