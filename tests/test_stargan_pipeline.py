"""StarGAN end to end through the CLI on real UTKFace faces: train (every norm), classifier, infer, eval, and the
pieces the protocol rests on (linear decay to 0, cycle loss of an identity generator, target vectors)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import restore.norms  # noqa: F401  (fills NORMS for parametrisation)
from restore.cli import main
from restore.registry import NORMS

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "options/train/stargan/smoke.yml"


@pytest.fixture
def in_repo(shared, monkeypatch):
    monkeypatch.chdir(ROOT)
    return shared


def utk() -> str:
    from tests.conftest import SHARED

    return str(SHARED / "data" / "faces" / "utkface")


def train(tmp_path, *sets, steps=2, recipe=RECIPE):
    return main(["train", "-opt", recipe, "--no-progress", "--set", f"path.root={tmp_path}",
                 "--set", f"train.steps={steps}", "--set", "val.every=1000", "--set", f"checkpoint.every={steps}",
                 "--set", f"data.train.root={utk()}", "--set", f"data.val.root={utk()}", *sets])


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.filterwarnings("ignore:utkface. skipped")
@pytest.mark.parametrize("norm", NORMS.names())
def test_smoke_train_with_every_norm(in_repo, tmp_path, norm):
    assert train(tmp_path, "--set", f"critic.norm={{type: {norm}}}", "--set", "train.log_every=1") == 0
    run = tmp_path / "stargan_smoke"
    logged = metrics(run)
    assert [r["step"] for r in logged] == [1, 2]
    for key in ("d/adv", "d/cls", "g/adv", "g/cls", "g/rec", "d/penalty"):
        assert all(np.isfinite(r[key]) for r in logged), key
    assert logged[-1]["lr/g"] == 0.0  # linear decay really ends at 0
    from restore.engine.weights import load_generator

    model, desc = load_generator(run / "stargan_smoke.safetensors")
    assert desc["task"] == "stargan" and desc["critic_norm"]["type"] == norm
    assert desc["attribute_names"] == ["Male", "Age_0-19", "Age_20-39", "Age_40-59", "Age_60+"]
    assert desc["exclusive_groups"] == [[1, 2, 3, 4]] and desc["image_size"] == 32


def test_linear_decay_reaches_zero_exactly():
    from types import SimpleNamespace

    from restore.engine.trainer import make_scheduler

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-4)
    sched = make_scheduler(opt, SimpleNamespace(lr_schedule="linear", steps=30, lr_decay_start=2 / 3))
    lrs = []
    for _ in range(30):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:20] == [1e-4] * 20  # constant for the first two thirds
    assert np.allclose(np.diff(lrs[20:]), -1e-5)  # then a straight line
    assert opt.param_groups[0]["lr"] == 0.0 and lrs[-1] == pytest.approx(1e-5)


@pytest.mark.filterwarnings("ignore:utkface. skipped")
def test_identity_generator_has_zero_cycle_loss(in_repo):
    """The reconstruction term is L1(G(G(x, target), source), x): zero for an identity generator, positive
    for one that changes the image."""
    from restore.config import load_options
    from restore.tasks import build_task

    opts = load_options(ROOT / RECIPE, [f"data.train.root={utk()}", f"data.val.root={utk()}"])
    task = build_task(opts)
    loader = torch.utils.data.DataLoader(task.train_dataset(), batch_size=4)
    batch = task.to_device(next(iter(loader)), "cpu")

    class Identity(torch.nn.Module):
        def forward(self, x, c):
            return x

    class Darken(torch.nn.Module):
        def forward(self, x, c):
            return x - 0.1

    for gen, expected in ((Identity(), 0.0), (Darken(), 0.2)):
        b = dict(batch)
        fake = task.generate(gen, b)
        _, scalars = task.generator_loss(task.critic, b, fake)
        assert scalars["g/rec"] == pytest.approx(expected, abs=1e-6)
    # training targets are the batch's own attribute vectors, permuted (StarGAN's scheme)
    key = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731
    assert key(batch["target"]) == key(batch["attrs"])


def test_target_vectors_and_settings():
    from restore.inference.translate import parse_attribute_settings, target_vector

    names = ["Male", "Age_0-19", "Age_20-39", "Age_40-59", "Age_60+"]
    groups = [[1, 2, 3, 4]]
    chosen = parse_attribute_settings(["Male=1", "Age_60+=1"], names)
    assert target_vector(None, chosen, names, groups).tolist() == [1, 0, 0, 0, 1]
    source = np.array([0, 0, 1, 0, 0], dtype=np.float32)
    assert target_vector(source, parse_attribute_settings(["Male=1"], names), names, groups).tolist() == \
        [1, 0, 1, 0, 0]  # keeps the photo's age
    assert target_vector(source, parse_attribute_settings(["Age_0-19=1"], names), names, groups).tolist() == \
        [0, 1, 0, 0, 0]  # the group is exclusive
    with pytest.raises(ValueError, match="Age_0-19, Age_20-39, Age_40-59, Age_60\\+ undecided"):
        target_vector(None, parse_attribute_settings(["Male=0"], names), names, groups)
    with pytest.raises(ValueError, match="did you mean 'Male'"):
        parse_attribute_settings(["Mal=1"], names)
    with pytest.raises(ValueError, match="0 or 1"):
        parse_attribute_settings(["Male=yes"], names)


@pytest.mark.filterwarnings("ignore:utkface. skipped")
def test_classifier_infer_and_eval(in_repo, tmp_path, capsys):
    # the independent judge: a tiny attribute classifier trained on real faces
    cls_run = tmp_path / "cls"
    assert main(["train", "-opt", "options/train/attributes/utkface_classifier.yml", "--no-progress",
                 "--set", f"path.root={cls_run}", "--set", "train.steps=3", "--set", "val.every=3",
                 "--set", "val.max_images=16", "--set", "checkpoint.every=3", "--set", "data.num_workers=0",
                 "--set", f"data.train.root={utk()}", "--set", f"data.val.root={utk()}",
                 "--set", "data.train.image_size=32", "--set", "data.val.image_size=32",
                 "--set", "generator.width=4", "--set", "generator.num_stages=3"]) == 0
    classifier = cls_run / "utkface_classifier" / "utkface_classifier.safetensors"
    val = [r for r in metrics(cls_run / "utkface_classifier") if "val/acc_mean" in r]
    assert val and 0 <= val[-1]["val/acc_mean"] <= 1
    assert train(tmp_path) == 0
    weights = tmp_path / "stargan_smoke" / "stargan_smoke.safetensors"
    face = sorted(Path(utk()).glob("*.jpg"))[100]
    out = tmp_path / "face.png"
    # gender alone leaves the age undecided unless a classifier reads it from the photo
    assert main(["infer", "--model", str(weights), str(face), "-o", str(out), "--set", "Male=1"]) == 2
    assert "undecided" in capsys.readouterr().err
    assert main(["infer", "--model", str(weights), str(face), "-o", str(out), "--set", "Male=1",
                 "--classifier", str(classifier)]) == 0
    from restore.data.io import read_image

    src, res = read_image(face).rgb, read_image(out).rgb
    assert res.shape == src.shape and not np.array_equal(res, src)
    # a non-square photo keeps its size: the centred square is translated and pasted back
    wide = tmp_path / "wide.png"
    from restore.data.io import write_image

    write_image(wide, np.concatenate([src, src[:, :50]], axis=1))
    out2 = tmp_path / "wide_out.png"
    assert main(["infer", "--model", str(weights), str(wide), "-o", str(out2), "--set", "Male=0",
                 "--set", "Age_60+=1"]) == 0
    res2 = read_image(out2).rgb
    assert res2.shape == (200, 250, 3)
    np.testing.assert_array_equal(res2[:, :25], read_image(wide).rgb[:, :25])  # outside the square: unchanged
    # eval: accuracies by the classifier (FID skipped here to stay fast)
    assert main(["eval", "--task", "stargan", "--model", str(weights), "--data", utk(), "--classifier",
                 str(classifier), "--no-fid", "--limit", "12", "--max-real", "4", "--json",
                 str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    domains = {r["domain"]: r for r in result["domains"]}
    assert set(domains) == {"Male=1", "Male=0", "Age_0-19", "Age_20-39", "Age_40-59", "Age_60+"}
    assert all(r["target_acc"] is None or 0 <= r["target_acc"] <= 1 for r in domains.values())
    assert sum(r["translated"] for r in domains.values() if r["domain"].startswith("Male")) == 12


@pytest.mark.filterwarnings("ignore:utkface. skipped")
def test_interrupted_run_resumes_bit_identically(in_repo, tmp_path):
    """Training targets are drawn per batch (a permutation); resume restores that RNG too."""
    from safetensors.torch import load_file

    assert train(tmp_path / "a", steps=4) == 0
    args = ["train", "-opt", RECIPE, "--no-progress", "--set", f"path.root={tmp_path / 'b'}", "--set", "train.steps=4",
            "--set", "val.every=1000", "--set", "checkpoint.every=4", "--set", f"data.train.root={utk()}",
            "--set", f"data.val.root={utk()}"]
    assert main([*args, "--until", "2"]) == 0  # pauses with a checkpoint at step 2
    assert (tmp_path / "b" / "stargan_smoke" / "checkpoints" / "step_00000002.pt").is_file()
    assert main(args) == 0  # the same command continues
    a = load_file(tmp_path / "a" / "stargan_smoke" / "stargan_smoke.safetensors")
    b = load_file(tmp_path / "b" / "stargan_smoke" / "stargan_smoke.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
