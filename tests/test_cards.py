"""Model cards: `restore publish` writes weights + card from a finished run, `restore verify` / verify_folder
catch a wrong sha256, weights without a card and a card whose architecture differs; and the repository's own
weights/ folder verifies."""

from pathlib import Path

import pytest
import yaml

from restore.cli import main
from restore.hub.cards import read_card, verify_folder, write_card

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def published(shared, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["train", "-opt", "options/train/sr/x4_smoke.yml", "--no-progress", "--set",
                 f"path.root={tmp_path / 'runs'}", "--set", "train.steps=2", "--set", "val.every=100",
                 "--set", f"data.train.roots=[{shared / 'data' / 'sr-train' / 'sun_hays80'}]",
                 "--set", f"losses.perceptual.weights={shared / 'weights' / 'vgg16_imagenet_features.pth'}"]) == 0
    out = tmp_path / "weights"
    assert main(["publish", "--run", str(tmp_path / "runs" / "x4_smoke"), "--out", str(out), "--name", "tiny_sr",
                 "--data-source", "../shared/data/sr-train/sun_hays80", "--data-license", "research use"]) == 0
    return out


def test_publish_writes_a_card_that_verifies(published, capsys):
    card = read_card(published / "tiny_sr.yml")
    assert card["task"] == "sr" and card["architecture"]["arch"] == "srresnet"
    assert card["training"]["steps"] == 2 and card["training"]["trained_on"] in ("cpu", "cuda")
    assert "hardware_recorded" not in card["training"]  # the engine recorded it while training
    assert card["data"]["count"] == 80 and card["critic"]["norm"]["type"] == "san"
    assert card["dtype"] == "fp16"  # restore publish stores fp16 by default
    assert (published / "recipes" / "tiny_sr.yml").is_file()
    assert verify_folder(published) == []
    assert main(["verify", str(published)]) == 0


def test_verify_catches_tampering_and_missing_cards(published, capsys):
    weights = published / "tiny_sr.safetensors"
    (published / "orphan.safetensors").write_bytes(weights.read_bytes())
    card = read_card(published / "tiny_sr.yml")
    write_card(published / "tiny_sr.yml", {**card, "sha256": "0" * 64,
                                            "architecture": {**card["architecture"], "arch": "rrdbnet"}})
    problems = verify_folder(published)
    assert any("sha256" in p for p in problems)
    assert any("orphan.safetensors: no model card" in p for p in problems)
    assert any("differs from the weights' metadata" in p for p in problems)
    assert main(["verify", str(published)]) == 2
    (published / "broken.yml").write_text(yaml.safe_dump({"name": "x"}))
    assert any("broken.yml: model card lacks" in p for p in verify_folder(published))


def test_publishing_an_unfinished_run_is_refused(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "options.yml").write_text(yaml.safe_dump({"name": "run", "task": "sr"}))
    assert main(["publish", "--run", str(tmp_path / "run"), "--data-source", "x", "--data-license", "y"]) == 2
    assert "has not finished" in capsys.readouterr().err


def test_a_paused_run_publishes_from_its_checkpoint(published, tmp_path):
    """The fixture's run has checkpoints; publishing the latest one gives the same (EMA) weights as the final file
    (both published as fp16) and a card whose steps are the checkpoint's."""
    from safetensors.torch import load_file

    run = tmp_path / "runs" / "x4_smoke"
    out = tmp_path / "from_ckpt"
    assert main(["publish", "--run", str(run), "--out", str(out), "--name", "ck", "--checkpoint", "latest",
                 "--data-source", "x", "--data-license", "y"]) == 0
    a, b = load_file(out / "ck.safetensors"), load_file(run / "x4_smoke.safetensors")  # fp16 and the fp32 export
    assert a.keys() == b.keys() and all(a[k].equal(b[k].half() if b[k].is_floating_point() else b[k]) for k in a)
    assert read_card(out / "ck.yml")["training"]["steps"] == 2 and verify_folder(out) == []


