"""End to end through the CLI on real photos: train (every norm), then eval and infer the published weights."""

from pathlib import Path

import pytest

import restore.norms  # noqa: F401  (fills NORMS for parametrisation)
from restore.cli import main
from restore.registry import NORMS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def in_repo(shared, monkeypatch):
    monkeypatch.chdir(ROOT)  # the recipes' data paths are relative to the repository root
    return shared


def smoke(tmp_path, *sets):
    from tests.conftest import SHARED

    data = SHARED / "data"
    paths = ["--set", f"data.train.roots=[{data / 'sr-train' / 'sun_hays80'}]",
             "--set", f"data.val.root={data / 'sr-bench' / 'Set5'}",
             "--set", f"losses.perceptual.weights={SHARED / 'weights' / 'vgg16_imagenet_features.pth'}"]
    return main(["train", "-opt", "options/train/sr/x4_smoke.yml", "--no-progress", "--set", f"path.root={tmp_path}",
                 "--set", "train.steps=3", "--set", "val.every=3", "--set", "checkpoint.every=3", *paths, *sets])


@pytest.mark.parametrize("norm", NORMS.names())
def test_smoke_train_with_every_norm(in_repo, tmp_path, norm):
    assert smoke(tmp_path, "--set", f"critic.norm.type={norm}") == 0
    run = tmp_path / "x4_smoke"
    assert (run / "x4_smoke.safetensors").is_file() and (run / "checkpoints" / "step_00000003.pt").is_file()
    from restore.engine.weights import load_generator

    model, desc = load_generator(run / "x4_smoke.safetensors")
    assert desc["arch"] == "srresnet" and desc["critic_norm"]["type"] == norm and model.scale == 4


def test_eval_and_infer_on_trained_weights(in_repo, tmp_path, capsys):
    assert smoke(tmp_path) == 0
    weights = tmp_path / "x4_smoke" / "x4_smoke.safetensors"
    set5 = in_repo / "data" / "sr-bench" / "Set5"
    assert main(["eval", "--model", str(weights), "--data", str(set5), "--no-lpips", "--json",
                 str(tmp_path / "e.json")]) == 0
    assert "| Set5 |" in capsys.readouterr().out and (tmp_path / "e.json").is_file()
    out = tmp_path / "bird_x4.png"
    assert main(["infer", "--model", str(weights), str(set5 / "bird.png"), "-o", str(out), "--tile", "64"]) == 0
    from restore.data.io import read_image

    src, res = read_image(set5 / "bird.png"), read_image(out)
    assert res.rgb.shape == (src.rgb.shape[0] * 4, src.rgb.shape[1] * 4, 3)
    assert res.rgb.std() > 0.05  # a real picture, not a constant


def test_cli_errors_name_the_problem(in_repo, tmp_path, capsys):
    assert smoke(tmp_path, "--set", "data.train.roots=[no/such/folder]") == 2
    assert "no/such/folder" in capsys.readouterr().err
    assert smoke(tmp_path, "--set", "data.train.gt_size=64") == 2
    assert "data.train.gt_size is 64 but critic.image_size is 32" in capsys.readouterr().err
    assert main(["infer", "--model", str(tmp_path / "missing.safetensors"), "x.png", "-o", "y.png"]) == 2
    assert "model weights not found" in capsys.readouterr().err


def test_tiled_equals_untiled_for_the_real_generator(shared):
    """The issue's criterion: within 1/255 on an image small enough for both (full-size SRResNet, real photo)."""
    import torch
    import torch.nn.functional as F

    from restore.archs.srresnet import SRResNet
    from restore.data.io import read_image
    from restore.inference.tiling import tiled_forward

    img = read_image(shared / "data" / "sr-bench" / "Set5" / "butterfly.png").rgb[:160, :128]
    lq = F.avg_pool2d(torch.from_numpy(img).permute(2, 0, 1)[None].float(), 2)  # 80 x 64 LR
    torch.manual_seed(0)
    model = SRResNet().eval()
    with torch.no_grad():
        full = model(lq).clamp(0, 1)
    for tile in (48, 56):  # tiles that do not divide the image
        tiled = tiled_forward(model, lq, 4, tile=tile, overlap=16).clamp(0, 1)
        assert float((tiled - full).abs().max()) <= 1 / 255
