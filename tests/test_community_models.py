"""Community SR model files (other projects' ESRGAN, Real-ESRGAN, SwinIR, ... files) everywhere a model is taken.

No downloads: each source layout is written here with random weights by the code that defines it (basicsr's
RRDBNet, SRVGGNetCompact and SwinIR; the original ESRGAN ``model.N`` layout from spandrel's ESRGAN module), tiny
(8 features, 1-2 blocks), as .pth (a plain ``torch.save``) and .safetensors. Each goes through ``load_generator``,
``restore infer``, ``restore eval`` and the demo's loader, and the output is compared with spandrel's own call of
the same state dict; RRDB layouts also initialise restore's ``rrdbnet`` (``train.pretrained_generator``).
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from restore.cli import main
from restore.compat import import_basicsr
from restore.data.io import read_image, write_image
from restore.engine.community import CommunityModel
from restore.engine.weights import load_generator, load_state_into
from restore.inference.tiling import tiled_forward
from restore.inference.upscale import upscale_image

spandrel = pytest.importorskip("spandrel")

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5  # fp32, same tensors, same ops; tiles only change the sizes the convolutions see (measured < 2e-7)
RRDB = {"num_feat": 8, "num_block": 1, "num_grow_ch": 32}  # spandrel's ESRGAN has the paper's growth of 32


def _rrdb_new(scale: int = 4) -> dict[str, torch.Tensor]:
    """basicsr's RRDBNet keys (conv_first, body.N.rdb1...): Real-ESRGAN and restore's own rrdbnet layout."""
    net = import_basicsr("archs.rrdbnet_arch").RRDBNet(num_in_ch=3, num_out_ch=3, scale=scale, **RRDB)
    return net.state_dict()


def _rrdb_old() -> dict[str, torch.Tensor]:
    """The original ESRGAN layout (``model.0``, ``model.1.sub.0.RDB1.conv1.0``, ...)."""
    from spandrel.architectures.ESRGAN import ESRGAN

    return ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4).state_dict()


def _compact(channels: int = 3) -> dict[str, torch.Tensor]:
    """Real-ESRGAN's SRVGGNetCompact (``body.N``), as realesr-general-x4v3 is stored."""
    net = import_basicsr("archs.srvgg_arch").SRVGGNetCompact(num_in_ch=channels, num_out_ch=channels, num_feat=8,
                                                            num_conv=2, upscale=4, act_type="prelu")
    return net.state_dict()


def _swinir() -> dict[str, torch.Tensor]:
    """A small SwinIR x2 (lightweight upsampler): a transformer with a minimum size, no fp16, tiling discouraged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.meshgrid's indexing warning, inside basicsr
        net = import_basicsr("archs.swinir_arch").SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2],
                                                         window_size=4, upscale=2, mlp_ratio=2.0,
                                                         upsampler="pixelshuffledirect")
    return net.state_dict()


def _randomised(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Random weights (not the initialisation, so that a wrongly mapped tensor shows), index buffers kept."""
    g = torch.Generator().manual_seed(seed)
    return {k: (v + 0.05 * torch.randn(v.shape, generator=g)).contiguous() if v.is_floating_point()
            else v.contiguous() for k, v in state.items()}


# name -> (state dict maker, how the file wraps it, spandrel id, scale)
LAYOUTS: dict[str, tuple[Callable[[], dict], Callable[[dict], dict], str, int]] = {
    "esrgan_old": (_rrdb_old, lambda s: s, "ESRGAN", 4),
    "basicsr_rrdbnet": (_rrdb_new, lambda s: s, "ESRGAN", 4),
    "realesrgan_params_ema": (_rrdb_new, lambda s: {"params_ema": s, "params": {k: v * 0 for k, v in s.items()}},
                              "ESRGAN", 4),
    "realesrgan_params": (_rrdb_new, lambda s: {"params": s}, "ESRGAN", 4),
    "compact": (_compact, lambda s: {"params": s}, "Compact", 4),
    "swinir": (_swinir, lambda s: {"params": s}, "SwinIR", 2),
}
RRDB_LAYOUTS = [n for n, v in LAYOUTS.items() if v[2] == "ESRGAN"]