def test_the_repositorys_weights_verify():
    folder = ROOT / "weights"
    if not any(folder.glob("*.safetensors")):
        pytest.skip("no published weights in weights/ yet")
    assert verify_folder(folder) == []
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    # fp16 storage gives ~29 MB (fp32 was 57.8 MB); 32 MB leaves a little headroom and keeps weights/ well inside
    # the 64 MiB that is carried to a GPU machine together with the training data
    assert total < 32e6, f"weights/ holds {total / 1e6:.1f} MB; the repository's budget is 32 MB (fp16)"
    tasks = {read_card(c)["task"] for c in folder.glob("*.yml")}
    assert {"sr", "spade", "stargan"} <= tasks, f"weights/ must ship a model for every demo tab, has {tasks}"


def test_card_names_the_hardware_each_chunk_trained_on(published, tmp_path):
    """A run trained in chunks on two machines is published as trained on both, whatever machine publishes it."""
    import json

    run = tmp_path / "runs" / "x4_smoke"
    rows = [json.loads(line) for line in (run / "hardware.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["step"] == 0 and rows[0]["trained_on"] in ("cpu", "cuda")
    with open(run / "hardware.jsonl", "a") as f:
        f.write(json.dumps({"step": 1, "trained_on": "cuda", "device": "NVIDIA H100 80GB HBM3", "processes": 4}) + "\n")
    assert main(["publish", "--run", str(run), "--out", str(published), "--name", "mixed", "--data-source", "x",
                 "--data-license", "y"]) == 0
    training = read_card(published / "mixed.yml")["training"]
    assert training["device"].endswith("; NVIDIA H100 80GB HBM3") and training["processes"] == 4
    assert training["trained_on"] in ("cpu+cuda", "cuda")
    (run / "hardware.jsonl").unlink()
    assert main(["publish", "--run", str(run), "--out", str(published), "--name", "old", "--data-source", "x",
                 "--data-license", "y"]) == 0
    assert "publish time" in read_card(published / "old.yml")["training"]["hardware_recorded"]


def test_wall_time_counts_only_steps_that_made_the_weights(tmp_path):
    import json

    from restore.hub.publish import estimated_wall_time

    rows = [(10, 1.0), (20, 0.5), (30, 1.0),  # first chunk: 10 + 20 + 10 s, crashed after step 30
            (30, 2.0), (40, 2.0)]             # resumed from step 20: 10 steps at 2/s, then 10 more
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "speed/it_per_s": r}) + "\n"
                                                    for s, r in rows))
    (tmp_path / "hardware.jsonl").write_text(json.dumps({"step": 0}) + "\n" + json.dumps({"step": 20}) + "\n")
    assert estimated_wall_time(tmp_path) == pytest.approx(10 + 20 + 10 + 5 + 5)
    assert estimated_wall_time(tmp_path, until=20) == pytest.approx(10 + 20)


def test_card_metrics_keep_each_rows_protocol_and_real_photo_niqe(tmp_path):
    """A card made from a clean and a degraded ``restore eval --json`` must not show one protocol for both."""
    import json

    from restore.hub.publish import _metrics

    clean = {"protocol": {"lr": "MATLAB bicubic"}, "degradation": None,
             "datasets": [{"name": "Set14", "mean": {"psnr": 26.7, "lpips": None}}]}
    degraded = {"protocol": {"lr": "realesrgan seed 0"}, "degradation": {"type": "realesrgan", "seed": 0},
                "datasets": [{"name": "Set14 [realesrgan seed 0]", "mean": {"psnr": 22.0}}],
                "real_photos": {"inputs": ["a", "b"], "crop": 256, "images": [{}, {}, {}], "mean": {"niqe": 7.5}}}
    files = []
    for i, result in enumerate((clean, degraded)):
        files.append(tmp_path / f"{i}.json")
        files[-1].write_text(json.dumps(result))
    metrics = _metrics([str(f) for f in files])
    assert metrics["protocol"] == {"lr": "MATLAB bicubic"} and metrics["Set14"] == {"psnr": 26.7}
    assert metrics["Set14 [realesrgan seed 0]"] == {"psnr": 22.0, "protocol": {"lr": "realesrgan seed 0"}}
    assert metrics["real photos"] == {"niqe": 7.5, "images": 3, "crop": 256, "inputs": ["a", "b"]}
