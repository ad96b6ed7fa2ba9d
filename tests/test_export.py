"""restore export: every generator family to ONNX and TorchScript, fp32 and fp16, checked here independently of the
exporter's own verify step: the files are run with plain onnxruntime / torch.jit (no restore code between) at sizes
and batches the exporter never saw, and compared with restore's own inference functions."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import restore.archs  # noqa: F401  (fills the registry)
from restore.cli import Exit, main
from restore.data.labels import instance_edges
from restore.engine.weights import load_generator
from restore.hub import export as ex
from restore.inference.translate import spade_generate, stargan_translate
from restore.registry import GENERATORS

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
EXAMPLES = WEIGHTS / "examples"
PUBLISHED = {"sr": "sr_x4_psnr", "spade": "spade_facades_san", "stargan": "stargan_utkface_san"}


def _run(path: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The first output of an exported file, run without restore: onnxruntime (CPU) or torch.jit."""
    if path.suffix == ".onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, inputs)[0].astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(*(torch.from_numpy(v) for v in inputs.values())).float().numpy()


def _meta(path: Path) -> dict[str, str]:
    """Metadata read back without restore: ONNX metadata_props (through onnx and onnxruntime), or the TorchScript
    archive's extra file."""
    if path.suffix == ".onnx":
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.get_modelmeta().custom_metadata_map == props
        return props
    import json

    files = {ex.TORCHSCRIPT_META: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return json.loads(files[ex.TORCHSCRIPT_META])


def _float(precision: str) -> type:
    return np.float16 if precision == "fp16" else np.float32


SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
ALL = [(f, p) for f in ("onnx", "torchscript") for p in ("fp32", "fp16")]
MATRIX = [(task, fmt, p) for task in PUBLISHED for fmt, p in ALL]


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], ex.ExportResult]:
    """Each published model in each format and precision (12 files, under a second each on one core)."""
    out = tmp_path_factory.mktemp("exports")
    return {(task, fmt, p): ex.export(PUBLISHED[task], fmt, out / f"{task}_{p}{SUFFIX[fmt]}", fp16=p == "fp16",
                                      weights=WEIGHTS)
            for task, fmt, p in MATRIX}


@pytest.mark.parametrize("task,fmt,precision", MATRIX)
def test_published_export_checks_pass_within_tolerance(published, task, fmt, precision):
    result = published[(task, fmt, precision)]
    assert result.path.is_file() and result.precision == precision
    real = EXAMPLES / ex.EXAMPLES[task]
    assert any(c.what.startswith(real.name) for c in result.checks), "the bundled real example was not checked"
    assert len(result.checks) == (1 if task == "spade" else len(ex.VERIFY_SIZES)) + 1
    worst = max(c.max_abs_diff for c in result.checks)
    assert worst <= ex.TOLERANCES[precision]
    if fmt == "onnx" and precision == "fp32":
        assert worst > 0  # a different runtime: not bit-identical (so the tolerance-0 test below can fail)
    assert f"max abs diff {result.checks[0].max_abs_diff:.3g}" in result.summary()


@pytest.mark.parametrize("task,fmt,precision", MATRIX)
def test_published_metadata_round_trip(published, task, fmt, precision):
    import json

    path = published[(task, fmt, precision)].path
    meta = _meta(path)
    card_name = PUBLISHED[task]  # the cards' name field
    assert meta["name"] == card_name and meta["task"] == task and meta["precision"] == precision
    assert meta["scale"] == ("4" if task == "sr" else "1")
    _, desc = load_generator(WEIGHTS / f"{PUBLISHED[task]}.safetensors")
    stored = json.loads(meta["restore"])
    assert stored["arch"] == desc["arch"] and stored["kwargs"] == desc["kwargs"] and "data" not in stored
    inputs = json.loads(meta["inputs"])
    if fmt == "onnx":  # the names and dtypes in the metadata are the graph's own
        graph = onnx.load(str(path)).graph
        types = {1: "float32", 10: "float16", 7: "int64"}
        assert [(i["name"], i["dtype"]) for i in inputs] == [
            (v.name, types[v.type.tensor_type.elem_type]) for v in graph.input]
    assert ex.read_metadata(path) == meta


