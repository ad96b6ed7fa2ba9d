"""`restore ablate`: planning (norm blocks, early errors), aggregation over seeds, and an end-to-end run of the SR
smoke recipe with two norms and two steps."""

import csv
import json
from pathlib import Path

import pytest

from restore.cli import main
from restore.config import ConfigError
from restore.study.ablation import norm_block, plan_runs, summarise

ROOT = Path(__file__).resolve().parents[1]


def test_norm_block_keeps_the_recipes_options_for_its_own_norm():
    assert json.loads(norm_block({"type": "san", "ratio": 0.25, "gain": 1.3}, "san")) == \
        {"type": "san", "ratio": 0.25, "gain": 1.3}
    assert json.loads(norm_block({"type": "san", "ratio": 0.25}, "gp")) == {"type": "gp"}


def test_summary_is_mean_and_std_over_seeds():
    rows = [{"norm": "san", "seed": 0, "run": "a", "psnr": 20.0}, {"norm": "san", "seed": 1, "run": "b", "psnr": 22.0},
            {"norm": "sn", "seed": 0, "run": "c", "psnr": 21.0}]
    san, sn = summarise(rows)
    assert (san["norm"], san["seeds"], san["psnr"], san["psnr_std"]) == ("san", 2, 21.0, 1.0)
    assert (sn["psnr"], sn["psnr_std"]) == (21.0, None)


def test_planning_errors_name_the_problem(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match="unknown norm.*sanx"):
        plan_runs("options/train/sr/x4_smoke.yml", ["san", "sanx"], 1, 2, tmp_path)
    with pytest.raises(ConfigError, match="no critic block"):
        plan_runs("options/train/sr/x4_psnr.yml", ["san"], 1, 2, tmp_path)
    _, plans = plan_runs("options/train/sr/x4_smoke.yml", ["san", "gp"], 2, 5, tmp_path)
    assert [(p.norm, p.seed, p.name) for p in plans] == [("san", 0, "x4_smoke_san_s0"), ("san", 1, "x4_smoke_san_s1"),
                                                         ("gp", 0, "x4_smoke_gp_s0"), ("gp", 1, "x4_smoke_gp_s1")]


def test_ablate_end_to_end_on_the_smoke_recipe(shared, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "abl"
    set5 = shared / "data" / "sr-bench" / "Set5"
    assert main(["ablate", "-opt", "options/train/sr/x4_smoke.yml", "--norms", "san,gp", "--steps", "2",
                 "--out", str(out), "--device", "cpu", "--eval-data", str(set5),
                 "--set", f"data.train.roots=[{shared / 'data' / 'sr-train' / 'sun_hays80'}]",
                 "--set", f"losses.perceptual.weights={shared / 'weights' / 'vgg16_imagenet_features.pth'}"]) == 0
    table = (out / "ablation.md").read_text()
    assert "| san | 1 |" in table and "| gp | 1 |" in table and "Set5/psnr" in table
    rows = list(csv.DictReader((out / "ablation.csv").open()))
    assert [r["norm"] for r in rows] == ["san", "gp"]
    assert all(float(r["critic_ms"]) > 0 and 15 < float(r["Set5/psnr"]) < 40 for r in rows)
    assert (out / "curves.png").stat().st_size > 1000
    assert (out / "runs" / "x4_smoke_san_s0" / "x4_smoke_san_s0.safetensors").is_file()
    assert "ablation.md" in capsys.readouterr().out