def _write(folder: Path, name: str, suffix: str) -> tuple[Path, dict[str, torch.Tensor]]:
    """The file for layout ``name`` as ``suffix`` (.pth: wrapped as its project stores it), and the model's state
    dict (a Real-ESRGAN file's ``params_ema``)."""
    make, wrap, _, _ = LAYOUTS[name]
    state = _randomised(make(), seed=len(name))
    held = wrap(state)
    path = folder / f"{name}{suffix}"
    if suffix == ".safetensors":  # one flat dict of tensors, as community .safetensors files are stored
        save_file(state, str(path))
    else:
        torch.save(held, path)
    return path, state


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[Path, dict]]:
    folder = tmp_path_factory.mktemp("community")
    return {(n, s): _write(folder, n, s) for n in LAYOUTS for s in (".pth", ".safetensors")}


def _reference(state: dict[str, torch.Tensor]):
    """spandrel's own model for the same tensors, called through its API (it pads, calls, clamps, crops)."""
    return spandrel.ModelLoader().load_from_state_dict(state).eval()


def _image(shared: Path, h: int, w: int) -> np.ndarray:
    rgb = read_image(shared / "data" / "sr-bench" / "Set5" / "baby.png").rgb
    return np.ascontiguousarray(rgb[100:100 + h, 150:150 + w])


CASES = [(n, s) for n in LAYOUTS for s in (".pth", ".safetensors")]


@pytest.mark.parametrize(("name", "suffix"), CASES, ids=[f"{n}{s}" for n, s in CASES])
def test_detected_with_restores_description(name: str, suffix: str, files) -> None:
    path, _ = files[name, suffix]
    model, desc = load_generator(path)
    _, _, arch, scale = LAYOUTS[name]
    assert isinstance(model, CommunityModel) and not model.training
    assert desc["task"] == "sr" and desc["arch"] == f"spandrel:{arch}" and desc["kwargs"] == {"scale": scale}
    assert desc["in_channels"] == desc["out_channels"] == 3 and desc["dtype"] == "fp32"
    hints = desc["hints"]
    assert set(hints) == {"fp16", "bf16", "size_requirements", "tiling"}
    if arch == "SwinIR":
        assert hints["fp16"] is False and hints["tiling"] == "discouraged"
        assert hints["size_requirements"] == {"minimum": 16, "multiple_of": 1, "square": False}
    else:
        assert hints["fp16"] is True and hints["tiling"] == "supported"


@pytest.mark.parametrize("name", ["esrgan_old", "compact"])
def test_tiled_output_equals_spandrel_one_pass(name: str, files, shared: Path) -> None:
    """Seamless tiling (8 tiles of 48, overlap 16, on a 60x84 photo crop) of a conv net equals spandrel's single
    call up to float error; so does one pass, and ``upscale_image`` (what infer and the demo call)."""
    from restore.data.io import Image

    path, state = files[name, ".pth"]
    model, desc = load_generator(path)
    rgb = _image(shared, 60, 84)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None]
    expected = _reference(state)(x)
    tiled = tiled_forward(model, x, desc["kwargs"]["scale"], tile=48, overlap=16)
    one_pass = tiled_forward(model, x, desc["kwargs"]["scale"], tile=None)
    assert float((one_pass.clamp(0, 1) - expected).abs().max()) < TOL
    assert float((tiled.clamp(0, 1) - expected).abs().max()) < TOL
    out = upscale_image(model, Image(rgb=rgb, alpha=None, bit_depth=8, grey=False), 4, tile=48, overlap=16).rgb
    assert np.abs(out - expected[0].permute(1, 2, 0).numpy()).max() < TOL


