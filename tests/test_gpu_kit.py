"""scripts/gpu (the prepared GPU run): its CPU rehearsal, end to end, on a fresh copy of the repository.

The copy holds exactly the files that would travel to the GPU machine (``git ls-files -co --exclude-standard``: on
a clean CI clone, the committed tree), so nothing of this checkout's ignored state (.venv, runs/, gpu_pack/) helps.
In it, ``scripts/gpu/pack.sh --tiny`` builds a small pack from ../shared (the pack step is tested too, VGG16
packing and the travel-size check included), then ``scripts/gpu/run.sh --rehearse`` runs every step of the GPU
run on the CPU with tiny budgets. About 2-3 minutes on 2 cores. Skips when ../shared is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["env", "install", "import_check", "vgg_unpack", "train_psnr", "train_gan", "half", "eval_psnr", "eval_gan",
         "infer_example", "pytest_cuda", "infer_speed", "critic_step", "train_step"]


def copy_travelling_files(dst: Path) -> int:
    """Copy the files git would not ignore (tracked + untracked-not-ignored) into ``dst``; returns their count."""
    out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"], check=True,
                         capture_output=True).stdout.decode()
    count = 0
    for rel in filter(None, out.split("\0")):
        src = ROOT / rel
        if not src.is_file():  # deleted in the working tree but still tracked
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
        count += 1
    return count


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory, shared):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout of the repository (the files to copy come from git ls-files)")
    base = tmp_path_factory.mktemp("gpu_kit")
    repo, out = base / "repo", base / "out"
    assert copy_travelling_files(repo) > 50
    env = {**os.environ, "RESTORE_SHARED": str(shared), "PYTHON": sys.executable, "PY": sys.executable,
           "OUT": str(out)}
    env.pop("GPU_RUN_CAPPED", None)
    pack = subprocess.run(["bash", "scripts/gpu/pack.sh", "--tiny"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=300)
    assert pack.returncode == 0, pack.stdout[-3000:] + pack.stderr[-3000:]
    run = subprocess.run(["bash", "scripts/gpu/run.sh", "--rehearse"], cwd=repo, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    return repo, out, pack.stdout, run.stdout


def test_pack_builds_the_tiny_pack_and_reports_the_travel_size(rehearsal):
    repo, _, pack_out, _ = rehearsal
    pack = repo / "gpu_pack"
    assert list((pack / "sr" / "train").glob("*.jpg")) and len(list((pack / "sr" / "Set5").glob("*.png"))) == 2
    assert list((pack / "faces" / "utkface").glob("*.jpg"))
    facades = pack / "facades" / "base"
    photos = sorted(p.stem for p in facades.glob("*.jpg"))
    assert photos and photos == sorted(p.stem for p in facades.glob("*.png"))  # label maps kept, lossless PNG
    assert (facades / "label_names.txt").is_file()
    meta = json.loads((pack / "vgg16" / "meta.json").read_text())
    assert meta["name"] == "vgg16_imagenet_features.pth" and len(meta["sha256"]) == 64
    assert "total that travels" in pack_out
    sizes = json.loads((pack / "SIZES.json").read_text())["mib"]
    assert 0 < sizes["total"] < 60


def test_rehearsal_runs_every_step_and_records_it(rehearsal):
    _, out, _, run_out = rehearsal
    results = json.loads((out / "results.json").read_text())
    steps = {s["step"]: s for s in results["steps"]}
    missing = [s for s in STEPS if s not in steps]
    assert not missing, f"steps not recorded: {missing}\n{run_out[-3000:]}"
    failed = {name: s for name, s in steps.items() if s["rc"] != 0}
    assert not failed, f"failed steps: {failed}\n{run_out[-3000:]}"
    for stage in ("psnr", "gan"):
        train = results[f"train_{stage}"]
        assert train["last_step"] == 4 and train["steps_per_s_median"] > 0
        assert train["gpu"]["available"] is False  # no nvidia-smi here; the reason is recorded
        set5 = results[f"eval_{stage}"]["datasets"][0]
        assert set5["name"] == "Set5" and set5["mean"]["psnr"] > 20
    rows = results["bench_infer_speed"]["rows"]
    pairs = {(m, d) for m in ("srresnet", "rrdbnet") for d in ("fp32", "fp16")}
    assert {(r["model"], r["dtype"]) for r in rows} == pairs
    assert all("median_ms" in r for r in rows) and results["bench_infer_speed"]["ratios"]
    assert results["bench_critic_step"]["rows"]
    assert "skipped" in results["pytest_cuda"]["summary"]  # CUDA tests skip on the CPU, and are collected


def test_rehearsal_leaves_fp16_ema_weights_and_logs_within_the_limits(rehearsal):
    from safetensors import safe_open

    from restore.engine.weights import load_generator

    _, out, _, _ = rehearsal
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and all((out / f).stat().st_size < 16 * 2**20 for f in files)
    assert {"results.json", "logs.tar.gz", "gpu_x4_psnr_ema_fp16.safetensors",
            "gpu_x4_san_ema_fp16.safetensors"} <= set(files)
    for name in ("gpu_x4_psnr", "gpu_x4_san"):
        path = out / f"{name}_ema_fp16.safetensors"
        with safe_open(str(path), framework="pt") as f:
            assert all(f.get_tensor(k).dtype.is_floating_point for k in f.keys())
            assert {str(f.get_tensor(k).dtype) for k in f.keys()} == {"torch.float16"}
        model, desc = load_generator(path)
        assert desc["arch"] == "srresnet" and desc["kwargs"]["num_blocks"] == 16 and desc["steps"] == 4
        assert desc["dtype"] == "fp16"
    import tarfile

    with tarfile.open(out / "logs.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.endswith("gpu_x4_san/metrics.jsonl") for n in names) and "steps.jsonl" in names
