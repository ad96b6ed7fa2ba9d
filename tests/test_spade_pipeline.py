"""SPADE end to end through the CLI on the real CMP Facades pairs: train (every norm), infer, eval, errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import restore.norms  # noqa: F401  (fills NORMS for parametrisation)
from restore.cli import main
from restore.registry import NORMS

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "options/train/spade/smoke.yml"


@pytest.fixture
def in_repo(shared, monkeypatch):
    monkeypatch.chdir(ROOT)  # the recipes' data paths are relative to the repository root
    return shared


def facades(shared: Path) -> Path:
    return shared / "data" / "label2photo" / "cmp_facades" / "base"


def train(tmp_path, *sets, steps=2):
    from tests.conftest import SHARED

    paths = ["--set", f"data.train.root={facades(SHARED)}", "--set", f"data.val.root={facades(SHARED)}",
             "--set", f"losses.perceptual.weights={SHARED / 'weights' / 'vgg16_imagenet_features.pth'}"]
    return main(["train", "-opt", RECIPE, "--no-progress", "--set", f"path.root={tmp_path}", "--set",
                 f"train.steps={steps}", "--set", "val.every=1000", "--set", f"checkpoint.every={steps}",
                 *paths, *sets])


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("norm", NORMS.names())
def test_smoke_train_with_every_norm(in_repo, tmp_path, norm):
    assert train(tmp_path, "--set", f"critic.norm={{type: {norm}}}", "--set", "train.log_every=1") == 0
    run = tmp_path / "spade_smoke"
    logged = metrics(run)
    assert [r["step"] for r in logged] == [1, 2]
    for key in ("d/adv", "g/adv", "g/feature_matching", "g/perceptual"):
        assert all(np.isfinite(r[key]) for r in logged), key
    from restore.engine.weights import load_generator

    model, desc = load_generator(run / "spade_smoke.safetensors")
    assert desc["task"] == "spade" and desc["critic_norm"]["type"] == norm
    assert desc["label_set"] == "cmp_facades" and desc["num_classes"] == 12 and len(desc["palette"]) == 12
    assert desc["kwargs"]["label_channels"] == 12 and model.sample_shape() == (64, 64)
    state = torch.load(run / "checkpoints" / "step_00000002.pt", weights_only=True)
    assert state["critic"] is not None


def test_san_critic_really_uses_circular_padding(in_repo):
    from restore.config import load_options
    from restore.tasks import build_task

    opts = load_options(ROOT / RECIPE, [f"data.train.root={facades(in_repo)}", f"data.val.root={facades(in_repo)}",
                                         "losses.perceptual=null"])
    task = build_task(opts)
    convs = [m for m in task.critic.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.padding_mode == "circular" for c in convs)
    assert task.label_channels == 12 and task.generator.sample_shape() == (64, 64)


def test_vae_variant_trains_with_a_kl_term(in_repo, tmp_path):
    assert train(tmp_path, "--set", "generator.use_vae=true", "--set", "generator.z_dim=8",
                 "--set", "train.log_every=1", "--set", "losses.perceptual=null") == 0
    logged = metrics(tmp_path / "spade_smoke")
    assert all(np.isfinite(r["g/kl"]) and r["g/kl"] >= 0 for r in logged)


def test_infer_ids_and_colour_maps_and_eval(in_repo, tmp_path, capsys):
    assert train(tmp_path, "--set", "losses.perceptual=null") == 0
    weights = tmp_path / "spade_smoke" / "spade_smoke.safetensors"
    label = facades(in_repo) / "cmp_b0001.png"
    out = tmp_path / "photo.png"
    assert main(["infer", "--model", str(weights), str(label), "-o", str(out), "--device", "cpu"]) == 0
    from restore.data.io import read_image

    photo = read_image(out).rgb
    assert photo.shape == (64, 64, 3) and photo.std() > 1e-3  # not constant (2 steps from a small init)
    # the same label map, colour-coded with the model's palette, gives the same photo; --keep-size restores its size
    from restore.data.io import write_image
    from restore.data.labels import colorize, label_map_to_ids, read_label_map, write_palette

    ids = label_map_to_ids(read_label_map(label), "cmp_facades")
    desc_palette = np.asarray(json.loads(_meta(weights))["palette"], dtype=np.uint8)
    colour = tmp_path / "colour.png"
    write_image(colour, colorize(ids, desc_palette).astype(np.float32) / 255)
    palette_file = tmp_path / "facades.txt"
    write_palette(palette_file, desc_palette, [f"c{i}" for i in range(12)])
    out2 = tmp_path / "photo2.png"
    assert main(["infer", "--model", str(weights), str(colour), "-o", str(out2), "--palette", str(palette_file),
                 "--device", "cpu"]) == 0
    np.testing.assert_array_equal(read_image(out2).rgb, photo)
    out3 = tmp_path / "photo3.png"
    assert main(["infer", "--model", str(weights), str(label), "-o", str(out3), "--keep-size", "--device", "cpu"]) == 0
    assert read_image(out3).rgb.shape[:2] == ids.shape
    # eval: FID on 4 held-out pairs (needs the Inception network)
    from restore.metrics.fid import find_inception

    try:
        find_inception()
    except FileNotFoundError as err:
        pytest.skip(f"FID network not available: {err}")
    assert main(["eval", "--task", "spade", "--model", str(weights), "--data", str(facades(in_repo)), "--limit", "4",
                 "--json", str(tmp_path / "fid.json"), "--device", "cpu", "--save", str(tmp_path / "sides")]) == 0
    sides = sorted((tmp_path / "sides").glob("*.png"))
    assert len(sides) == 4 and read_image(sides[0]).rgb.shape == (64, 128, 3)
    result = json.loads((tmp_path / "fid.json").read_text())
    assert result["images"] == 4 and result["fid"] > 0
    assert "FID" in capsys.readouterr().out


def _meta(weights: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        return f.metadata()["restore"]


def test_errors_name_the_problem(in_repo, tmp_path, capsys):
    assert train(tmp_path, "--set", "generator.label_channels=7") == 2
    err = capsys.readouterr().err
    assert "generator.label_channels is 7" in err and "12" in err
    assert train(tmp_path, "--set", "data.train.use_instance=true") == 2
    assert "use_instance" in capsys.readouterr().err
    # a user's label map with a value outside the model's label set
    assert train(tmp_path, "--set", "losses.perceptual=null") == 0
    from PIL import Image

    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((16, 16), 40, dtype=np.uint8)).save(bad)
    assert main(["infer", "--model", str(tmp_path / "spade_smoke" / "spade_smoke.safetensors"), str(bad), "-o",
                 str(tmp_path / "o.png"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "bad.png" in err and "40" in err


def test_own_folder_of_binary_masks_trains_and_infers(tmp_path, monkeypatch):
    """A user's own label2photo_folder of 0/255 masks (num_labels 2): training and inference map 255 to class 1,
    and the model file carries num_labels so inference maps raw values like training did."""
    from PIL import Image

    monkeypatch.chdir(ROOT)
    rng = np.random.default_rng(0)
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    for i in range(4):
        mask = np.zeros((72, 72), np.uint8)
        mask[: 20 + 8 * i] = 255
        Image.fromarray(mask).save(tmp_path / "labels" / f"{i}.png")
        Image.fromarray((rng.random((72, 72, 3)) * 255).astype(np.uint8)).save(tmp_path / "images" / f"{i}.jpg")
    data = (f"{{type: label2photo_folder, labels: {tmp_path / 'labels'}, images: {tmp_path / 'images'}, "
            "num_labels: 2, load_size: 72, crop_size: 64}")
    assert main(["train", "-opt", RECIPE, "--no-progress", "--set", f"path.root={tmp_path / 'runs'}", "--set",
                 f"data.train={data}", "--set", "data.val=null", "--set", "train.steps=2", "--set",
                 "losses.perceptual=null"]) == 0
    weights = tmp_path / "runs" / "spade_smoke" / "spade_smoke.safetensors"
    meta = json.loads(_meta(weights))
    assert (meta["label_set"], meta["num_labels"], meta["num_classes"]) == ("label2photo_folder", 2, 2)
    out = tmp_path / "out.png"
    assert main(["infer", "--model", str(weights), str(tmp_path / "labels" / "0.png"), "-o", str(out)]) == 0
    assert out.is_file()


def test_interrupted_run_resumes_bit_identically(in_repo, tmp_path):
    from safetensors.torch import load_file

    from tests.conftest import SHARED

    def args(root):
        return ["train", "-opt", RECIPE, "--no-progress", "--set", f"path.root={root}", "--set", "train.steps=4",
                "--set", "val.every=1000", "--set", "checkpoint.every=4", "--set", "losses.perceptual=null",
                "--set", f"data.train.root={facades(SHARED)}", "--set", f"data.val.root={facades(SHARED)}"]

    assert main(args(tmp_path / "a")) == 0
    assert main([*args(tmp_path / "b"), "--until", "2"]) == 0
    assert (tmp_path / "b" / "spade_smoke" / "checkpoints" / "step_00000002.pt").is_file()
    assert main(args(tmp_path / "b")) == 0
    a = load_file(tmp_path / "a" / "spade_smoke" / "spade_smoke.safetensors")
    b = load_file(tmp_path / "b" / "spade_smoke" / "spade_smoke.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_publish_writes_the_palette_the_demo_needs_and_verify_checks_it(in_repo, tmp_path, capsys):
    from restore.data.labels import read_palette
    from restore.hub.cards import read_card, verify_folder

    assert train(tmp_path, "--set", "losses.perceptual=null") == 0
    out = tmp_path / "weights"
    assert main(["publish", "--run", str(tmp_path / "spade_smoke"), "--out", str(out), "--name", "tiny_spade",
                 "--data-source", "cmp facades", "--data-license", "MIT"]) == 0
    card = read_card(out / "tiny_spade.yml")
    assert card["palette"] == "tiny_spade.palette.txt"
    colours, names = read_palette(out / card["palette"])
    assert colours.shape == (12, 3) and len(set(map(tuple, colours.tolist()))) == 12 and len(names) == 12
    assert "background=1, facade=2, window=3" in (out / card["palette"]).read_text()  # CMP stores 1..12
    assert verify_folder(out) == []
    lines = (out / card["palette"]).read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("0 "))
    lines[first] = "0 1 2 3 " + lines[first].split(maxsplit=4)[4]  # repaint class 0
    (out / card["palette"]).write_text("\n".join(lines) + "\n")
    assert any("differs from the colours stored in the weights" in p for p in verify_folder(out))
    (out / card["palette"]).unlink()
    assert any("palette file not found" in p for p in verify_folder(out))