def test_size_requirements_are_met_by_reflect_padding(files, capsys: pytest.CaptureFixture[str]) -> None:
    """SwinIR needs 16 pixels a side: a 10x13 input is padded (reflect) and the output cropped back to 20x26, as
    spandrel's call does; tiling is discouraged, so a tile request runs one pass, said once."""
    path, state = files["swinir", ".safetensors"]
    model, _ = load_generator(path)
    x = torch.rand(1, 3, 10, 13, generator=torch.Generator().manual_seed(3))
    expected = _reference(state)(x)
    for _ in range(2):
        y = tiled_forward(model, x, 2, tile=8 + 2 * 4, overlap=4)
        assert y.shape == (1, 3, 20, 26)
        assert float((y.clamp(0, 1) - expected).abs().max()) < TOL
    err = capsys.readouterr().err
    assert err.count("advises against tiling") == 1 and "spandrel:SwinIR" in err


def test_no_fp16_model_runs_in_fp32_when_half_is_asked(files, capsys: pytest.CaptureFixture[str]) -> None:
    """spandrel says SwinIR does not support fp16: under an fp16 request it runs in fp32 (the input is the fp16
    window, the arithmetic fp32), and says so once."""
    path, state = files["swinir", ".pth"]
    model, _ = load_generator(path)
    x = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(4))
    expected = _reference(state)(x.half().float())
    for _ in range(2):
        y = tiled_forward(model, x, 2, tile=None, dtype=torch.float16)
        assert y.dtype == torch.float32 and float((y.clamp(0, 1) - expected).abs().max()) < TOL
    err = capsys.readouterr().err
    assert err.count("does not support float16") == 1 and "runs in fp32" in err


def test_grey_model_gets_the_channel_mean_and_fills_rgb(tmp_path: Path) -> None:
    state = _randomised(_compact(channels=1), seed=5)
    torch.save(state, tmp_path / "grey.pth")
    model, desc = load_generator(tmp_path / "grey.pth")
    assert desc["in_channels"] == desc["out_channels"] == 1
    x = torch.rand(1, 3, 12, 9, generator=torch.Generator().manual_seed(6))
    y = tiled_forward(model, x, 4, tile=None)
    expected = _reference(state)(x.mean(dim=1, keepdim=True))
    assert y.shape == (1, 3, 48, 36) and torch.equal(y[:, 0], y[:, 2])
    assert float((y[:, :1].clamp(0, 1) - expected).abs().max()) < TOL


# ------------------------------------------------------------------------------------------ the commands
@pytest.mark.parametrize(("name", "suffix"), [("esrgan_old", ".pth"), ("realesrgan_params_ema", ".safetensors"),
                                              ("compact", ".safetensors"), ("swinir", ".pth")])
