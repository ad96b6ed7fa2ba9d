"""One error convention for every subcommand: bad input gives an ``error:`` line (or argparse's usage error) that
names the file, key or value, exit code 2, and no Python traceback; ``RESTORE_DEBUG=1`` shows the traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from restore.cli import Exit, main

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "options" / "train" / "sr" / "x4_smoke.yml")
WEIGHTS = str(ROOT / "weights" / "sr_x4_psnr.safetensors")


@pytest.fixture
def bad(tmp_path: Path) -> dict[str, str]:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    yml = tmp_path / "broken.yml"
    yml.write_text("name: [unclosed\n")
    nocritic = tmp_path / "nocritic.yml"
    nocritic.write_text("name: x\ntask: sr\ngenerator: {arch: srresnet}\n")
    card_dir = tmp_path / "weights"
    card_dir.mkdir()
    (card_dir / "m.safetensors").write_bytes(b"\x00" * 16)
    (card_dir / "m.yml").write_text("name: m\n")
    photo = tmp_path / "not_an_image.png"
    photo.write_text("hello")
    community = _community_files(tmp_path)
    community["rrdb_x2"] = _rrdb_x2(tmp_path)
    return {"junk": str(junk), "yml": str(yml), "nocritic": str(nocritic), "cards": str(card_dir),
            "photo": str(photo), "tmp": str(tmp_path), "missing": str(tmp_path / "missing"), **community}


class _Pickled:
    def __reduce__(self):  # a file that needs arbitrary unpickling: refused, never run
        return (print, ("unpickled",))


def _rrdb_x2(folder: Path) -> str:
    """A tiny x2 RRDBNet (its sides must be even: --fixed-size must be a multiple of 2)."""
    import restore.archs  # noqa: F401  (fills the registry)
    from restore.engine.weights import save_generator
    from restore.registry import GENERATORS

    kwargs = {**GENERATORS.get("rrdbnet").TINY, "scale": 2}
    path = folder / "rrdb_x2.safetensors"
    save_generator(GENERATORS.build("rrdbnet", **kwargs), path, "rrdbnet", kwargs, "sr")
    return str(path)


def _community_files(folder: Path) -> dict[str, str]:
    """Community model files: one spandrel does not know, one with pickled code, a Compact (not an SRResNet)."""
    import torch
    from safetensors.torch import save_file

    from restore.compat import import_basicsr

    save_file({"encoder.weight": torch.zeros(2, 3)}, str(folder / "mystery.safetensors"))
    torch.save({"params": {"w": torch.zeros(1)}, "x": _Pickled()}, folder / "pickled.pth")
    compact = import_basicsr("archs.srvgg_arch").SRVGGNetCompact(num_feat=4, num_conv=1, upscale=4)
    torch.save({"params": compact.state_dict()}, folder / "compact.pth")
    return {name: str(folder / f"{name}{suffix}")
            for name, suffix in (("mystery", ".safetensors"), ("pickled", ".pth"), ("compact", ".pth"))}


CASES = {
    "check missing file": ["check", "-opt", "{missing}.yml"],
    "check broken yaml": ["check", "-opt", "{yml}"],
    "check unknown key": ["check", "-opt", SMOKE, "--set", "train.stepz=3"],
    "check bad value": ["check", "-opt", SMOKE, "--set", "critic.norm.ratio=2"],
    "check bad degradation range": ["check", "-opt", SMOKE, "--set", "data.train.degradation.type=realesrgan",
                                    "--set", "data.train.degradation.noise_range=[30,1]"],
    "train crop too small for realesrgan": ["train", "-opt", SMOKE, "--set", "data.train.degradation.type=realesrgan",
                                            "--set", "path.root={tmp}/runs"],
    "check unknown loss key": ["check", "-opt", SMOKE, "--set", "losses.perceptual.wieght=1"],
    "check kept key after type switch": ["check", "-opt", SMOKE, "--set", "critic.norm.type=sn", "--set",
                                         "critic.norm.ratio=0.5"],
    "schema into a missing folder": ["schema", "-o", "{missing}/schema.json"],
    "schema onto a folder": ["schema", "-o", "{tmp}"],
    "train missing recipe": ["train", "-opt", "{missing}.yml"],
    "train bad override": ["train", "-opt", SMOKE, "--set", "nonsense"],
    "train bad device": ["train", "-opt", SMOKE, "--device", "gpu7"],
    "ablate unknown norm": ["ablate", "-opt", SMOKE, "--norms", "san,bogus", "--out", "{tmp}/ab"],
    "ablate without critic": ["ablate", "-opt", "{nocritic}", "--out", "{tmp}/ab"],
    "publish not a run": ["publish", "--run", "{missing}", "--data-source", "x", "--data-license", "y",
                          "--out", "{tmp}/pub"],
    "verify broken card": ["verify", "{cards}"],
    "eval missing model": ["eval", "--model", "{missing}.safetensors", "--data", "{tmp}"],
    "eval junk model": ["eval", "--model", "{junk}", "--data", "{tmp}", "--no-lpips"],
    "eval missing data": ["eval", "--model", WEIGHTS, "--data", "{missing}", "--no-lpips"],
    "eval wrong task": ["eval", "--task", "spade", "--model", WEIGHTS, "--data", "{tmp}"],
    "eval unknown degradation": ["eval", "--model", "bicubic", "--data", "{tmp}", "--degradation", "foo"],
    "eval seed without degradation": ["eval", "--model", "bicubic", "--data", "{tmp}", "--degradation-seed", "1"],
    "eval missing real photos": ["eval", "--model", "bicubic", "--data", "{tmp}", "--no-lpips", "--real-photos",
                                 "{missing}"],
    "infer junk model": ["infer", "--model", "{junk}", "{photo}", "-o", "{tmp}/out.png"],
    "infer missing input": ["infer", "--model", WEIGHTS, "{missing}.png", "-o", "{tmp}/out.png"],
    "infer unreadable input": ["infer", "--model", WEIGHTS, "{photo}", "-o", "{tmp}/out.png"],
    "infer unknown community model": ["infer", "--model", "{mystery}", "{photo}", "-o", "{tmp}/out.png"],
    "infer pickled code": ["infer", "--model", "{pickled}", "{photo}", "-o", "{tmp}/out.png"],
    "eval unknown community model": ["eval", "--model", "{mystery}", "--data", "{tmp}", "--no-lpips"],
    "train community file that does not fit": ["train", "-opt", SMOKE, "--set", "train.pretrained_generator={compact}",
                                               "--set", "path.root={tmp}/runs", "--device", "cpu"],
    "diagnose missing": ["diagnose", "--checkpoint", "{missing}", "--data", "{tmp}"],
    "diagnose weights file": ["diagnose", "--checkpoint", WEIGHTS, "--data", "{tmp}"],
    "export unknown format": ["export", "--model", WEIGHTS, "--format", "tflite", "-o", "{tmp}/m.onnx"],
    "export missing model": ["export", "--model", "{missing}.safetensors", "--format", "onnx", "-o", "{tmp}/m.onnx"],
    "export unknown published name": ["export", "--model", "sr_x9", "--weights", "{cards}", "--format", "onnx",
                                      "-o", "{tmp}/m.onnx"],
    "export junk model": ["export", "--model", "{junk}", "--format", "onnx", "-o", "{tmp}/m.onnx"],
    "export missing output folder": ["export", "--model", WEIGHTS, "--format", "onnx", "-o", "{missing}/m.onnx"],
    "export onto a folder": ["export", "--model", WEIGHTS, "--format", "torchscript", "-o", "{tmp}"],
    "export missing verify image": ["export", "--model", WEIGHTS, "--format", "onnx", "-o", "{tmp}/m.onnx",
                                    "--verify-image", "{missing}.png"],
    "export negative tolerance": ["export", "--model", WEIGHTS, "--format", "onnx", "-o", "{tmp}/m.onnx",
                                  "--tolerance", "-1"],
    "export check fails": ["export", "--model", WEIGHTS, "--format", "onnx", "-o", "{tmp}/m.onnx", "--tolerance", "0"],
    "export fixed size zero": ["export", "--model", WEIGHTS, "--format", "onnx", "-o", "{tmp}/m.onnx",
                               "--fixed-size", "0x5"],
    "export fixed size not HxW": ["export", "--model", WEIGHTS, "--format", "onnx", "-o", "{tmp}/m.onnx",
                                  "--fixed-size", "abc"],
    "export fixed size off the multiple": ["export", "--model", "{rrdb_x2}", "--format", "onnx", "-o", "{tmp}/m.onnx",
                                           "--fixed-size", "31x32"],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_error_line(case: str, bad: dict[str, str], capsys: pytest.CaptureFixture[str]):
    argv = [a.format(**bad) for a in CASES[case]]
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert code in (Exit.BAD_INPUT, Exit.PARTIAL), (code, err)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert lines, err
    assert "internal error" not in err, err


def test_argparse_errors_are_usage_lines(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as info:
        main(["train", "-opt", SMOKE, "--time-limit", "soon"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--time-limit" in err and "soon" in err and "Traceback" not in err


def test_restore_debug_shows_the_traceback(tmp_path: Path):
    env = {**os.environ, "RESTORE_DEBUG": "1"}
    cmd = [sys.executable, "-m", "restore", "check", "-opt", str(tmp_path / "missing.yml")]
    debug = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    env.pop("RESTORE_DEBUG")
    plain = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and plain.stderr.startswith("error:")


def test_exit_codes_are_documented():
    text = (ROOT / "docs" / "cli.md").read_text()
    for code in Exit:
        assert f"| {int(code)} |" in text, f"docs/cli.md does not document exit code {int(code)} ({code.name})"
