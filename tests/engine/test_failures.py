"""When training goes wrong in the less common ways: divergence inside a norm, a "last good" checkpoint that is not
good, resuming with a changed recipe, a full disk, stale temporaries, a start-up failure. Each case is one line
for the user, never a raw traceback, and never a wrong record."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from restore.config import ConfigError
from restore.engine import checkpoint as ckpt
from restore.engine.trainer import CheckpointWriteError, Trainer
from tests.engine.toy import ToyTask, toy_options

ROOT = Path(__file__).resolve().parents[2]


def make(tmp_path: Path, norm: str = "none", steps: int = 6, **train) -> Trainer:
    opts = toy_options(tmp_path, norm=norm, steps=steps, **train)
    torch.manual_seed(0)
    return Trainer(opts, ToyTask(opts), tmp_path / "run", torch.device("cpu"), progress=False)


def smoke_sets(shared: Path, root: Path) -> list[str]:
    data = shared / "data"
    return [f"path.root={root}", f"data.train.roots=[{data / 'sr-train' / 'sun_hays80'}]",
            f"data.val.root={data / 'sr-bench' / 'Set5'}", "losses.perceptual=null"]


# ------------------------------------------------------------------------------------------------- divergence
def test_a_diverging_san_run_stops_with_the_divergence_message(shared, tmp_path, monkeypatch, capsys):
    """It used to crash with torch's `linalg.eigh: The algorithm failed to converge` from SAN's constant."""
    from restore.cli import main

    monkeypatch.chdir(ROOT)
    sets = [a for s in [*smoke_sets(shared, tmp_path), "train.lr_g=1e6", "train.steps=30"] for a in ("--set", s)]
    code = main(["train", "-opt", "options/train/sr/x4_smoke.yml", "--no-progress", "--device", "cpu", *sets])
    err = capsys.readouterr().err
    assert code == 3, err
    assert err.startswith("error: training diverged at step") or err.startswith("error: non-finite loss"), err
    assert "Last good checkpoint" in err and "Traceback" not in err and "LinAlgError" not in err


def test_san_names_the_layer_whose_weight_is_not_finite():
    from restore.archs.vgg_critic import VGGCritic
    from restore.norms import build_norm

    norm = build_norm({"type": "san"})
    critic = norm.apply(VGGCritic(image_size=32, width=4, dense=8, padding_mode="circular"))
    critic(torch.rand(1, 3, 32, 32))
    with torch.no_grad():
        next(m for m in critic.modules() if isinstance(m, torch.nn.Conv2d)).parametrizations.weight.original[0] = \
            float("inf")
    with pytest.raises(FloatingPointError, match=r"SAN: the weight of critic layer '.+' is not finite"):
        norm.step()
        critic(torch.rand(1, 3, 32, 32))


def test_last_good_checkpoint_skips_blown_up_weights(tmp_path):
    trainer = make(tmp_path, steps=6)  # checkpoints at 3 and 6 (keep 2)
    trainer.fit()
    newest = ckpt.latest_checkpoint(trainer.ckpt_dir)
    assert trainer.last_good_checkpoint() == (newest, [])
    state = ckpt.load(newest)
    state["critic"] = {k: v * 1e4 if v.is_floating_point() else v for k, v in state["critic"].items()}
    ckpt.save_atomic(state, newest)
    good, rejected = trainer.last_good_checkpoint()
    assert good == ckpt.checkpoint_path(trainer.ckpt_dir, 3) and rejected == [newest]
    older = ckpt.load(good)
    older["generator"]["state"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                                   for k, v in older["generator"]["state"].items()}
    ckpt.save_atomic(older, good)
    assert trainer.last_good_checkpoint() == (None, [newest, good])
    assert "none yet" in trainer._last_good_message() and "do not resume from them" in trainer._last_good_message()


# ------------------------------------------------------------------------------------------------- resume
def test_resume_refuses_a_changed_learning_rate_or_norm(tmp_path):
    make(tmp_path, steps=3).fit()
    changed = make(tmp_path, steps=3, lr_g=5e-4)
    with pytest.raises(ConfigError, match=r"trained with other options: train\.lr_g: 0\.001 -> 0\.0005.*--set name="):
        changed.resume()
    renormed = make(tmp_path, norm="gp", steps=3)
    with pytest.raises(ConfigError, match=r"critic\.norm\.type: 'none' -> 'gp'"):
        renormed.resume()


def test_resume_applies_run_options_and_says_so(tmp_path, capsys):
    make(tmp_path, steps=3).fit()
    again = make(tmp_path, steps=3, log_every=1)
    assert again.resume() is not None and again.step == 3
    assert "resume: from step 3 on, changed options apply: train.log_every: 2 -> 1" in capsys.readouterr().out


def test_a_checkpoint_of_another_architecture_is_one_line(tmp_path):
    trainer = make(tmp_path, steps=3)
    trainer.fit()
    state = ckpt.load(ckpt.latest_checkpoint(trainer.ckpt_dir))
    state["generator"]["state"] = {f"renamed.{k}": v for k, v in state["generator"]["state"].items()}
    with pytest.raises(ValueError) as info:
        make(tmp_path, steps=3).load_state_dict(state, source="x.pt")
    msg = str(info.value)
    assert msg.startswith("x.pt: the stored generator does not fit") and "\n" not in msg and "--set name=" in msg
    assert "missing" in msg and "unknown" in msg


# ------------------------------------------------------------------------------------------------- files
def test_a_full_disk_pauses_with_one_line(tmp_path, monkeypatch):
    trainer = make(tmp_path, steps=6)
    trainer.fit(stop_at=3)
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save({"partial": torch.zeros(10)}, f)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError) as info:
        trainer.fit()
    msg = str(info.value)
    assert "No space left on device" in msg and str(trainer.ckpt_dir) in msg and "MiB free" in msg
    assert "paused at step 6" in msg and "step_00000003.pt" in msg and "run the same command again" in msg
    assert sorted(p.name for p in trainer.ckpt_dir.iterdir()) == ["step_00000003.pt"]  # nothing half-written


def test_the_cli_reports_a_full_disk_as_a_pause(shared, tmp_path, monkeypatch, capsys):
    from restore.cli import main

    monkeypatch.chdir(ROOT)

    def full_disk(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 123 vs 456")

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    sets = [a for s in [*smoke_sets(shared, tmp_path), "train.steps=2", "checkpoint.every=2"] for a in ("--set", s)]
    assert main(["train", "-opt", "options/train/sr/x4_smoke.yml", "--no-progress", *sets]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: could not write checkpoint step_00000002.pt into "), err


def test_stale_temporaries_are_removed_on_start(tmp_path):
    trainer = make(tmp_path, steps=3)
    trainer.ckpt_dir.mkdir(parents=True)
    stale = [trainer.ckpt_dir / ".step_00000003.pt.k2j3h.tmp", trainer.run_dir / ".toy.safetensors.ab12.tmp",
             trainer.ckpt_dir / ".time_probe_0.pt"]
    for p in stale:
        p.write_bytes(b"half")
    keep = trainer.run_dir / "notes.txt"
    keep.write_text("mine")
    trainer.fit()
    assert not any(p.exists() for p in stale) and keep.read_text() == "mine"


def test_a_run_that_fails_at_start_up_leaves_no_folder(shared, tmp_path, monkeypatch):
    from restore.train import train

    monkeypatch.chdir(ROOT)
    junk = tmp_path / "photos"
    junk.mkdir()
    (junk / "broken.png").write_bytes(b"\x89PNG not really")
    sets = [*smoke_sets(shared, tmp_path / "runs"), f"data.train.roots=[{junk}]", "train.steps=2"]
    with pytest.raises(Exception):  # noqa: B017  (whatever the data set raises for a broken file)
        train("options/train/sr/x4_smoke.yml", sets, device="cpu", progress=False, say=None)
    assert not (tmp_path / "runs" / "x4_smoke").exists()


def test_check_names_missing_paths(tmp_path, monkeypatch, capsys):
    from restore.cli import main

    monkeypatch.chdir(tmp_path)  # the recipe's ../shared paths do not resolve from here
    assert main(["check", "-opt", str(ROOT / "options/train/sr/x4_smoke.yml")]) == 2
    err = capsys.readouterr().err
    assert "path(s) do not exist" in err and "data.train.roots[0] ../shared/data/sr-train/sun_hays80" in err
