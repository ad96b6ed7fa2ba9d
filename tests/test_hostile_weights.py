"""Damaged or hostile weights files fail fast with one ValueError naming the file (``error:`` line, exit 2 in the
CLI), before any network is built at the size they ask for: a 1 KB file must not make the loader allocate gigabytes.

Each case is a real file: random bytes, a truncated or empty safetensors file, restore metadata that is not JSON,
not a JSON object, or has wrongly typed fields, an unknown architecture, kwargs that ask for absurd sizes (channels
10**6, num_blocks 10**7, a 2**20-pixel SPADE output, a 10**6-pixel StarGAN input), weights that do not fit their
kwargs, and checkpoints that are not restore checkpoints or hold broadcast tensors posing as big ones."""

from __future__ import annotations

import json
import os
import re
import resource
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch.nn.modules import module as torch_module

from restore.cli import main
from restore.engine.weights import META_KEY, load_generator, load_state_into, read_generator, save_generator

SR = {"channels": 4, "num_blocks": 1, "scale": 2}
MAX_SECONDS = 2.0
MAX_RSS_GROWTH_MB = 200


def _net(arch: str = "srresnet", **kwargs) -> torch.nn.Module:
    import restore.archs  # noqa: F401
    from restore.registry import GENERATORS

    torch.manual_seed(0)
    return GENERATORS.build(arch, **(kwargs or SR))


def _with_meta(path: Path, desc: object, raw: str | None = None, state: dict | None = None) -> Path:
    """A valid safetensors file (a tiny srresnet's tensors) whose restore metadata is ``desc`` (or ``raw`` text)."""
    state = state if state is not None else {k: v.contiguous() for k, v in _net().state_dict().items()}
    save_file(state, str(path), metadata={META_KEY: raw if raw is not None else json.dumps(desc)})
    return path


def _sr_desc(**kwargs) -> dict:
    return {"arch": "srresnet", "kwargs": {**SR, **kwargs}, "task": "sr"}


def _random(p: Path) -> Path:
    p.write_bytes(os.urandom(1024))
    return p


def _random_with_small_header_length(p: Path) -> Path:
    p.write_bytes(struct.pack("<Q", 900) + os.urandom(1016))  # a header length that fits, then garbage
    return p


