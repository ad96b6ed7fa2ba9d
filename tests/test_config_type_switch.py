"""``--set <block>.type=...`` switches a typed block's method: the old type's own keys are dropped with one note, keys
set by another ``--set`` are never dropped, and the ``losses`` block is validated with the rest of the recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from restore.cli import main
from restore.config import ConfigError, apply_overrides, load_options, parse_options
from tests.option_toys import Degrade, Toy

RECIPE = """\
name: switch
task: sr
generator: {arch: srresnet, channels: 8, num_blocks: 2, negative_slope: 0.2, skip: bilinear}
critic:
  arch: vgg_critic
  width: 4
  dense: 8
  image_size: 32
  norm: {type: san, ratio: 0.25, gain: 1.3, every: 2}
data:
  train: {type: sr_hr_folder, roots: [a], gt_size: 32, rotate: false}
losses:
  adversarial: {type: hinge, weight: 0.01}
"""


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yml"
    path.write_text(RECIPE)
    return path


def test_switching_the_norm_drops_the_old_norms_keys_with_one_note(recipe, capsys):
    opts = load_options(recipe, ["critic.norm.type=sn"])
    assert opts.critic.norm.name == "sn" and dict(opts.critic.norm.kwargs) == {}
    err = capsys.readouterr().err
    assert err == ("note: --set critic.norm.type=sn dropped critic.norm.ratio, critic.norm.gain, critic.norm.every "
                   "(options of 'san' only)\n")


def test_keys_both_types_accept_are_kept(recipe, capsys):
    opts = load_options(recipe, ["critic.norm.type=r1"])  # r1 has `every` too
    assert opts.critic.norm.name == "r1" and dict(opts.critic.norm.kwargs) == {"every": 2}
    assert "dropped critic.norm.ratio, critic.norm.gain (options of 'san' only)" in capsys.readouterr().err


@pytest.mark.parametrize("sets", [
    ["critic.norm.type=sn", "critic.norm.ratio=0.5"],
    ["critic.norm.ratio=0.5", "critic.norm.type=sn"],  # whatever the order
])
def test_a_key_given_by_another_set_is_never_dropped(recipe, sets, capsys):
    with pytest.raises(ConfigError) as info:
        load_options(recipe, sets)
    assert str(info.value) == ("--set critic.norm.ratio: critic.norm.ratio is not an option of critic norm 'sn'; "
                               "valid: n_power_iterations, eps")
    assert capsys.readouterr().err.startswith("note: --set critic.norm.type=sn dropped critic.norm.gain, "
                                              "critic.norm.every (options of 'san' only)")


def test_the_same_type_drops_nothing_and_typos_still_fail(tmp_path: Path, capsys):
    path = tmp_path / "typo.yml"
    path.write_text(RECIPE.replace("every: 2", "evrey: 2"))
    with pytest.raises(ConfigError, match=r"typo.yml: critic.norm.evrey is not an option of critic norm 'sn'"):
        load_options(path, ["critic.norm.type=sn"])  # a key no type accepts is not the old type's: kept
    assert "critic.norm.evrey" not in capsys.readouterr().err
    with pytest.raises(ConfigError, match="evrey"):
        load_options(path, ["critic.norm.type=san"])  # unchanged type: nothing dropped
    assert capsys.readouterr().err == ""


def test_an_unknown_new_type_is_named(recipe):
    with pytest.raises(ConfigError, match=r"--set critic.norm.type: critic.norm.type unknown critic norm 'snn' "
                                          r"\(did you mean 'sn'\?\)"):
        load_options(recipe, ["critic.norm.type=snn"])


def test_switching_architectures_keeps_the_norm_block(recipe, capsys):
    opts = load_options(recipe, ["critic.arch=standard_cnn"])
    assert opts.critic.name == "standard_cnn" and dict(opts.critic.kwargs) == {"width": 4, "image_size": 32}
    assert opts.critic.norm.name == "san" and opts.critic.norm.kwargs["ratio"] == 0.25
    assert "dropped critic.dense (options of 'vgg_critic' only)" in capsys.readouterr().err
    opts = load_options(recipe, ["generator.arch=rrdbnet"])
    assert dict(opts.generator.kwargs) == {"channels": 8, "num_blocks": 2}
    assert "dropped generator.negative_slope, generator.skip (options of 'srresnet' only)" in capsys.readouterr().err


def test_switching_a_data_set(recipe, capsys):
    opts = load_options(recipe, ["data.train.type=sr_paired_folder", "data.train.lq_root=lq",
                                 "data.train.gt_root=gt"])
    assert dict(opts.data.train.kwargs) == {"gt_size": 32, "rotate": False, "lq_root": "lq", "gt_root": "gt"}
    assert "dropped data.train.roots (options of 'sr_hr_folder' only)" in capsys.readouterr().err


def test_a_shorthand_block_can_be_switched(tmp_path: Path, capsys):
    path = tmp_path / "short.yml"
    path.write_text(RECIPE.replace("norm: {type: san, ratio: 0.25, gain: 1.3, every: 2}", "norm: san"))
    opts = load_options(path, ["critic.norm.type=gp", "critic.norm.weight=5"])
    assert opts.critic.norm.name == "gp" and dict(opts.critic.norm.kwargs) == {"weight": 5.0}
    assert "note:" not in capsys.readouterr().err


def test_the_recipe_that_promises_it(capsys):
    root = Path(__file__).resolve().parents[1]
    assert main(["check", "-opt", str(root / "options/train/spade/smoke.yml"), "--set", "critic.norm.type=sn"]) == 0
    out = capsys.readouterr()
    assert "note: --set critic.norm.type=sn dropped critic.norm.ratio, critic.norm.gain (options of 'san' only)" \
        in out.err
    assert "norm SN(" in out.out


# ------------------------------------------------------------------ typed sub-blocks that are not registries
# (the toy dataclasses are in tests/option_toys.py)
def test_dataclass_unions_switch_by_type():
    data = {"step": {"type": "blur", "sigma": 2.0, "both": 3}}
    paths, notes = apply_overrides(data, ["step.type=noise"], Toy)
    assert data == {"step": {"type": "noise", "both": 3}} and paths == ["step.type"]
    assert notes == ["--set step.type=noise dropped step.sigma (options of 'blur' only)"]
    opts = parse_options({"degrade": {"type": "fancy", "strength": 0.9}}, overrides=["degrade.type=plain"], schema=Toy)
    assert opts.degrade == Degrade(type="plain")
    data = {"degrade": {"type": "plain"}}
    assert apply_overrides(data, ["degrade.type=fancy"], Toy)[1] == []  # nothing to drop


# ------------------------------------------------------------------ the losses block
@pytest.mark.parametrize("sets, message", [
    (["losses.adversarial.wieght=1"], r"--set losses.adversarial.wieght: losses.adversarial.wieght is not a known "
                                      r"option \(did you mean 'weight'\?\); valid: type, weight"),
    (["losses.adversarial.type=hinj"], r"--set losses.adversarial.type: losses.adversarial.type unknown adversarial "
                                       r"loss 'hinj' \(did you mean 'hinge'\?\)"),
    (["losses.kl={weight: 1}"], r"--set losses.kl: losses.kl is not a known option; valid: content, perceptual, "
                                r"adversarial"),
    (["losses.content.weight=fast"], r"losses.content.weight must be a number, got 'fast'"),
    (["task=stargan", "losses.reconstruction.weight=-1"],
     r"--set losses.reconstruction.weight: losses.reconstruction.weight must be >= 0, got -1.0"),
    (["task=attributes", "critic=null", "losses.adversarial=null"], r"losses.adversarial is not a known option; "
                                                                    r"valid: \(none\)"),
])
def test_config_validation_checks_the_losses_of_the_task(recipe, sets, message):
    with pytest.raises(ConfigError, match=message):
        load_options(recipe, sets)


def test_a_loss_typo_in_the_file_names_the_file(tmp_path: Path, capsys):
    path = tmp_path / "loss.yml"
    path.write_text(RECIPE.replace("{type: hinge, weight: 0.01}", "{type: hinge, weigth: 0.01}"))
    assert main(["check", "-opt", str(path)]) == 2
    assert capsys.readouterr().err == (f"error: {path}: losses.adversarial.weigth is not a known option (did you mean "
                                       "'weight'?); valid: type, weight\n")
