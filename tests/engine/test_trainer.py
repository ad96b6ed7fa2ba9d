import json

import pytest
import torch

from restore.engine.trainer import Trainer, TrainingDiverged
from restore.registry import NORMS
from tests.engine.toy import ToyTask, toy_options


def make(tmp_path, norm="none", steps=6, **kw):
    opts = toy_options(tmp_path, norm=norm, steps=steps)
    torch.manual_seed(0)
    task = ToyTask(opts, **kw)
    return Trainer(opts, task, tmp_path / "run", torch.device("cpu"), progress=False)


def weights(trainer):
    return {**{f"g.{k}": v for k, v in trainer.G.state_dict().items()},
            **{f"d.{k}": v for k, v in trainer.D.state_dict().items()},
            **{f"e.{k}": v for k, v in trainer.ema.module.state_dict().items()}}


@pytest.mark.parametrize("norm", NORMS.names())
def test_every_norm_trains_and_logs(tmp_path, norm):
    t = make(tmp_path, norm, steps=4)
    result = t.fit()
    assert result.step == 4 and not result.stopped_early
    assert all(torch.isfinite(torch.tensor(v)) for v in result.last_scalars.values())
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"g/total", "d/total", "lr/g"} <= set(lines[0]) and any("val/l1" in line for line in lines)
    assert (tmp_path / "run" / "samples" / "step_00000003.png").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step_00000004.pt").is_file()


@pytest.mark.parametrize("norm", ["san", "gp", "bsn"])
def test_resume_is_bit_identical(tmp_path, norm):
    straight = make(tmp_path / "a", norm, steps=6)
    straight.fit()
    first = make(tmp_path / "b", norm, steps=6)
    assert first.fit(stop_at=3).stopped_early  # an interrupted run of the same recipe: step_00000003.pt
    second = make(tmp_path / "b", norm, steps=6)
    assert second.resume() is not None and second.step == 3
    second.fit()
    a, b = weights(straight), weights(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight.opt_g.state_dict()["state"][0]["exp_avg"].equal(second.opt_g.state_dict()["state"][0]["exp_avg"])
    assert straight.norm.state_dict() == second.norm.state_dict()


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path):
    t = make(tmp_path, steps=10, nan_at=5)
    message = r"non-finite loss at step 5 \(g/total.*Last good checkpoint: .*step_00000003"
    with pytest.raises(TrainingDiverged, match=message):
        t.fit()
    assert (tmp_path / "run" / "checkpoints" / "step_00000003.pt").is_file()


def test_sigint_writes_a_checkpoint_and_stops(tmp_path):
    t = make(tmp_path, steps=10, signal_at=2)
    result = t.fit()
    assert result.stopped_early and result.step == 2
    assert (tmp_path / "run" / "checkpoints" / "step_00000002.pt").is_file()
    again = make(tmp_path, steps=10)
    again.resume()
    assert again.step == 2


def test_lr_halves_at_milestones(tmp_path):
    opts = toy_options(tmp_path, steps=8, lr_milestones=[0.25, 0.5])
    t = Trainer(opts, ToyTask(opts), tmp_path / "run", torch.device("cpu"), progress=False)
    t.fit()
    assert t.opt_g.param_groups[0]["lr"] == pytest.approx(1e-3 / 4)


def test_sigterm_to_the_whole_process_group_pauses_with_a_checkpoint(shared, tmp_path):
    """pkill -f / Ctrl-C / SLURM's scancel signal every process of the job, data workers included: the workers must
    leave it to the main process, which finishes its step and writes the pause checkpoint (it once crashed with
    'DataLoader worker ... is killed by signal: Terminated' and lost the steps since the last checkpoint)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    run = tmp_path / "runs" / "x4_smoke"
    cmd = [sys.executable, "-m", "restore", "train", "-opt", "options/train/sr/x4_smoke.yml", "--no-progress",
           "--set", f"path.root={tmp_path / 'runs'}", "--set", "train.steps=100000", "--set", "train.log_every=1",
           "--set", "val.every=100000", "--set", "checkpoint.every=100000", "--set", "data.num_workers=1",
           "--set", f"data.train.roots=[{shared / 'data' / 'sr-train' / 'sun_hays80'}]",
           "--set", "losses.perceptual=null"]
    proc = subprocess.Popen(cmd, cwd=root, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not ((run / "metrics.jsonl").is_file() and (run / "metrics.jsonl").read_text().count("\n") >= 2):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()[0]
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 4, out  # Exit.PAUSED: a script can tell a pause from a finished run
    assert "paused at step" in out and "killed by signal" not in out, out
    assert list((run / "checkpoints").glob("step_*.pt")), out
