"""Published weights are stored as fp16 and loaded as fp32: the round trip, what fp16 refuses (overflow, values
lost below its normal range), converting a published folder in place with its cards, `restore verify` on fp16
files, and the SR models' Set5 PSNR with fp16-stored weights against their cards (which record the fp32 ones)."""

import argparse
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from restore.engine.weights import load_generator, load_state_into, read_generator, save_generator, save_state
from restore.hub.cards import read_card, verify_folder
from restore.hub.publish import convert_published
from restore.hub.publish import main as convert_main

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
SR_MODELS = ("sr_x4_psnr", "sr_x4_san", "sr_x4_real_san")
KWARGS = {"channels": 8, "num_blocks": 1, "scale": 2}


def _net(seed: int = 0) -> torch.nn.Module:
    import restore.archs  # noqa: F401
    from restore.registry import GENERATORS

    torch.manual_seed(seed)
    return GENERATORS.build("srresnet", **KWARGS)


def _stored(path: Path) -> dict[str, torch.dtype]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k).dtype for k in f.keys()}


def test_fp16_round_trip_loads_fp32_modules_with_the_halved_values(tmp_path):
    """A classifier (BatchNorm: fp32 running stats and an int64 counter) stored as fp16 loads as an fp32 module whose
    values are ``tensor.half().float()``; the integer buffers come back unchanged."""
    import restore.archs  # noqa: F401
    from restore.registry import GENERATORS

    torch.manual_seed(0)
    kwargs = dict(GENERATORS.get("attribute_classifier").TINY)
    net = GENERATORS.build("attribute_classifier", **kwargs)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(123456789)  # beyond fp16's exact integers: must stay int64
    original = net.state_dict()
    path = save_generator(net, tmp_path / "g.safetensors", "attribute_classifier", kwargs, "attributes",
                          dtype="fp16")
    stored = _stored(path)
    assert {d for k, d in stored.items() if k.endswith("num_batches_tracked")} == {torch.int64}
    assert {d for k, d in stored.items() if not k.endswith("num_batches_tracked")} == {torch.float16}
    desc, state = read_generator(path)
    assert desc["dtype"] == "fp16" and desc["arch"] == "attribute_classifier"
    for k, v in state.items():
        if original[k].is_floating_point():
            assert v.dtype == torch.float32 and torch.equal(v, original[k].half().float()), k
        else:
            assert v.dtype == torch.int64 and torch.equal(v, original[k]), k
    module, _ = load_generator(path)
    assert all(v.dtype == torch.float32 for v in module.state_dict().values() if v.is_floating_point())
    assert all(torch.equal(v, state[k]) for k, v in module.state_dict().items())
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(module(x), net.eval()(x), atol=1e-2)
    target = GENERATORS.build("attribute_classifier", **kwargs)
    load_state_into(target, path)
    assert all(torch.equal(v, state[k]) and v.dtype == state[k].dtype for k, v in target.state_dict().items())
    # bool tensors are kept too; the default (training exports) stays fp32, bit for bit
    save_state({"w": torch.ones(2), "mask": torch.tensor([True, False])}, tmp_path / "b.safetensors",
               {"arch": "x", "kwargs": {}, "task": "sr"}, dtype="fp16")
    assert _stored(tmp_path / "b.safetensors") == {"w": torch.float16, "mask": torch.bool}
    path32 = save_generator(net, tmp_path / "g32.safetensors", "attribute_classifier", kwargs, "attributes")
    desc32, state32 = read_generator(path32)
    assert desc32["dtype"] == "fp32" and all(torch.equal(v, original[k]) for k, v in state32.items())


def test_fp16_refuses_overflow_and_underflow_naming_file_and_tensor(tmp_path):
    net = _net()
    name = next(k for k, v in net.state_dict().items() if v.is_floating_point() and v.dim() == 4)
    with torch.no_grad():
        net.state_dict()[name].view(-1)[0] = 7e4  # > 65504
    with pytest.raises(ValueError, match=rf"big\.safetensors: tensor '{name}' .*beyond fp16's 65504"):
        save_generator(net, tmp_path / "big.safetensors", "srresnet", KWARGS, "sr", dtype="fp16")
    assert not (tmp_path / "big.safetensors").exists()
    net = _net()
    with torch.no_grad():
        net.state_dict()[name].mul_(1e-6)  # nearly all values below fp16's normal range (6.1e-5)
    lost = rf"tiny\.safetensors: tensor '{name}' would lose too much as fp16: \d+ of its \d+ values are below fp16's"
    with pytest.raises(ValueError, match=lost):
        save_generator(net, tmp_path / "tiny.safetensors", "srresnet", KWARGS, "sr", dtype="fp16")
    save_generator(net, tmp_path / "tiny.safetensors", "srresnet", KWARGS, "sr", dtype="fp32")  # fp32 keeps them
    net = _net()
    bias = next(k for k, v in net.state_dict().items() if k.endswith("bias"))
    with torch.no_grad():  # a few tiny values next to larger ones (near-zero biases) are fine
        net.state_dict()[bias].fill_(1e-2)[:2] = 1e-6
    save_generator(net, tmp_path / "bias.safetensors", "srresnet", KWARGS, "sr", dtype="fp16")
    with pytest.raises(ValueError, match="dtype must be one of fp32, fp16"):
        save_generator(net, tmp_path / "x.safetensors", "srresnet", KWARGS, "sr", dtype="bf16")