def test_restore_infer_writes_what_spandrel_computes(name: str, suffix: str, files, shared: Path,
                                                      tmp_path: Path) -> None:
    path, state = files[name, suffix]
    rgb = _image(shared, 60, 72)
    src = tmp_path / "in.png"
    write_image(src, rgb)
    rgb = read_image(src).rgb  # what infer reads: the 8-bit file
    out = tmp_path / "out.png"
    code = main(["infer", "--model", str(path), str(src), "-o", str(out), "--tile", "48", "--overlap", "16",
                 "--device", "cpu"])
    assert code == 0
    got = read_image(out).rgb
    expected = _reference(state)(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert got.shape == expected.shape
    # 8-bit output: equal after rounding, up to the tiles' float error at a rounding boundary (1 level, rarely)
    assert np.abs(got - np.round(expected * 255) / 255).max() <= 1 / 255 + 1e-6
    assert np.mean(np.abs(got - np.round(expected * 255) / 255) > 1e-6) < 1e-3


@pytest.mark.parametrize(("name", "suffix"), [("basicsr_rrdbnet", ".pth"), ("compact", ".safetensors")])
def test_restore_eval_scores_what_spandrel_computes(name: str, suffix: str, files, shared: Path,
                                                    tmp_path: Path) -> None:
    """``restore eval`` on a community file gives the protocol's numbers for spandrel's own call of the model."""
    from restore.evaluation.sr import evaluate_sr

    path, state = files[name, suffix]
    folder = tmp_path / "bench"
    folder.mkdir()
    for i, stem in enumerate(("bird", "head")):
        rgb = read_image(shared / "data" / "sr-bench" / "Set5" / f"{stem}.png").rgb
        write_image(folder / f"{stem}.png", np.ascontiguousarray(rgb[40 * i:40 * i + 64, 30:30 + 80]))
    report = tmp_path / "eval.json"
    code = main(["eval", "--model", str(path), "--data", str(folder), "--no-lpips", "--scale", "4", "--tile", "0",
                 "--device", "cpu", "--json", str(report)])
    assert code == 0
    got = json.loads(report.read_text())["datasets"][0]["mean"]
    ref = _reference(state)

    def direct(lq: np.ndarray) -> np.ndarray:
        return ref(torch.from_numpy(lq).permute(2, 0, 1)[None].float())[0].permute(1, 2, 0).numpy()

    expected = evaluate_sr(direct, [str(folder)], scale=4, metrics=("psnr", "ssim"))["datasets"][0]["mean"]
    assert got["psnr"] == pytest.approx(expected["psnr"], abs=1e-3)
    assert got["ssim"] == pytest.approx(expected["ssim"], abs=1e-5)


def test_demo_serves_a_community_file_without_a_card(files, tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from restore.demo.common import load_models

    path, state = files["compact", ".pth"]
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "realesr-tiny.pth").write_bytes(path.read_bytes())
    models = load_models(folder, "cpu")
    assert list(models.sr) == ["realesr-tiny"] and not models.problems
    pipe = models.sr["realesr-tiny"]
    assert "spandrel:Compact" in pipe.describe()
    rgb = np.random.default_rng(0).random((20, 24, 3), dtype=np.float32)
    out, _ = pipe(rgb, tile=0)
    expected = _reference(state)(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert out.shape == (80, 96, 3) and np.abs(out - expected).max() < TOL


def test_restores_own_files_load_as_before() -> None:
    model, desc = load_generator(ROOT / "weights" / "sr_x4_psnr.safetensors")
    assert not isinstance(model, CommunityModel) and "hints" not in desc and not desc["arch"].startswith("spandrel")


# ------------------------------------------------------------------------------------------ fine-tuning
def _rrdbnet(**kwargs):
    import restore.archs  # noqa: F401
    from restore.registry import GENERATORS

    return GENERATORS.build("rrdbnet", **{"channels": 8, "num_blocks": 1, "growth_channels": 32, **kwargs})


@pytest.mark.parametrize(("name", "suffix"), [(n, s) for n in RRDB_LAYOUTS for s in (".pth", ".safetensors")])
def test_rrdb_layouts_initialise_rrdbnet_with_the_source_tensors(name: str, suffix: str, files) -> None:
    path, state = files[name, suffix]
    net = _rrdbnet()
    load_state_into(net, path)
    got = net.state_dict()
    if name == "esrgan_old":  # the original layout, tensor for tensor
        pairs = {"conv_first.weight": "model.0.weight", "body.0.rdb2.conv3.weight": "model.1.sub.0.RDB2.conv3.0.weight",
                 "body.0.rdb3.conv5.bias": "model.1.sub.0.RDB3.conv5.0.bias",
                 "conv_body.weight": "model.1.sub.1.weight", "conv_up1.weight": "model.3.weight",
                 "conv_up2.bias": "model.6.bias", "conv_hr.weight": "model.8.weight",
                 "conv_last.weight": "model.10.weight"}
        assert all(torch.equal(got[k], state[v]) for k, v in pairs.items())
        assert len(got) == len(state)
    else:
        assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in got)
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert float((net.eval()(x).clamp(0, 1) - _reference(state)(x)).abs().max()) < TOL


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("compact", {}, r"compact\.pth: it holds a spandrel Compact model .* cannot initialise this RRDBNet generator"),
    ("esrgan_old", {"channels": 16}, r"esrgan_old\.pth: it holds a spandrel ESRGAN model.*'conv_first\.weight' is "
                                     r"\(16, 3, 3, 3\) in the generator but \(8, 3, 3, 3\) in the file.*channels: 8"),
    ("swinir", {}, r"swinir\.pth: it holds a spandrel SwinIR model"),
])
def test_a_layout_that_does_not_fit_is_one_line(name: str, kwargs: dict, message: str, files) -> None:
    with pytest.raises(ValueError) as info:
        load_state_into(_rrdbnet(**kwargs), files[name, ".pth"][0])
    assert re.search(message, str(info.value)) and "\n" not in str(info.value), str(info.value)


