"""`restore infer` tells a script what happened: exit 0 when every input was written, 5 (PARTIAL) when some failed,
2 (BAD_INPUT) when none was written; each failure has its own line. Existing outputs are refused unless
``--overwrite``; ``--suffix`` names outputs that would replace their inputs; animated GIFs (file or folder) use their
first frame, with a note. Real tiny generators (SR, SPADE, StarGAN) written as self-describing weights files."""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from restore.cli import Exit, build_parser, main
from restore.data.io import read_image, write_image
from restore.engine.weights import save_generator

BROKEN = b"\x89PNG\r\n\x1a\n not really a png"


def _build(arch: str, kwargs: dict) -> torch.nn.Module:
    import restore.archs  # noqa: F401  (fills the registry)
    from restore.registry import GENERATORS

    torch.manual_seed(0)
    return GENERATORS.build(arch, **kwargs)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny weights file per task restore infer runs."""
    from restore.data.labels import LABEL_SETS

    folder = tmp_path_factory.mktemp("models")
    sr = {"channels": 4, "num_blocks": 1, "scale": 2}
    spade = {"label_channels": 12, "ngf": 4, "crop_size": 64, "spade_hidden": 8}
    facades = LABEL_SETS["cmp_facades"]
    spade_extra = {"label_set": "cmp_facades", "num_classes": 12, "use_instance": False,
                   "class_names": list(facades.class_names),
                   "palette": [[int(c) for c in rgb] for rgb in facades.palette]}
    star = {"num_attributes": 2, "ngf": 4, "num_res_blocks": 1}
    star_extra = {"attribute_names": ["Male", "Young"], "exclusive_groups": [], "image_size": 32}
    return {
        "sr": save_generator(_build("srresnet", sr), folder / "sr.safetensors", "srresnet", sr, "sr"),
        "spade": save_generator(_build("spade", spade), folder / "spade.safetensors", "spade", spade, "spade",
                                extra=spade_extra),
        "stargan": save_generator(_build("stargan", star), folder / "stargan.safetensors", "stargan", star,
                                  "stargan", extra=star_extra),
    }


TASK_ARGS = {"sr": ["--tile", "0"], "spade": [], "stargan": ["--set", "Male=1", "--set", "Young=0"]}


def _good(task: str, path: Path) -> Path:
    """A valid input for ``task`` at ``path``: a photo (sr, stargan) or a cmp_facades label map (spade)."""
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    if task == "spade":
        PILImage.fromarray(rng.integers(1, 13, (20, 24), dtype=np.uint8)).save(path)
    else:
        write_image(path, rng.random((12, 10, 3), dtype=np.float32))
    return path


def _infer(models: dict[str, Path], task: str, *args: str) -> int:
    return main(["infer", "--model", str(models[task]), *args, "--device", "cpu", *TASK_ARGS[task]])


# ----------------------------------------------------------------------------------------------------- exit codes
@pytest.mark.parametrize("task", ["sr", "spade", "stargan"])
def test_one_unreadable_file_exits_bad_input(models: dict[str, Path], task: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(BROKEN)
    assert _infer(models, task, str(bad), "-o", str(tmp_path / "out.png")) == Exit.BAD_INPUT
    cap = capsys.readouterr()
    text = cap.out + cap.err
    assert re.search(r"broken\.png: .*(not an image|corrupt|cannot identify)", cap.err), cap.err
    assert "wrote 0 of 1" in text and "1 failed" in text
    assert "Traceback" not in text and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("task", ["sr", "spade", "stargan"])
def test_some_failed_exits_partial_and_all_good_exits_ok(models: dict[str, Path], task: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    _good(task, src / "a.png")
    _good(task, src / "b.png")
    (src / "c.png").write_bytes(BROKEN)
    out = tmp_path / "out"
    assert _infer(models, task, str(src), "-o", str(out)) == Exit.PARTIAL
    cap = capsys.readouterr()
    assert "c.png" in cap.err and "wrote 2 of 3" in cap.out + cap.err and "1 failed" in cap.out + cap.err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    (src / "c.png").unlink()
    assert _infer(models, task, str(src), "-o", str(tmp_path / "out2")) == Exit.OK
    assert "wrote 2 " in capsys.readouterr().out


def test_path_functions_report_their_failures(models: dict[str, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """upscale_paths / spade_paths / stargan_paths return the written paths (a list, as before) and ``failed``."""
    from restore.engine.weights import load_generator
    from restore.inference.translate import spade_paths, stargan_paths
    from restore.inference.upscale import upscale_paths

    for task in ("sr", "spade", "stargan"):
        src = tmp_path / task
        src.mkdir()
        _good(task, src / "a.png")
        (src / "z.png").write_bytes(BROKEN)
        model, desc = load_generator(models[task])
        out = tmp_path / f"{task}_out"
        if task == "sr":
            result = upscale_paths(model, [src], out, 2, tile=None, progress=False)
        elif task == "spade":
            result = spade_paths(model, desc, [src], out)
        else:
            result = stargan_paths(model, desc, [src], out, ["Male=1", "Young=1"])
        assert result == [out / "a.png"], task
        assert [(p, "not an image" in why or "corrupt" in why) for p, why in result.failed] == [(src / "z.png", True)]
    assert capsys.readouterr().err.count("z.png") >= 3


# ----------------------------------------------------------------------------------------------------- GIF
def _gif(path: Path, frames: int) -> Path:
    rng = np.random.default_rng(frames)
    images = [PILImage.fromarray((rng.random((10, 12, 3)) * 255).astype(np.uint8)) for _ in range(frames)]
    images[0].save(path, save_all=frames > 1, append_images=images[1:], duration=100, loop=0)
    return path


def test_animated_gif_first_frame_in_file_and_folder_mode(models: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    _gif(src / "anim.gif", 3)
    _gif(src / "still.gif", 1)
    _good("sr", src / "a.png")
    assert _infer(models, "sr", str(src), "-o", str(tmp_path / "out")) == Exit.OK
    cap = capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "anim.png", "still.png"]
    assert "wrote 3 " in cap.out
    assert re.search(r"anim\.gif has 3 frames.*only the first", cap.err) and "still.gif has" not in cap.err
    assert _infer(models, "sr", str(src / "anim.gif"), "-o", str(tmp_path / "one.png")) == Exit.OK
    assert re.search(r"anim\.gif has 3 frames.*only the first", capsys.readouterr().err)
    one, folder = read_image(tmp_path / "one.png"), read_image(tmp_path / "out" / "anim.png")
    assert one.rgb.shape == (20, 24, 3) and np.array_equal(one.rgb, folder.rgb)


def test_gif_output_is_refused(models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gif = _gif(tmp_path / "anim.gif", 2)
    assert _infer(models, "sr", str(gif), "-o", str(tmp_path / "out.gif")) == Exit.BAD_INPUT
    err = capsys.readouterr().err
    assert "out.gif" in err and ".png" in err and not (tmp_path / "out.gif").exists()


# ----------------------------------------------------------------------------------------------------- --overwrite
@pytest.mark.parametrize("task", ["sr", "spade", "stargan"])
def test_existing_output_file_is_refused_without_overwrite(models: dict[str, Path], task: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = _good(task, tmp_path / "a.png")
    target = tmp_path / "result.png"
    target.write_bytes(b"keep me")
    assert _infer(models, task, str(src), "-o", str(target)) == Exit.BAD_INPUT
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert "result.png" in err and "--overwrite" in err and "-o" in err
    assert target.read_bytes() == b"keep me"
    assert _infer(models, task, str(src), "-o", str(target), "--overwrite") == Exit.OK
    assert read_image(target).rgb.ndim == 3


def test_existing_outputs_in_a_folder_are_failures(models: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    _good("sr", src / "a.png")
    _good("sr", src / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"keep me")
    assert _infer(models, "sr", str(src), "-o", str(out)) == Exit.PARTIAL
    err = capsys.readouterr().err
    assert re.search(r"out[/\\]a\.png exists.*--overwrite", err)
    assert (out / "a.png").read_bytes() == b"keep me" and read_image(out / "b.png").rgb.shape == (24, 20, 3)
    assert _infer(models, "sr", str(src), "-o", str(out)) == Exit.BAD_INPUT  # both exist now
    assert "wrote 0 of 2" in "".join(capsys.readouterr())
    assert _infer(models, "sr", str(src), "-o", str(out), "--overwrite") == Exit.OK
    assert read_image(out / "a.png").rgb.shape == (24, 20, 3)


# ----------------------------------------------------------------------------------------------------- --suffix
def _options() -> set[str]:
    parser = build_parser()
    infer = parser._subparsers._group_actions[0].choices["infer"]  # type: ignore[union-attr]
    return {s for a in infer._actions for s in a.option_strings}


def test_refusing_to_overwrite_an_input_suggests_options_that_exist(models: dict[str, Path], tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    _good("sr", src / "a.png")
    before = (src / "a.png").read_bytes()
    assert _infer(models, "sr", str(src), "-o", str(src)) == Exit.BAD_INPUT
    err = capsys.readouterr().err
    assert "refusing to overwrite input file" in err and "a.png" in err
    suggested = set(re.findall(r"(?<![\w-])--?[a-z][\w-]*", err))
    assert "--suffix" in suggested and suggested <= _options(), suggested - _options()
    assert (src / "a.png").read_bytes() == before
    assert _infer(models, "sr", str(src), "-o", str(src), "--suffix", "_x2") == Exit.OK
    assert (src / "a.png").read_bytes() == before and read_image(src / "a_x2.png").rgb.shape == (24, 20, 3)


@pytest.mark.parametrize("task", ["spade", "stargan"])
def test_suffix_for_translation_tasks(models: dict[str, Path], task: str, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    _good(task, src / "a.png")
    assert _infer(models, task, str(src), "-o", str(src), "--suffix", "_out") == Exit.OK
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "a_out.png"]


def test_bad_suffixes_are_refused(models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _good("sr", tmp_path / "a.png")
    assert _infer(models, "sr", str(src), "-o", str(tmp_path / "o"), "--suffix", "../x") == Exit.BAD_INPUT
    assert "--suffix" in capsys.readouterr().err
    assert _infer(models, "sr", str(src), "-o", str(tmp_path / "o.png"), "--suffix", "_x2") == Exit.BAD_INPUT
    err = capsys.readouterr().err
    assert "--suffix" in err and "o.png" in err and not (tmp_path / "o.png").exists()
