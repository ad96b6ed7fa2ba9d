"""``restore diagnose``: end to end on tiny SR and StarGAN runs, plus unit tests of the hooks and layer norms."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from restore.cli import main
from restore.norms import build_norm
from restore.study.diagnose import ConvInputs, layer_norms, raw_weight, resolve_checkpoint, sparsity_summary

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine tiny convs are ~50x faster than with contended threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def in_repo(shared, monkeypatch, one_thread):
    monkeypatch.chdir(ROOT)  # the recipes' data paths are relative to the repository root
    return shared


def numbers(value: Any) -> list[float]:
    """Every number in a JSON value (None counts as a failure: the writer turns non-finite floats into null)."""
    if value is None:
        return [math.nan]
    if isinstance(value, bool) or isinstance(value, str):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in numbers(v)]
    return [x for v in value for x in numbers(v)]


def check_outputs(out: Path) -> dict[str, Any]:
    for name in ("report.md", "diagnostics.json", "layers.png", "sparsity.png", "gradients.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = (out / "report.md").read_text()
    for link in ("(layers.png)", "(sparsity.png)", "(gradients.png)"):
        assert link in report
    data = json.loads((out / "diagnostics.json").read_text())
    assert all(math.isfinite(x) for x in numbers(data))
    assert data["layers"] and len(data["layers"]) == len(data["sparsity"])
    for layer in data["layers"]:
        tol = 1e-5 * layer["true"]
        assert layer["true"] >= layer["dc"] - tol  # the frequency-0 block is one of the blocks
        assert layer["true"] >= layer["san"] - tol  # an entry never exceeds the spectral norm
        if layer["stride"] == [1, 1] and layer["kernel_fits"]:
            assert layer["true"] >= layer["sn"] - tol  # Parseval (see restore.study.diagnose.layer_norms)
    for s in data["sparsity"]:
        assert 0 <= s["zero_fraction"] <= s["near_zero_fraction"] <= 1
    n = data["header"]["images"]
    assert len(data["gradients"]["real"]["norms"]) == len(data["gradients"]["fake"]["norms"]) == n
    assert [r["delta"] for r in data["finite_differences"]] == data["header"]["deltas"]
    return data


def test_sr_run_with_san_critic(in_repo, tmp_path, capsys):
    assert main(["train", "-opt", "options/train/sr/x4_smoke.yml", "--no-progress", "--set", f"path.root={tmp_path}",
                 "--set", "train.steps=2", "--set", "losses.perceptual=null"]) == 0
    run = tmp_path / "x4_smoke"
    data_dir = in_repo / "data" / "sr-train" / "sun_hays80"
    assert main(["diagnose", "--checkpoint", str(run), "--data", str(data_dir), "--images", "6", "--batch", "4",
                 "--device", "cpu"]) == 0
    assert "report.md" in capsys.readouterr().out
    data = check_outputs(run / "diagnostics")
    h = data["header"]
    assert (h["task"], h["norm"]["type"], h["step"], h["images"], h["generator"]) == ("sr", "san", 2, 6, "ema")
    assert [layer["stride"][0] for layer in data["layers"]] == [1, 2] * 4  # Table 8 critic
    assert data["layers"][0]["input_size"] == [32, 32] and data["layers"][-1]["input_size"] == [4, 4]
    for layer in data["layers"]:
        assert layer["parametrized"] and layer["padding_mode"] == "circular"
        # SAN divides by its constant (g = 1 at ratio 1, refreshed after every step): the weight in use has
        # true norm true / SAN, computed independently from the parametrization's output
        assert layer["true_effective"] == pytest.approx(layer["true_over_san"], rel=1e-4)
    assert data["sparsity"][0]["channels"] == 3 and data["sparsity"][0]["zero_fraction"] == 0
    report = (run / "diagnostics" / "report.md").read_text()
    assert "step 2" in report and "upper bound" in report and "**san**" in report


def test_stargan_run_tuple_output(in_repo, tmp_path):
    assert main(["train", "-opt", "options/train/stargan/smoke.yml", "--no-progress", "--set",
                 f"path.root={tmp_path}", "--set", "train.steps=1"]) == 0
    ckpt = tmp_path / "stargan_smoke" / "checkpoints" / "step_00000001.pt"
    out = tmp_path / "report"
    assert main(["diagnose", "--checkpoint", str(ckpt), "--data", str(in_repo / "data" / "faces" / "utkface"),
                 "-o", str(out), "--images", "4", "--batch", "2", "--device", "cpu"]) == 0
    data = check_outputs(out)
    assert data["header"]["task"] == "stargan" and data["header"]["generator"] == "generator"
    names = [layer["name"] for layer in data["layers"]]
    assert names == ["main.0", "main.2", "main.4", "score", "classify"]  # both heads of the tuple output
    assert data["layers"][-1]["kernel"] == [4, 4] and data["layers"][-1]["input_size"] == [4, 4]
    assert not (tmp_path / "stargan_smoke" / "diagnostics").exists()  # -o wins over the default


def test_weights_file_and_missing_checkpoint_are_clear_errors(tmp_path, capsys):
    weights = tmp_path / "x4_smoke.safetensors"
    weights.write_bytes(b"")
    assert main(["diagnose", "--checkpoint", str(weights), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "holds no critic" in err and "run folder" in err and ".pt" in err and "Traceback" not in err
    assert main(["diagnose", "--checkpoint", str(tmp_path), "--data", str(tmp_path)]) == 2
    assert "no checkpoint found" in capsys.readouterr().err
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    for step in (5, 12):
        (ckpts / f"step_{step:08d}.pt").write_bytes(b"")
    assert resolve_checkpoint(tmp_path / "run") == (ckpts / "step_00000012.pt", tmp_path / "run")
    assert main(["diagnose", "--checkpoint", str(tmp_path / "run"), "--data", str(tmp_path)]) == 2
    assert "cannot load checkpoint" in capsys.readouterr().err


def test_one_always_zero_input_channel_gives_sparsity_one_over_c():
    torch.manual_seed(0)
    first = nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        first.weight[2].zero_()
        first.bias.copy_(torch.tensor([5.0, 5.0, 0.0, 5.0]))
    critic = nn.Sequential(first, nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))
    recorder = ConvInputs(critic)
    with recorder, torch.no_grad():
        for _ in range(3):
            critic(torch.rand(5, 3, 8, 6))
    critic(torch.rand(1, 3, 8, 6))  # outside the context: hooks removed, nothing recorded
    assert recorder.sizes == {"0": (8, 6), "2": (8, 6)}
    second = sparsity_summary(recorder.channel_norms("2"))
    assert second["zero_fraction"] == 1 / 4 and second["samples"] == 15 and second["channels"] == 4
    assert sparsity_summary(recorder.channel_norms("0"))["zero_fraction"] == 0


def test_layer_norms_use_the_raw_weight_of_a_normalised_layer():
    torch.manual_seed(1)
    critic = build_norm({"type": "sn"}).apply(nn.Sequential(nn.Conv2d(3, 5, 3, padding=1)))
    conv = critic[0]
    for _ in range(30):  # converge the power iteration
        critic(torch.zeros(1, 3, 4, 4))
    raw = conv.parametrizations.weight.original
    assert raw_weight(conv) is not None and torch.equal(raw_weight(conv), raw.detach())
    norms = layer_norms(conv.eval(), (6, 7))
    assert norms["sn"] == pytest.approx(float(torch.linalg.svdvals(raw.detach().reshape(5, -1))[0]), rel=1e-5)
    assert norms["true_effective"] == pytest.approx(norms["true"] / norms["sn"], rel=1e-3)
    assert norms["true"] >= norms["sn"] and norms["kernel_fits"]
    assert not layer_norms(conv, (2, 2))["kernel_fits"]
