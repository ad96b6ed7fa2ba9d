"""The library surface the refactor introduced: train(), the shared helpers (files, devices, run folder), the
TASKS registry and its contract, and tile 0 meaning one pass everywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from restore.cli import main
from restore.devices import DeviceUnavailable, choose_device
from restore.engine.runs import RunFolder
from restore.files import append_jsonl, atomic_output, atomic_write_text, read_jsonl, sha256_file

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------------- train()
def _smoke_sets(shared: Path, root: Path) -> list[str]:
    data = shared / "data"
    return [f"path.root={root}", f"data.train.roots=[{data / 'sr-train' / 'sun_hays80'}]",
            f"data.val.root={data / 'sr-bench' / 'Set5'}",
            f"losses.perceptual.weights={shared / 'weights' / 'vgg16_imagenet_features.pth'}",
            "train.steps=4", "val.every=4", "checkpoint.every=2"]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_train_returns_the_run_and_equals_the_cli(shared, tmp_path, monkeypatch, capsys):
    from restore.train import train

    monkeypatch.chdir(ROOT)
    said: list[str] = []
    sets = _smoke_sets(shared, tmp_path / "lib")
    first = train("options/train/sr/x4_smoke.yml", sets, device="cpu", progress=False, say=said.append, until=2)
    assert (first.step, first.stop_reason, first.weights, first.resumed_from) == (2, "until", None, None)
    assert first.run_dir == tmp_path / "lib" / "x4_smoke" and first.checkpoint.name == "step_00000002.pt"
    assert said == [f"paused at step 2; checkpoint {first.checkpoint} (the same command continues from there)"]
    # the same call again resumes from the run folder
    paused = train("options/train/sr/x4_smoke.yml", sets, device="cpu", progress=False, say=None, until=3)
    assert paused.resumed_from == first.checkpoint and (paused.step, paused.stop_reason) == (3, "until")
    done = train("options/train/sr/x4_smoke.yml", sets, device="cpu", progress=False, say=said.append)
    assert done.step == 4 and done.finished and done.weights == done.run_dir / "x4_smoke.safetensors"
    assert said[-1] == f"done: step 4; checkpoint {done.checkpoint}; generator {done.weights}"
    # the CLI in one go gives the same weights (same seed, exact resume)
    sets = [a for s in _smoke_sets(shared, tmp_path / "cli") for a in ("--set", s)]
    assert main(["train", "-opt", "options/train/sr/x4_smoke.yml", "--no-progress", "--device", "cpu", *sets]) == 0
    assert "done: step 4" in capsys.readouterr().out
    lib, cli = _weights(done.weights), _weights(tmp_path / "cli" / "x4_smoke" / "x4_smoke.safetensors")
    assert lib.keys() == cli.keys() and all(torch.equal(lib[k], cli[k]) for k in lib)


def test_train_errors_name_the_problem(tmp_path):
    from restore.config import ConfigError
    from restore.train import train

    with pytest.raises(ConfigError, match=r"train\.stepz is not a known option"):
        train(ROOT / "options/train/sr/x4_smoke.yml", ["train.stepz=3"], device="cpu")
    with pytest.raises(ValueError, match="time limit|duration"):
        train(ROOT / "options/train/sr/x4_smoke.yml", [f"path.root={tmp_path}"], time_limit="soon")


def test_no_module_outside_the_cli_builds_argv():
    """train() is the one way in: nothing in restore/ or bench/ calls cli.main or spawns `restore train`."""
    offenders = []
    for folder in ("restore", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name in ("cli.py", "__main__.py"):
                continue
            text = path.read_text()
            if "restore.cli" in text or '"-m", "restore"' in text or "'-m', 'restore'" in text:
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"modules that start training through argv: {offenders}"


# ---------------------------------------------------------------------------------------------------- tasks
def test_every_registered_task_meets_the_contract():
    from restore.engine.task import TASK_METHODS, missing_methods
    from restore.registry import TASKS
    from restore.tasks import build_task  # noqa: F401  (fills TASKS)

    assert TASKS.names() == ["attributes", "spade", "sr", "stargan"]
    assert "describe_generator" in TASK_METHODS and "critic_loss" in TASK_METHODS
    for name in TASKS.names():
        assert missing_methods(TASKS.get(name)) == [], name


def test_trainer_refuses_a_task_that_breaks_the_contract(tmp_path):
    from restore.engine.trainer import Trainer
    from tests.engine.toy import ToyTask, toy_options

    opts = toy_options(tmp_path)

    class Half(ToyTask):
        describe_generator = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="Half is not a restore.engine.task.Task: it lacks describe_generator"):
        Trainer(opts, Half(opts), tmp_path / "run", torch.device("cpu"), progress=False)


# ---------------------------------------------------------------------------------------------------- helpers
def test_atomic_output_leaves_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / "sub" / "card.yml"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old\n" and sorted(p.name for p in target.parent.iterdir()) == ["card.yml"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    import hashlib

    assert sha256_file(target) == hashlib.sha256(b"old\n").hexdigest()


def test_jsonl_rows_and_a_cut_last_line(tmp_path):
    log = tmp_path / "metrics.jsonl"
    assert read_jsonl(log) == []
    append_jsonl(log, {"step": 1, "g/total": 0.5})
    append_jsonl(log, {"step": 2})
    with open(log, "a") as f:
        f.write('{"step": 3, "g/to')  # killed mid-write
    assert read_jsonl(log) == [{"step": 1, "g/total": 0.5}, {"step": 2}]
    log.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not a JSON line"):
        read_jsonl(log)


def test_run_folder_layout(tmp_path):
    from types import SimpleNamespace

    opts = SimpleNamespace(name="x4_san", path=SimpleNamespace(root=str(tmp_path)))
    run = RunFolder.of(opts)
    assert run == RunFolder.at(tmp_path / "x4_san")
    assert run.weights == tmp_path / "x4_san" / "x4_san.safetensors"
    assert (run.checkpoints.name, run.options.name, run.metrics.name, run.hardware.name) == \
        ("checkpoints", "options.yml", "metrics.jsonl", "hardware.jsonl")
    assert run.sample(500).name == "step_00000500.png"


def test_choose_device():
    assert choose_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert choose_device(None) == choose_device("auto")
    assert choose_device("cpu") == torch.device("cpu") == choose_device(torch.device("cpu"))
    with pytest.raises(DeviceUnavailable, match="not a device name"):
        choose_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailable, match="--device cuda was asked for, but torch sees no CUDA device"):
            choose_device("cuda")


def test_train_on_a_missing_cuda_device_is_one_line(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["train", "-opt", str(ROOT / "options/train/sr/x4_smoke.yml"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --device cuda was asked for, but torch sees no CUDA device"


# ---------------------------------------------------------------------------------------------------- tile 0
def test_tile_zero_is_one_pass():
    from restore.inference.tiling import tiled_forward

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3, padding=1), torch.nn.PixelShuffle(2))
    x = torch.rand(1, 3, 19, 23)
    assert torch.equal(tiled_forward(model, x, 2, tile=0), tiled_forward(model, x, 2, tile=None))
    with pytest.raises(ValueError, match=r"tile must be an integer >= \d+ \(LR pixels\) or 0 / None"):
        tiled_forward(model, x, 2, tile=-1)


def test_eval_tile_zero_like_infer(shared, tmp_path, capsys):
    import shutil

    folder = tmp_path / "one"
    folder.mkdir()
    shutil.copy(shared / "data" / "sr-bench" / "Set5" / "baby.png", folder)
    weights = ROOT / "weights" / "sr_x4_psnr.safetensors"
    args = ["eval", "--model", str(weights), "--data", str(folder), "--no-lpips", "--device", "cpu"]
    assert main([*args, "--tile", "0", "--json", str(tmp_path / "a.json")]) == 0
    assert main([*args, "--tile", "128", "--json", str(tmp_path / "b.json")]) == 0
    import json

    a, b = (json.loads((tmp_path / n).read_text())["datasets"][0]["mean"] for n in ("a.json", "b.json"))
    assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-3)  # seamless tiles: the same image to rounding


@pytest.mark.parametrize("recipe", ["spade/smoke.yml", "stargan/smoke.yml"])
def test_translation_critic_errors_carry_the_file(shared, monkeypatch, tmp_path, recipe):
    """SPADE and StarGAN build their critic through the same helper as SR, so a critic error names where the value
    came from: the recipe file, or the --set override."""
    import yaml

    from restore.config import ConfigError, load_options
    from restore.tasks import build_task

    monkeypatch.chdir(ROOT)
    data = yaml.safe_load((ROOT / "options" / "train" / recipe).read_text())
    data["critic"].update(padding_mode="zeros", norm={"type": "san"})
    path = tmp_path / "recipe.yml"
    path.write_text(yaml.safe_dump(data))
    message = r"critic\.padding_mode is 'zeros', but critic norm 'san' needs 'circular'"
    with pytest.raises(ConfigError, match=rf"^{path}: {message}"):
        build_task(load_options(path))
    with pytest.raises(ConfigError, match=rf"^--set critic\.padding_mode: {message}"):
        build_task(load_options(ROOT / "options" / "train" / recipe, ["critic.padding_mode=zeros",
                                                                       "critic.norm={type: san}"]))