def test_converting_a_published_folder_keeps_metadata_and_verify_checks_sha256(tmp_path, capsys):
    """A published model copied, stored as fp32 then fp16 again with `python -m restore.hub.publish`: the card follows
    (sha256, dtype), the metadata (palette included) is kept, and a corrupted fp16 file fails `restore verify`."""
    from restore.cli import main

    name = "spade_facades_san" if (WEIGHTS / "spade_facades_san.palette.txt").is_file() else "sr_x4_psnr"
    if not (WEIGHTS / f"{name}.safetensors").is_file():
        pytest.skip("no published weights in weights/ yet")
    folder = tmp_path / "weights"
    folder.mkdir()
    for f in WEIGHTS.glob(f"{name}.*"):
        shutil.copyfile(f, folder / f.name)
    weights = folder / f"{name}.safetensors"
    desc16, state16 = read_generator(weights)
    assert convert_main(["--dtype", "fp32", str(weights)]) == 0
    assert read_card(folder / f"{name}.yml")["dtype"] == "fp32" and verify_folder(folder) == []
    assert set(_stored(weights).values()) <= {torch.float32, torch.int64, torch.int32, torch.bool}
    assert convert_published(weights, "fp16") == folder / f"{name}.yml"
    card = read_card(folder / f"{name}.yml")
    assert card["dtype"] == "fp16" and list(card)[:4] == ["name", "file", "sha256", "dtype"]
    assert verify_folder(folder) == [] and main(["verify", str(folder)]) == 0
    desc, state = read_generator(weights)
    assert desc == desc16 and all(torch.equal(state[k], state16[k]) for k in state16)  # fp16 -> fp32 -> fp16 exact
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF  # one tensor byte
    weights.write_bytes(bytes(data))
    problems = verify_folder(folder)
    assert any("sha256" in p and weights.name in p for p in problems), problems
    assert main(["verify", str(folder)]) == 2


def test_the_repositorys_weights_are_stored_as_fp16():
    files = sorted(WEIGHTS.glob("*.safetensors"))
    if not files:
        pytest.skip("no published weights in weights/ yet")
    for f in files:
        desc, state = read_generator(f)
        assert desc["dtype"] == "fp16", f"{f.name} stores {desc['dtype']} (convert: python -m restore.hub.publish {f})"
        assert torch.float16 in set(_stored(f).values()), f.name
        assert all(v.dtype != torch.float16 for v in state.values()), f"{f.name} does not load as fp32"
        assert read_card(f.with_suffix(".yml"))["dtype"] == "fp16", f.name


@pytest.mark.parametrize("name", SR_MODELS)
def test_fp16_storage_moves_set5_psnr_by_at_most_0_01_db(name, shared):
    """The cards record Set5 PSNR(Y) measured on the fp32 weights (`restore eval`, to full precision); the same
    evaluation of the fp16-stored files moves it by at most 0.01 dB."""
    from restore.cli import _model_upscaler
    from restore.evaluation.sr import evaluate_sr

    path = WEIGHTS / f"{name}.safetensors"
    if not path.is_file():
        pytest.skip(f"{path.name} is not published")
    recorded = read_card(WEIGHTS / f"{name}.yml")["metrics"]["Set5"]["psnr"]
    assert isinstance(recorded, float) and len(repr(recorded).split(".")[1]) >= 4, \
        f"{name}'s card records Set5 PSNR {recorded} to fewer than 4 decimals: too coarse for a 0.01 dB check"
    upscale = _model_upscaler(argparse.Namespace(model=str(path), device="cpu", tile=512, scale=4))
    result = evaluate_sr(upscale, [str(shared / "data/sr-bench/Set5")], scale=4, metrics=("psnr",))
    measured = result["datasets"][0]["mean"]["psnr"]
    assert abs(measured - recorded) <= 0.01, f"{name}: Set5 PSNR {measured:.4f} (fp16 storage) vs {recorded:.4f}"