def _recipe(shared: Path, tmp_path: Path, pretrained: Path, **generator) -> Path:
    import yaml

    recipe = yaml.safe_load((ROOT / "options" / "train" / "sr" / "x4_smoke.yml").read_text())
    recipe["data"]["train"]["roots"] = [str(shared / "data" / "sr-train" / "sun_hays80")]
    recipe["data"]["val"]["root"] = str(shared / "data" / "sr-bench" / "Set5")
    recipe["losses"].pop("perceptual")
    recipe["path"] = {"root": str(tmp_path / "runs")}
    recipe["generator"] = {"arch": "rrdbnet", "channels": 8, "num_blocks": 1, "growth_channels": 32, "scale": 4,
                           **generator}
    recipe["train"].update({"steps": 1, "batch_size": 2, "pretrained_generator": str(pretrained)})
    path = tmp_path / "finetune.yml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_train_fine_tunes_an_rrdbnet_from_an_esrgan_file(files, shared: Path, tmp_path: Path) -> None:
    """``train.pretrained_generator`` = an old-layout ESRGAN .pth: the task's generator starts from its tensors, and
    a training step runs from there (critic norm: the smoke recipe's SAN)."""
    from restore.config import load_options
    from restore.tasks import build_task
    from restore.train import train

    path, state = files["esrgan_old", ".pth"]
    recipe = _recipe(shared, tmp_path, path)
    task = build_task(load_options(recipe))
    assert torch.equal(task.generator.state_dict()["conv_last.weight"], state["model.10.weight"])
    result = train(recipe, device="cpu", progress=False, say=None)
    assert result.finished and result.weights is not None and result.weights.is_file()


def test_train_with_a_file_that_does_not_fit_is_one_error_line(files, shared: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _recipe(shared, tmp_path, files["esrgan_old", ".safetensors"][0], num_blocks=2)
    code = main(["train", "-opt", str(recipe), "--device", "cpu", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    assert "train.pretrained_generator" in err[0] and "esrgan_old.safetensors" in err[0] and "num_blocks: 1" in err[0]


# ------------------------------------------------------------------------------------------ refusals
class _Payload:
    """Pickled, this runs ``os.system`` on load: a file that needs arbitrary unpickling."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_file_with_pickled_code_is_refused_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"params_ema": _rrdb_new(), "hook": _Payload(marker)}, path)
    for call in (lambda: load_generator(path), lambda: load_state_into(_rrdbnet(), path)):
        with pytest.raises(ValueError) as info:
            call()
        text = str(info.value)
        assert str(path) in text and "pickled code" in text and "weights_only" in text and "\n" not in text
    image = tmp_path / "x.png"
    write_image(image, np.zeros((8, 8, 3), np.float32))
    assert main(["infer", "--model", str(path), str(image), "-o", str(tmp_path / "y.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0]
    assert not marker.exists()


def test_an_unknown_architecture_lists_the_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "mystery.safetensors"
    save_file({"encoder.weight": torch.zeros(4, 3), "decoder.weight": torch.zeros(3, 4)}, str(path))
    with pytest.raises(ValueError) as info:
        load_generator(path)
    text = str(info.value)
    assert text.startswith(f"{path}: no 'restore' metadata") and "recognises no architecture" in text
    assert all(name in text for name in ("ESRGAN", "Compact", "SwinIR", "HAT")) and "\n" not in text


def test_keys_that_claim_ten_million_blocks_stop_fast(tmp_path: Path) -> None:
    """spandrel counts ESRGAN's blocks from the key indices: a key at index 10**7 would build 10**7 blocks. The size
    probe stops the build as soon as it outgrows the file."""
    state = _rrdb_old()
    state["model.1.sub.9999999.RDB1.conv1.0.weight"] = torch.zeros(32, 8, 3, 3)
    path = tmp_path / "huge.pth"
    torch.save(state, path)
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"huge\.pth: the network spandrel builds for it would need more than"):
        load_generator(path)
    assert time.monotonic() - start < 5
