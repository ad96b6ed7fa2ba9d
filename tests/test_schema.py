"""The recipes' JSON Schema (options/schema.json): generated from the code, never stale, and it agrees with the
validator: every recipe passes both, and typos, keys of another type and wrong value types fail both."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from restore.cli import main
from restore.config import ConfigError, Options, import_registries, load_options, parse_options, to_dict
from restore.registry import CRITICS, DATASETS, GENERATORS, NORMS
from restore.schema import _Builder, recipe_schema, schema_text
from tests.option_toys import Toy

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "options" / "schema.json"
RECIPES = sorted((ROOT / "options").rglob("*.yml"))
MODELINE = "# yaml-language-server: $schema="

try:
    import jsonschema
except ImportError:  # a dev dependency; the tests that need it skip without it
    jsonschema = None
needs_jsonschema = pytest.mark.skipif(jsonschema is None, reason="jsonschema is not installed (pip install -e .[dev])")


def schema_errors(data: Any, schema: dict | None = None) -> list[str]:
    validator = jsonschema.Draft7Validator(schema or json.loads(SCHEMA.read_text()))
    errors = list(validator.iter_errors(data))
    best = jsonschema.exceptions.best_match(errors)  # what an editor underlines first
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in [best, *errors] if e is not None]


def recipe(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "options" / "train" / name).read_text())


def test_the_committed_schema_is_a_fresh_generation():
    stale = "options/schema.json is stale: run restore schema -o options/schema.json"
    assert SCHEMA.read_text() == schema_text(), stale


def test_restore_schema_writes_stdout_or_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == recipe_schema()
    out = tmp_path / "schema.json"
    assert main(["schema", "-o", str(out)]) == 0
    assert out.read_text() == schema_text() and f"wrote {out}" in capsys.readouterr().out


@needs_jsonschema
def test_the_schema_is_valid_draft_07():
    jsonschema.Draft7Validator.check_schema(json.loads(SCHEMA.read_text()))


@needs_jsonschema
@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "options")))
def test_every_recipe_passes_the_schema_and_the_validator(path: Path):
    assert schema_errors(yaml.safe_load(path.read_text())) == []
    load_options(path)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "options")))
def test_every_recipe_names_the_schema_on_its_first_line(path: Path):
    first = path.read_text().splitlines()[0]
    assert first.startswith(MODELINE), f"{path}: the first line must be {MODELINE}<path to options/schema.json>"
    target = PurePosixPath(first[len(MODELINE):].strip())
    assert not target.is_absolute()
    assert (path.parent / target).resolve() == SCHEMA.resolve()
    assert target == PurePosixPath(os.path.relpath(SCHEMA, path.parent).replace(os.sep, "/"))


def _set(data: dict, dotted: str, value: Any) -> dict:
    data = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


# (recipe, key path, value): each mistake must fail the schema *and* `restore check`
MISTAKES = [
    ("sr/x4_smoke.yml", "train.stesp", 10),  # an unknown key of a dataclass block
    ("sr/x4_smoke.yml", "critic.norm.ratoi", 0.5),  # a typo in a norm's options
    ("sr/x4_smoke.yml", "critic.norm", {"type": "sn", "ratio": 0.5}),  # a SAN option under SN
    ("sr/x4_smoke.yml", "critic.norm.type", "spectral"),  # an unknown norm
    ("sr/x4_smoke.yml", "critic.widht", 8),  # a typo in an architecture's kwargs
    ("sr/x4_smoke.yml", "generator.ndf", 8),  # a critic's kwarg on the generator
    ("sr/x4_smoke.yml", "data.train.gt_sise", 64),  # a typo in a data set's options
    ("sr/x4_smoke.yml", "losses.perceptual.wieght", 1.0),  # a typo in a loss block
    ("sr/x4_smoke.yml", "losses.kl", {"weight": 1.0}),  # a SPADE loss in an SR recipe
    ("sr/x4_smoke.yml", "losses.adversarial.type", "hinj"),  # an unknown adversarial loss
    ("sr/x4_smoke.yml", "train.amp", "fp8"),  # a value outside a Literal
    ("sr/x4_smoke.yml", "train.betas", [0.5]),  # a pair with one item
    ("sr/x4_smoke.yml", "train.steps", "many"),  # not a number
    ("sr/x4_smoke.yml", "critic.norm.gain", "loud"),  # neither a number nor 'auto'
    ("sr/x4_smoke.yml", "train.channels_last", "yes"),  # a string where true/false/auto is expected
    ("spade/smoke.yml", "losses.content", {"weight": 1.0}),  # an SR loss in a SPADE recipe
    ("spade/smoke.yml", "data.val.test_cnt", 3),  # a typo in the merged (<<: *anchor) data set block
    ("stargan/smoke.yml", "losses.reconstruction.wieght", 5),
    ("attributes/utkface_classifier.yml", "losses", {"adversarial": {"weight": 1.0}}),  # attributes: no losses
    ("sr/x4_smoke.yml", "sourse", "x"),  # an unknown top-level key
]


@needs_jsonschema
@pytest.mark.parametrize("name, key, value", MISTAKES, ids=[f"{n}:{k}" for n, k, _ in MISTAKES])
def test_a_mistake_fails_the_schema_and_the_validator(name: str, key: str, value: Any):
    bad = _set(recipe(name), key, value)
    errors = schema_errors(bad)
    assert errors, f"the schema accepts {key}={value!r}"
    where = errors[0].split(":")[0]
    assert key == where or key.startswith(f"{where}." if where else ""), errors[0]  # the error is at the block
    with pytest.raises(ConfigError):
        parse_options(bad, source=name)


# values the validator accepts that a naive schema would refuse
ACCEPTED = [
    ("sr/x4_smoke.yml", "train.lr_g", "1e-4"),  # PyYAML reads 1e-4 (no dot) as a string
    ("sr/x4_smoke.yml", "critic.norm", "sn"),  # the shorthand of {type: sn}
    ("sr/x4_smoke.yml", "critic.norm.gain", 1.3),  # a number where 'auto' is the default
    ("sr/x4_smoke.yml", "train.channels_last", True),
    ("sr/x4_smoke.yml", "losses.perceptual", None),  # an optional loss switched off
    ("sr/x4_smoke.yml", "data.val", None),
    ("sr/x4_smoke.yml", "losses.perceptual.layers", {"conv5_4": 1.0, "relu2_2": 0.5}),
]


@needs_jsonschema
@pytest.mark.parametrize("name, key, value", ACCEPTED, ids=[f"{n}:{k}" for n, k, _ in ACCEPTED])
def test_what_the_validator_accepts_the_schema_accepts(name: str, key: str, value: Any):
    good = _set(recipe(name), key, value)
    assert schema_errors(good) == []
    parse_options(good, source=name)


def _branches(definition: dict) -> dict[str, set[str]]:
    block = definition["else"]
    return {b["if"]["properties"][block["required"][0]]["const"]: set(b["then"]["properties"])
            for b in block["allOf"]}


def test_every_registered_part_has_its_own_options():
    import_registries()
    defs = recipe_schema()["definitions"]
    for definition, registry, extra in (("NormSpec", NORMS, {"type"}), ("ArchSpec", GENERATORS, {"arch"}),
                                        ("CriticSpec", CRITICS, {"arch", "norm"}), ("DatasetSpec", DATASETS, {"type"})):
        branches = _branches(defs[definition])
        assert set(branches) == set(registry.names()), definition
        for name, keys in branches.items():
            assert keys == set(registry.parameters(name)) | extra, (definition, name)


def test_schema_defaults_are_the_validators():
    """The defaults an editor shows are those a minimal recipe resolves to."""
    defs = recipe_schema()["definitions"]
    resolved = to_dict(parse_options({"name": "x", "task": "sr"}))
    for block, definition in (("train", "TrainOptions"), ("val", "ValOptions"), ("checkpoint", "CheckpointOptions"),
                              ("path", "PathOptions")):
        shown = {k: v.get("default") for k, v in defs[definition]["properties"].items()}
        assert shown == resolved[block], block
    norm_defaults = {k: v["default"] for k, v in defs["NormSpec"]["else"]["allOf"][
        NORMS.names().index("san")]["then"]["properties"].items() if k != "type"}
    assert norm_defaults == {k: p.default for k, p in NORMS.parameters("san").items()}


# ------------------------------------------------------------------ typed sub-blocks that are not registries
# (the toy dataclasses are in tests/option_toys.py)
@needs_jsonschema
def test_dataclass_unions_are_told_apart_by_type():
    b = _Builder()
    schema = {**b.hint(Toy), "definitions": b.definitions}
    assert schema_errors({"step": {"type": "noise", "level": 0.2, "both": 2}}, schema) == []
    assert schema_errors({"step": {"type": "noise", "sigma": 0.2}}, schema)  # a Blur key on Noise
    assert schema_errors({"step": {"type": "smear"}}, schema)
    assert schema_errors({"degrade": {"type": "fancy", "strength": 0.9}}, schema) == []
    assert schema_errors({"degrade": {"type": "plain", "strength": 0.9}}, schema)  # not an option of plain
    assert schema_errors({"degrade": None}, schema) == []


def test_the_options_class_is_the_schemas_root():
    root = recipe_schema()
    assert set(root["properties"]) == {f for f in Options.__dataclass_fields__ if f != "source"}
    assert root["required"] == ["name", "task"] and root["additionalProperties"] is False