@torch.no_grad()
@pytest.mark.parametrize("fmt,precision", ALL)
def test_published_sr_runs_at_new_sizes_like_restore(published, fmt, precision):
    """Batch 3 at 31x45 and a real image crop: neither size was traced or verified by the exporter."""
    path = published[("sr", fmt, precision)].path
    model, _ = load_generator(WEIGHTS / "sr_x4_psnr.safetensors")
    from restore.data.io import read_image

    real = read_image(EXAMPLES / "sr_scene.png").rgb[3:44, 5:42]
    for x in (np.random.default_rng(1).random((3, 3, 31, 45), dtype=np.float32),
              np.ascontiguousarray(real.transpose(2, 0, 1)[None])):
        out = _run(path, {"image": x.astype(_float(precision))})
        ref = model(torch.from_numpy(x)).clamp(0, 1).numpy()
        assert out.shape == ref.shape == (x.shape[0], 3, 4 * x.shape[2], 4 * x.shape[3])
        assert np.abs(out - ref).max() <= ex.TOLERANCES[precision]


@torch.no_grad()
@pytest.mark.parametrize("fmt,precision", ALL)
def test_published_spade_equals_spade_generate(published, fmt, precision):
    """Integer ids in (one-hot inside the graph), batch 2, against restore infer's spade_generate one by one."""
    from restore.inference.translate import resize_nearest, spade_label_ids

    path = published[("spade", fmt, precision)].path
    model, desc = load_generator(WEIGHTS / "spade_facades_san.safetensors")
    h, w = model.sample_shape()
    real = resize_nearest(spade_label_ids(EXAMPLES / "facade_labels.png", desc), h, w)
    ids = np.stack([np.flipud(real), np.random.default_rng(2).integers(0, desc["num_classes"], (h, w))])
    out = _run(path, {"label": ids.astype(np.int64)})
    ref = np.stack([spade_generate(model, desc, i).transpose(2, 0, 1) for i in ids])
    assert out.shape == ref.shape == (2, 3, h, w)
    assert np.abs(out - ref).max() <= ex.TOLERANCES[precision]


@torch.no_grad()
@pytest.mark.parametrize("fmt,precision", ALL)
def test_published_stargan_equals_stargan_translate(published, fmt, precision):
    """A 128x128 photo and a target vector in [0, 1] space, against restore infer's stargan_translate; then batch
    3 at an odd size (padded to multiples of 4 inside the graph and cropped back)."""
    from restore.data.io import read_image

    path = published[("stargan", fmt, precision)].path
    model, desc = load_generator(WEIGHTS / "stargan_utkface_san.safetensors")
    rgb = read_image(EXAMPLES / "sr_scene.png").rgb
    target = np.array([1, 0, 0, 1, 0], dtype=np.float32)
    out = _run(path, {"image": rgb.transpose(2, 0, 1)[None].astype(_float(precision)),
                      "attributes": target[None].astype(_float(precision))})
    ref = stargan_translate(model, rgb, target, int(desc["image_size"]))
    assert np.abs(out[0].transpose(1, 2, 0) - ref).max() <= ex.TOLERANCES[precision]
    x = np.random.default_rng(3).random((3, 3, 33, 47), dtype=np.float32)
    c = np.eye(5, dtype=np.float32)[[1, 2, 4]]
    out = _run(path, {"image": x.astype(_float(precision)), "attributes": c.astype(_float(precision))})
    padded = torch.nn.functional.pad(torch.from_numpy(x), (0, 1, 0, 3), mode="replicate")
    ref = ((model(padded * 2 - 1, torch.from_numpy(c))[..., :33, :47] + 1) / 2).clamp(0, 1).numpy()
    assert out.shape == (3, 3, 33, 47) and np.abs(out - ref).max() <= ex.TOLERANCES[precision]