def _truncated(p: Path) -> Path:
    whole = save_generator(_net(), p.with_name("whole.safetensors"), "srresnet", SR, "sr").read_bytes()
    p.write_bytes(whole[: len(whole) // 2])
    return p


def _empty(p: Path) -> Path:
    p.write_bytes(b"")
    return p


def _checkpoint(p: Path, obj: object) -> Path:
    torch.save(obj, p)
    return p


def _gen_entry(kwargs: dict, state: dict | None = None) -> dict:
    return {"type": "srresnet", "kwargs": kwargs, "extra": {},
            "state": state if state is not None else _net().state_dict()}


def _spade(p: Path, crop_size: int) -> Path:
    kwargs = {"label_channels": 12, "ngf": 4, "crop_size": 64, "spade_hidden": 8}
    desc = {"arch": "spade", "kwargs": {**kwargs, "crop_size": crop_size}, "task": "spade", "label_set": "cmp_facades",
            "num_classes": 12, "use_instance": False, "palette": [[i, i, i] for i in range(12)]}
    return _with_meta(p, desc, state={k: v.contiguous() for k, v in _net("spade", **kwargs).state_dict().items()})


def _stargan(p: Path, image_size: int) -> Path:
    kwargs = {"num_attributes": 2, "ngf": 4, "num_res_blocks": 1}
    desc = {"arch": "stargan", "kwargs": kwargs, "task": "stargan", "attribute_names": ["Male", "Young"],
            "exclusive_groups": [], "image_size": image_size}
    return _with_meta(p, desc, state={k: v.contiguous() for k, v in _net("stargan", **kwargs).state_dict().items()})


# name -> (file name, how to write it, what the message must say)
CASES: dict[str, tuple[str, Callable[[Path], Path], str]] = {
    "random_bytes": ("g.safetensors", _random, r"not a readable safetensors file"),
    "random_after_a_length": ("g.safetensors", _random_with_small_header_length, r"not a readable safetensors file"),
    "empty": ("g.safetensors", _empty, r"not a readable safetensors file"),
    "truncated": ("g.safetensors", _truncated, r"not a readable safetensors file"),
    "meta_not_json": ("g.safetensors", lambda p: _with_meta(p, None, raw="{arch: srresnet"), r"is not JSON"),
    "meta_json_list": ("g.safetensors", lambda p: _with_meta(p, ["srresnet", SR]), r"must be a JSON object.*list"),
    "meta_json_string": ("g.safetensors", lambda p: _with_meta(p, "srresnet"), r"must be a JSON object.*str"),
    "no_arch": ("g.safetensors", lambda p: _with_meta(p, {"kwargs": SR, "task": "sr"}), r"'arch'"),
    "arch_not_a_string": ("g.safetensors", lambda p: _with_meta(p, {**_sr_desc(), "arch": 7}), r"'arch' must be"),
    "kwargs_not_an_object": ("g.safetensors", lambda p: _with_meta(p, {**_sr_desc(), "kwargs": [4, 1]}),
                             r"'kwargs' must be"),
    "task_not_a_string": ("g.safetensors", lambda p: _with_meta(p, {**_sr_desc(), "task": ["sr"]}), r"'task' must be"),
    "bad_dtype": ("g.safetensors", lambda p: _with_meta(p, {**_sr_desc(), "dtype": "fp8"}), r"'dtype'.*fp16"),
    "unknown_arch": ("g.safetensors", lambda p: _with_meta(p, {**_sr_desc(), "arch": "transformer9000"}),
                     r"unknown generator architecture 'transformer9000'.*srresnet"),
    "unknown_kwarg": ("g.safetensors", lambda p: _with_meta(p, _sr_desc(bogus=1)), r"kwargs\.bogus"),
    "kwarg_wrong_type": ("g.safetensors", lambda p: _with_meta(p, _sr_desc(channels="many")),
                         r"kwargs\.channels must be"),
    "negative_channels": ("g.safetensors", lambda p: _with_meta(p, _sr_desc(channels=-4)), r"channels"),
    "huge_int": ("g.safetensors", lambda p: _with_meta(p, _sr_desc(channels=10**40)), r"channels"),
    "channels_1e6": ("g.safetensors", lambda p: _with_meta(p, _sr_desc(channels=10**6)), r"channels=1000000"),
    "num_blocks_1e7": ("g.safetensors", lambda p: _with_meta(p, _sr_desc(num_blocks=10**7)), r"num_blocks=10000000"),
    "channels_mismatch": ("g.safetensors", lambda p: _with_meta(p, _sr_desc(channels=8)),
                          r"shape .*\b8\b.* in the architecture but .*\b4\b.* in the file.*channels=8"),
    "spade_output_2e20": ("g.safetensors", lambda p: _spade(p, 2**20), r"crop_size|1048576"),
    "stargan_image_1e6": ("g.safetensors", lambda p: _stargan(p, 10**6), r"image_size"),
    "palette_not_a_list": ("g.safetensors", lambda p: _with_meta(p, {**_sr_desc(), "palette": "red"}),
                           r"'palette' must be"),
    "ckpt_random": ("g.pt", _random, r"cannot load checkpoint"),
    "ckpt_list": ("g.pt", lambda p: _checkpoint(p, [torch.zeros(3)]), r"not a restore checkpoint.*list"),
    "ckpt_no_generator": ("g.pt", lambda p: _checkpoint(p, {"step": 3}), r"not a restore checkpoint.*'generator'"),
    "ckpt_generator_not_dict": ("g.pt", lambda p: _checkpoint(p, {"generator": [1, 2]}), r"'generator' must be"),
    "ckpt_state_not_tensors": ("g.pt", lambda p: _checkpoint(p, {"generator": _gen_entry(SR, {"w": [1.0]})}),
                               r"'w'.*not a tensor"),
    "ckpt_channels_1e6": ("g.pt", lambda p: _checkpoint(p, {"generator": _gen_entry({**SR, "channels": 10**6})}),
                          r"channels=1000000"),
    "ckpt_broadcast_tensor": ("g.pt", lambda p: _checkpoint(p, {"generator": _gen_entry(
        {**SR, "channels": 10**5}, {"head.weight": torch.zeros(1).expand(10**5, 3, 9, 9)})}),
        r"'head.weight'.*storage"),
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _hooks() -> tuple[int, int, int]:
    return (len(torch_module._global_parameter_registration_hooks),
            len(torch_module._global_buffer_registration_hooks), len(torch_module._global_module_registration_hooks))


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_file_is_a_fast_value_error_naming_it(case: str, tmp_path: Path) -> None:
    name, write, message = CASES[case]
    path = write(tmp_path / name)
    hooks = _hooks()
    rss, start = _peak_rss_mb(), time.monotonic()
    with pytest.raises(ValueError) as info:
        load_generator(path)
    elapsed, grown = time.monotonic() - start, _peak_rss_mb() - rss
    text = str(info.value)
    assert str(path) in text, text
    assert re.search(message, text), text
    assert "\n" not in text
    assert elapsed < MAX_SECONDS, f"{case}: {elapsed:.2f} s"
    assert grown < MAX_RSS_GROWTH_MB, f"{case}: peak RSS grew by {grown:.0f} MB"
    assert _hooks() == hooks  # the size probe leaves no global hook behind


@pytest.mark.parametrize("case", ["random_bytes", "meta_json_list", "unknown_arch", "num_blocks_1e7",
                                  "channels_1e6", "ckpt_list", "truncated"])
def test_cli_prints_one_error_line_and_exits_2(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RESTORE_DEBUG", raising=False)
    name, write, _ = CASES[case]
    path = write(tmp_path / name)
    start = time.monotonic()
    code = main(["infer", "--model", str(path), str(tmp_path / "x.png"), "-o", str(tmp_path / "y.png")])
    cap = capsys.readouterr()
    assert code == 2, cap.err
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(path) in lines[0], cap.err
    assert "Traceback" not in cap.err + cap.out
    assert time.monotonic() - start < MAX_SECONDS + 1


@pytest.mark.parametrize("case", ["random_bytes", "truncated", "meta_not_json", "meta_json_list", "bad_dtype",
                                  "ckpt_list", "ckpt_state_not_tensors", "ckpt_broadcast_tensor"])
def test_read_generator_and_load_state_into_refuse_too(case: str, tmp_path: Path) -> None:
    name, write, message = CASES[case]
    path = write(tmp_path / name)
    for call in (lambda: read_generator(path), lambda: load_state_into(_net(), path)):
        with pytest.raises(ValueError) as info:
            call()
        assert str(path) in str(info.value) and re.search(message, str(info.value)), str(info.value)


def test_load_state_into_names_the_tensor_that_does_not_fit(tmp_path: Path) -> None:
    path = save_generator(_net(), tmp_path / "g.safetensors", "srresnet", SR, "sr")
    with pytest.raises(ValueError, match=r"g\.safetensors.*'head\.0\.weight'.*\(8, 3, 3, 3\).*\(4, 3, 3, 3\)"):
        load_state_into(_net(**{**SR, "channels": 8}), path)


def test_good_files_still_load(tmp_path: Path) -> None:
    """Safetensors and checkpoints written by restore load unchanged (EMA preferred), leaving no hook behind."""
    net = _net()
    hooks = _hooks()
    path = save_generator(net, tmp_path / "g.safetensors", "srresnet", SR, "sr", extra={"note": "x"})
    module, desc = load_generator(path)
    assert desc["arch"] == "srresnet" and desc["note"] == "x"
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in module.state_dict().items())
    ema = {k: v + 1 for k, v in net.state_dict().items()}
    ckpt = _checkpoint(tmp_path / "c.pt", {"generator": _gen_entry(SR), "ema": ema, "config": {"task": "sr"}})
    module, desc = load_generator(ckpt)
    assert desc["task"] == "sr" and all(torch.equal(v, ema[k]) for k, v in module.state_dict().items())
    assert _hooks() == hooks


def test_published_models_load_quickly() -> None:
    """The size probe must not make loading the repository's published models slow."""
    weights = Path(__file__).resolve().parents[1] / "weights"
    for f in sorted(weights.glob("*.safetensors")):
        start = time.monotonic()
        load_generator(f)
        assert time.monotonic() - start < 10, f
