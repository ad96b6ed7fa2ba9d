import pytest

from restore.cli import main
from restore.config import ConfigError, NormSpec, Options, load_options, parse_override, to_dict

RECIPE = """\
name: tiny_san
task: sr
seed: 3
critic:
  arch: vgg_critic
  width: 4
  image_size: 32
  norm: {type: san, ratio: 0.25, gain: auto, every: 10}
train: {steps: 100, batch_size: 4, lr_g: 1e-4, betas: [0.5, 0.99]}
"""


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "recipe.yml"
    path.write_text(RECIPE)
    return path


def write(tmp_path, text):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    return path


def test_loads_typed_options_with_defaults(recipe):
    opts = load_options(recipe)
    assert isinstance(opts, Options)
    assert opts.train.lr_g == 1e-4  # PyYAML reads 1e-4 as a string; the schema makes it a float
    assert opts.train.betas == (0.5, 0.99)
    assert opts.train.lr_d == 2e-4 and opts.checkpoint.keep == 3  # defaults
    assert opts.critic.name == "vgg_critic" and opts.critic.kwargs == {"width": 4, "image_size": 32}
    assert isinstance(opts.critic.norm, NormSpec)
    assert opts.critic.norm.kwargs == {"ratio": 0.25, "gain": "auto", "every": 10}
    norm = opts.critic.norm.build()
    assert (norm.ratio, norm.every) == (0.25, 10)
    assert opts.source == str(recipe)


def test_overrides_set_nested_values_and_are_typed(recipe):
    opts = load_options(recipe, ["critic.norm.ratio=0.5", "train.betas=[0.0, 0.9]", "critic.norm.gain=1.3",
                                 "val.every=7"])
    assert opts.critic.norm.kwargs["ratio"] == 0.5 and opts.critic.norm.kwargs["gain"] == 1.3
    assert opts.train.betas == (0.0, 0.9) and opts.val.every == 7


def test_override_can_switch_the_norm(recipe):
    opts = load_options(recipe, ["critic.norm={type: gp, weight: 5}"])
    assert opts.critic.norm.name == "gp" and opts.critic.norm.kwargs == {"weight": 5.0}


@pytest.mark.parametrize(
    "override, message",
    [
        ("critic.norm.ratio=1.5", r"--set critic.norm.ratio: critic.norm.ratio must be in \(0, 1\], got 1.5"),
        ("critic.norm.ration=0.5", r"critic.norm.ration is not an option of critic norm 'san' \(did you mean "
                                   r"'ratio'\?\)"),
        ("critic.norm.type=sam", r"critic.norm.type unknown critic norm 'sam' \(did you mean 'san'\?\)"),
        ("train.stesp=5", r"train.stesp is not a known option \(did you mean 'steps'\?\)"),
        ("train.batch_size=0", r"train.batch_size must be >= 1, got 0"),
        ("train.steps=1.5", r"train.steps must be an integer, got 1.5"),
        ("train.betas=[0.5]", r"train.betas must be a list of 2 items"),
        ("task=spad", r"task must be one of 'sr', 'spade', 'stargan', 'attributes', got 'spad' "
                      r"\(did you mean 'spade'\?\)"),
        ("critic.widht=8", r"critic.widht is not an option of critic architecture 'vgg_critic' \(did you mean "
                           r"'width'\?\)"),
        ("critic.norm.gain=big", r"critic.norm.gain must be a number, got 'big' or must be one of 'auto'"),
        ("train", r"--set expects key.path=value, got 'train'"),
    ],
)
def test_errors_name_the_key_and_the_value(recipe, override, message):
    with pytest.raises(ConfigError, match=message):
        load_options(recipe, [override])


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"bad.yml: critic.norm.every must be >= 1, got 0"):
        load_options(write(tmp_path, RECIPE.replace("every: 10", "every: 0")))
    with pytest.raises(ConfigError, match=r"bad.yml: name is required"):
        load_options(write(tmp_path, "task: sr\n"))
    with pytest.raises(ConfigError, match=r"bad.yml:3: duplicate key 'task'"):
        load_options(write(tmp_path, "name: a\ntask: sr\ntask: spade\n"))
    with pytest.raises(ConfigError, match=r"bad.yml:\d+:\d+: invalid YAML: expected ',' or ']'"):
        load_options(write(tmp_path, "name: a\ntask: [sr\n"))
    with pytest.raises(ConfigError, match=r"options file not found: .*missing.yml"):
        load_options(tmp_path / "missing.yml")
    with pytest.raises(ConfigError, match=r"top level must be a mapping"):
        load_options(write(tmp_path, "- a\n- b\n"))


def test_builder_value_errors_carry_file_and_key(tmp_path):
    from restore.builders import build_critic_from_spec

    path = write(tmp_path, RECIPE.replace("  width: 4\n", "  width: 4\n  padding_mode: zeros\n"))
    opts = load_options(path)
    with pytest.raises(ConfigError, match=r"bad.yml: critic.padding_mode is 'zeros', but critic norm 'san' needs"):
        build_critic_from_spec(opts.critic)


def test_round_trip_through_plain_dict(recipe, tmp_path):
    import yaml

    opts = load_options(recipe, ["critic.norm.every=4"])
    again = tmp_path / "again.yml"
    again.write_text(yaml.safe_dump(to_dict(opts)))
    assert to_dict(load_options(again)) == to_dict(opts)


def test_override_values_are_parsed_safely():
    assert parse_override("a.b=!!python/object/apply:os.system ['true']")[1] == \
        "!!python/object/apply:os.system ['true']"
    assert parse_override("a.b=1e-3") == (["a", "b"], "1e-3")  # typed later by the schema
    assert parse_override("x=null") == (["x"], None)


def test_cli_check_prints_resolved_options_and_reports_errors(recipe, capsys):
    assert main(["check", "-opt", str(recipe), "--set", "critic.norm.every=2"]) == 0
    out = capsys.readouterr().out
    assert "every: 2" in out and "VGGCritic" in out
    assert main(["check", "-opt", str(recipe), "--set", "critic.norm.ratio=2"]) == 2
    assert "critic.norm.ratio must be in (0, 1], got 2" in capsys.readouterr().err


def test_cli_lists_norms(capsys):
    assert main(["norms"]) == 0
    out = capsys.readouterr().out
    for name in ("san", "sn", "bsn", "gp", "r1", "gran", "none"):
        assert f"\n{name}" in "\n" + out