# ------------------------------------------------------------------------------------------ tiny random models
def _tiny(arch: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return GENERATORS.build(arch, **{**GENERATORS.get(arch).TINY, **kwargs}).eval()


TINY = {
    "rrdbnet x4": ("rrdbnet", {"scale": 4}, {"task": "sr"}),
    "rrdbnet x2": ("rrdbnet", {"scale": 2}, {"task": "sr"}),  # pixel-unshuffle: odd sides padded in the graph
    "srresnet x2 bilinear": ("srresnet", {"scale": 2, "skip": "bilinear"}, {"task": "sr"}),
    "spade instances": ("spade", {"label_channels": 5}, {"task": "spade", "num_classes": 4, "use_instance": True,
                                                         "class_names": ["a", "b", "c", "d"]}),
    "spade vae 2:1": ("spade", {"label_channels": 5, "use_vae": True, "z_dim": 8, "aspect_ratio": 2.0},
                      {"task": "spade", "num_classes": 5, "use_instance": False}),
    "stargan": ("stargan", {"num_attributes": 3}, {"task": "stargan", "attribute_names": ["x", "y", "z"],
                                                   "exclusive_groups": [[1, 2]], "image_size": 32}),
}


TINY_CASES = [(name, f, p) for name in sorted(TINY) for f, p in ALL]


@torch.no_grad()
@pytest.mark.parametrize("name,fmt,precision", TINY_CASES)
def test_tiny_generators_export_with_dynamic_batch_and_size(tmp_path, name, fmt, precision):
    arch, kwargs, extra = TINY[name]
    model = _tiny(arch, **kwargs)
    desc = {"arch": arch, "kwargs": kwargs, **extra}
    path = tmp_path / f"m_{precision}{SUFFIX[fmt]}"
    result = ex.export_model(model, desc, fmt, path, "tiny", fp16=precision == "fp16")
    sizes = ex.VERIFY_SIZES[:1] if arch == "spade" else ex.VERIFY_SIZES
    assert [c.shape[0] for c in result.checks] == [n for n, _, _ in sizes]
    rng = np.random.default_rng(4)
    if arch == "spade":  # batch 3; ids in, instance edges computed inside the graph
        h, w = model.sample_shape()
        ids = rng.integers(0, extra["num_classes"], (3, h, w))
        inputs: dict[str, np.ndarray] = {"label": ids}
        edges = None
        if extra["use_instance"]:
            inst = rng.integers(0, 3, (3, h, w))
            inputs["instance"], edges = inst, torch.from_numpy(np.stack([instance_edges(i) for i in inst]))
        z = rng.standard_normal((3, 8), dtype=np.float32) if kwargs.get("use_vae") else None
        if z is not None:
            inputs["style"] = z.astype(_float(precision))
        from restore.data.labels import segmentation_input

        seg = segmentation_input(torch.from_numpy(ids), extra["num_classes"], edges)
        ref = model(seg, torch.from_numpy(z)) if z is not None else model(seg)
        ref = ((ref + 1) / 2).clamp(0, 1).numpy()
    elif arch == "stargan":  # 32x44: a multiple of 4, so no padding: the generator itself
        x, c = rng.random((3, 3, 32, 44), dtype=np.float32), np.eye(3, dtype=np.float32)
        inputs = {"image": x.astype(_float(precision)), "attributes": c.astype(_float(precision))}
        ref = ((model(torch.from_numpy(x) * 2 - 1, torch.from_numpy(c)) + 1) / 2).clamp(0, 1).numpy()
    else:  # the module's own forward (RRDBNet x2 pads odd sides itself) at an odd size, batch 3
        x = rng.random((3, 3, 19, 27), dtype=np.float32)
        inputs = {"image": x.astype(_float(precision))}
        ref = model(torch.from_numpy(x)).clamp(0, 1).numpy()
    out = _run(path, inputs)
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= ex.TOLERANCES[precision], (name, precision)


def test_instance_edges_in_the_graph_equal_restores():
    inst = np.random.default_rng(5).integers(0, 3, (2, 9, 13))
    got = ex._edges(torch.from_numpy(inst)).numpy()
    assert np.array_equal(got, np.stack([instance_edges(i) for i in inst]))


@torch.no_grad()
def test_spectral_norm_is_folded_on_a_copy():
    """The exported copy has plain weights and the same outputs; the original keeps its spectral norm and still
    runs (torch's remove_parametrizations would break it: the copy shares its parametrized class)."""
    from torch.nn.utils import parametrize

    from restore.archs.spade import SPADEResBlock

    torch.manual_seed(0)
    model = SPADEResBlock(4, 6, label_channels=3, hidden=4).eval()  # SN on its three convs
    x, seg = torch.randn(2, 4, 9, 11), torch.rand(2, 3, 9, 11)
    before = model(x, seg)
    plain = ex._plain(model)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert sum(parametrize.is_parametrized(m) for m in model.modules()) == 3
    assert torch.allclose(plain(x, seg), before, atol=1e-6)
    assert torch.equal(model(x, seg), before)
    assert torch.allclose(ex._plain(model)(x, seg), before, atol=1e-6)  # again: the original's classes are intact


# ------------------------------------------------------------------------------------------ failures
def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_tolerance_zero_fails_and_writes_nothing(tmp_path):
    model = _tiny("srresnet")
    with pytest.raises(ex.ExportCheckError, match=r"onnxruntime .* differs from PyTorch by up to [0-9.e-]+ on random "
                                                  r"2x3x37x53 \(tolerance 0 for fp32.*the file was not written"):
        ex.export_model(model, {"arch": "srresnet", "kwargs": {}, "task": "sr"}, "onnx", tmp_path / "m.onnx", "t",
                        tolerance=0.0)
    assert _leftovers(tmp_path) == []


class _BakedSize(nn.Module):
    """Upscales x1 by building its output from Python ints of the shape: traced as constants."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = (int(s) for s in x.shape)
        return x.mean() + torch.zeros(n, c, h, w)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_graph_with_a_baked_size_is_refused(tmp_path, fmt):
    with pytest.raises(ex.ExportCheckError, match=r"gave shape \(1, 3, 24, 32\) for random 2x3x37x53.*not dynamic"):
        ex.export_model(_BakedSize(), {"arch": "baked", "kwargs": {"scale": 1}, "task": "sr"}, fmt,
                        tmp_path / f"m{SUFFIX[fmt]}", "baked")
    assert _leftovers(tmp_path) == []


class _NoOnnx(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.vdot(self.w, x.mean((0, 2, 3)))  # aten::vdot has no ONNX export


def test_an_op_without_export_is_one_line(tmp_path, capfd):
    with pytest.raises(ex.ExportCheckError) as info:
        ex.export_model(_NoOnnx(), {"arch": "vdot", "kwargs": {"scale": 1}, "task": "sr"}, "onnx",
                        tmp_path / "m.onnx", "odd")
    assert str(info.value).startswith("odd (vdot) cannot be exported to onnx fp32: ") and "vdot" in str(info.value)
    assert "\n" not in str(info.value)
    out, err = capfd.readouterr()
    assert "Torch IR graph" not in out + err  # torch's exporter log is not shown
    assert _leftovers(tmp_path) == []


def test_unknown_published_name_lists_the_published(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--model sr_x8: no such file, nor a published model in .*weights/ "
                                                r"\(published: .*sr_x4_psnr"):
        ex.resolve_model("sr_x8", WEIGHTS)
    assert ex.resolve_model("sr_x4_psnr", WEIGHTS) == WEIGHTS / "sr_x4_psnr.safetensors"


def test_a_classifier_is_not_exported(tmp_path):
    with pytest.raises(ValueError, match="attributes model is not an image pipeline"):
        ex.export("utkface_attributes", "onnx", tmp_path / "c.onnx", weights=WEIGHTS)


def test_a_spade_verify_image_of_another_label_set_is_named(tmp_path):
    bad = tmp_path / "labels.png"
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), (1, 2, 3), dtype=np.uint8)).save(bad)
    with pytest.raises(ValueError, match=r"--verify-image .*labels.png: not a label map of this model's label set"):
        ex.export("spade_facades_san", "onnx", tmp_path / "s.onnx", verify_image=bad, weights=WEIGHTS)


# ------------------------------------------------------------------------------------------ CLI and README
def test_cli_export_prints_the_checks(tmp_path, capsys):
    """A weights file by path (as restore infer takes it) and by published name (--weights folder with its card)."""
    from restore.engine.weights import save_generator
    from restore.hub.cards import write_card

    folder = tmp_path / "weights"
    kwargs = {**GENERATORS.get("srresnet").TINY, "scale": 4}
    save_generator(_tiny("srresnet", **kwargs), folder / "tiny_sr.safetensors", "srresnet", kwargs, "sr")
    write_card(folder / "tiny_sr.yml", {"name": "tiny_sr", "file": "tiny_sr.safetensors", "task": "sr",
                                        "sha256": "", "architecture": {"arch": "srresnet", "kwargs": kwargs},
                                        "data": {}, "training": {}, "metrics": {}})
    out = tmp_path / "sr.pt"
    code = main(["export", "--model", "tiny_sr", "--weights", str(folder), "--format", "torchscript", "-o", str(out)])
    text = capsys.readouterr().out
    assert code == Exit.OK, text
    assert re.search(r"wrote .*sr\.pt \(torchscript, fp32, [0-9.]+ MiB\)", text)
    assert "random 2x3x37x53: output 2x3x148x212, max abs diff" in text and "sr_scene.png (centre 63x63)" in text
    assert ex.read_metadata(out)["name"] == "tiny_sr"
    argv = ["export", "--model", str(folder / "tiny_sr.safetensors"), "--format", "onnx", "-o", str(out), "--fp16"]
    assert main(argv) == Exit.BAD_INPUT
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == Exit.OK
    assert "(onnx, fp16" in capsys.readouterr().out and ex.read_metadata(out)["precision"] == "fp16"


def _readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- export-snippet -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README.md lost its onnxruntime snippet (marked <!-- export-snippet -->)"
    return block.group(1)


def test_readme_onnxruntime_snippet_runs_without_restore(published, tmp_path):
    """The README's few lines, run as they are in a folder holding the exported file and a photo, in a Python
    that cannot import restore."""
    import shutil

    code = _readme_snippet()
    assert "restore" not in re.sub(r"#.*", "", code).replace("sr_x4_psnr", "")
    shutil.copy(published[("sr", "onnx", "fp32")].path, tmp_path / "sr_x4_psnr.onnx")
    shutil.copy(EXAMPLES / "sr_scene.png", tmp_path / "photo.png")
    guard = "import sys; sys.modules['restore'] = None\n"
    run = subprocess.run([sys.executable, "-c", guard + code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    from PIL import Image

    assert Image.open(tmp_path / "photo_x4.png").size == (512, 512)


# ------------------------------------------------------------------------------------------ community models
COMMUNITY = ["esrgan_old", "realesrgan_params_ema", "compact"]  # ESRGAN (two layouts) and SRVGGNetCompact


@pytest.fixture(scope="module")
def community(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, torch.Tensor]]]:
    """Tiny community files with random weights (tests/test_community_models.py's layouts), as .pth state dicts."""
    from tests.test_community_models import _write

    folder = tmp_path_factory.mktemp("community")
    return {name: _write(folder, name, ".pth") for name in [*COMMUNITY, "swinir"]}


@torch.no_grad()
@pytest.mark.parametrize("fmt,precision", ALL)
@pytest.mark.parametrize("name", COMMUNITY)
def test_community_files_export_and_equal_spandrel(community, tmp_path, name, fmt, precision):
    """Loaded through load_generator (spandrel) like restore infer; the file equals spandrel's own call of the
    model at batch 3 and an odd size."""
    import spandrel

    path, state = community[name]
    result = ex.export(path, fmt, tmp_path / f"c{SUFFIX[fmt]}", fp16=precision == "fp16")
    meta = _meta(result.path)
    assert meta["arch"].startswith("spandrel:") and meta["scale"] == "4" and meta["name"] == name
    x = np.random.default_rng(6).random((3, 3, 23, 31), dtype=np.float32)
    out = _run(result.path, {"image": x.astype(_float(precision))})
    ref = spandrel.ModelLoader().load_from_state_dict(state).eval()(torch.from_numpy(x)).clamp(0, 1).numpy()
    assert out.shape == ref.shape == (3, 3, 92, 124)
    assert np.abs(out - ref).max() <= ex.TOLERANCES[precision]


def test_swinir_is_refused_with_the_reason(community, tmp_path):
    """SwinIR builds its attention masks from Python sizes: traced, they fit the traced size only. The check at
    other sizes finds it; and spandrel says it has no fp16."""
    path, _ = community["swinir"]
    with pytest.raises(ex.ExportCheckError, match=r"cannot run the exported file on random 2x3x37x53.*cannot be "
                                                  r"exported with dynamic sizes; export it at one size instead with "
                                                  r"--fixed-size HxW"):
        ex.export(path, "onnx", tmp_path / "s.onnx")
    with pytest.raises(ValueError, match=r"swinir \(spandrel:SwinIR\) does not support fp16"):
        ex.export(path, "onnx", tmp_path / "s.onnx", fp16=True)
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------ fixed sizes
@torch.no_grad()
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_swinir_exports_at_a_fixed_size_and_equals_spandrel(community, tmp_path, fmt):
    """SwinIR sizes its windows and masks (and its batch, in window_reverse) in Python: at --fixed-size 32x32 the
    file takes exactly 1x3x32x32, records it, equals spandrel's own call there, and refuses another size."""
    import json

    import spandrel

    path, state = community["swinir"]
    result = ex.export(path, fmt, tmp_path / f"s{SUFFIX[fmt]}", fixed_size="32x32")
    assert [c.what for c in result.checks] == ["random 1x3x32x32", "sr_scene.png (centre 32x32)"]
    meta = _meta(result.path)
    assert json.loads(meta["fixed_size"]) == [32, 32] and meta["arch"] == "spandrel:SwinIR"
    assert json.loads(meta["inputs"])[0]["shape"] == [1, 3, 32, 32]  # its batch is baked in too: fixed at 1
    assert json.loads(meta["outputs"])[0]["shape"] == [1, 3, 64, 64]
    assert ex.read_metadata(result.path) == meta
    x = np.random.default_rng(7).random((1, 3, 32, 32), dtype=np.float32)
    ref = spandrel.ModelLoader().load_from_state_dict(state).eval()(torch.from_numpy(x)).clamp(0, 1).numpy()
    out = _run(result.path, {"image": x})
    assert out.shape == ref.shape == (1, 3, 64, 64)
    assert np.abs(out - ref).max() <= ex.TOLERANCES["fp32"]
    wrong = np.zeros((1, 3, 40, 40), dtype=np.float32)
    if fmt == "onnx":
        with pytest.raises(Exception, match=r"(?s)invalid dimensions for input: image.*index: 2 Got: 40 Expected: 32"):
            _run(result.path, {"image": wrong})
    else:
        with pytest.raises(torch.jit.Error, match=r"takes \(1, C, 32, 32\) images only, got \(1, C, 40, 40\)"):
            _run(result.path, {"image": wrong})


@torch.no_grad()
def test_a_fixed_size_keeps_the_batch_dynamic_where_the_network_allows(tmp_path):
    import json

    model = _tiny("srresnet", scale=2)
    result = ex.export_model(model, {"arch": "srresnet", "kwargs": {"scale": 2}, "task": "sr"}, "onnx",
                             tmp_path / "m.onnx", "tiny", fixed_size=(20, 28))
    meta = _meta(result.path)
    assert json.loads(meta["fixed_size"]) == [20, 28]
    assert json.loads(meta["inputs"])[0]["shape"] == ["batch", 3, 20, 28]
    x = np.random.default_rng(8).random((3, 3, 20, 28), dtype=np.float32)
    out = _run(result.path, {"image": x})
    assert np.abs(out - model(torch.from_numpy(x)).clamp(0, 1).numpy()).max() <= ex.TOLERANCES["fp32"]
    with pytest.raises(Exception, match=r"(?s)invalid dimensions.*index: 3 Got: 27 Expected: 28"):
        _run(result.path, {"image": x[..., :27]})


@pytest.mark.parametrize("value,message", [
    ("0x5", r"--fixed-size '0x5': give the input's height and width in pixels as HxW, both >= 1"),
    ("abc", r"--fixed-size 'abc': give the input's height and width"),
    ("32x", r"--fixed-size '32x': give the input's height and width"),
])
def test_bad_fixed_sizes_are_named(tmp_path, value, message):
    with pytest.raises(ValueError, match=message):
        ex.export_model(_tiny("srresnet"), {"arch": "srresnet", "kwargs": {}, "task": "sr"}, "onnx",
                        tmp_path / "m.onnx", "t", fixed_size=value)
    assert _leftovers(tmp_path) == []


def test_a_fixed_size_off_the_models_multiple_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"--fixed-size 31x32: rrdbnet needs sides that are multiples of 2; e.g. "
                                         r"--fixed-size 32x32"):
        ex.export_model(_tiny("rrdbnet", scale=2), {"arch": "rrdbnet", "kwargs": {"scale": 2}, "task": "sr"},
                        "onnx", tmp_path / "m.onnx", "t", fixed_size="31x32")
    with pytest.raises(ValueError, match=r"--fixed-size is for SR models; a stargan model exports without it"):
        arch, kwargs, extra = TINY["stargan"]
        ex.export_model(_tiny(arch, **kwargs), {"arch": arch, "kwargs": kwargs, **extra}, "onnx",
                        tmp_path / "m.onnx", "t", fixed_size="32x32")
    assert _leftovers(tmp_path) == []


@torch.no_grad()
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_community_minimum_is_padded_inside_the_graph(community, tmp_path, fmt):
    """A community model with spandrel's minimum 16 and multiple 4 (a Compact model given SwinIR-like
    requirements): inputs below the minimum, down to 1x1, run in the dynamic file and equal CommunityModel's own
    padding (reflect as far as the side allows, replicate the rest, output cropped back)."""
    from spandrel import SizeRequirements

    model, desc = load_generator(community["compact"][0])
    model.requirements = SizeRequirements(minimum=16, multiple_of=4)
    desc["hints"]["size_requirements"] = {"minimum": 16, "multiple_of": 4, "square": False}
    result = ex.export_model(model, desc, fmt, tmp_path / f"c{SUFFIX[fmt]}", "compact16")
    assert "random 2x3x9x1" in [c.what for c in result.checks]
    rng = np.random.default_rng(9)
    for shape in ((3, 3, 5, 7), (1, 3, 1, 1), (2, 3, 18, 13), (1, 3, 2, 30)):
        x = rng.random(shape, dtype=np.float32)
        out = _run(result.path, {"image": x})
        ref = model(torch.from_numpy(x)).clamp(0, 1).numpy()
        assert out.shape == ref.shape == (shape[0], 3, 4 * shape[2], 4 * shape[3])
        assert np.abs(out - ref).max() <= ex.TOLERANCES["fp32"], shape
