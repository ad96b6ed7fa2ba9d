"""JSON Schema of the recipes, generated from the typed options, so that editors complete keys and flag typos.

It is derived from the same sources the validator (:mod:`restore.config`) reads: the option dataclasses and their
type hints, each registry's builders' keyword arguments and hints (norms, generators, critics, data sets), and the
``losses`` dataclass of each task (:mod:`restore.losses.options`). Nothing in it is written by hand, so
``restore schema -o options/schema.json`` after a code change brings it up to date, and a test checks that the
committed file equals a fresh generation. Every ``{type: ...}`` (or ``{arch: ...}``) block is an ``if``/``then``
on its discriminator, so an editor offers the keys of the chosen type only.

The schema checks keys and value types; value ranges (``ratio`` in (0, 1], ``steps >= 0``) and file paths are
checked by ``restore check``, which stays the authority. Draft-07, the draft editors support best.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

from restore.config import (
    Options,
    Spec,
    discriminated,
    import_registries,
    loss_options,
    option_hints,
    to_dict,
    type_fields,
    union_members,
)
from restore.files import atomic_write_text

DRAFT = "http://json-schema.org/draft-07/schema#"
# numbers may also be strings: PyYAML (YAML 1.1) reads 1e-4 as a string, which the validator accepts as a number
NUMBER_TEXT = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


def _first_line(obj: Any) -> str:
    """The object's own docstring's first paragraph, joined into one line (not an inherited or generated one)."""
    doc = obj.__doc__ if isinstance(obj, type) else inspect.getdoc(obj)
    if not doc or (isinstance(obj, type) and doc.startswith(f"{obj.__name__}(")):  # dataclass's generated doc
        return ""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def _json_default(value: Any) -> Any:
    """``value`` as JSON, or ``inspect.Parameter.empty`` when it has no faithful JSON form."""
    plain = to_dict(value) if dataclasses.is_dataclass(value) or isinstance(value, Spec) else value
    if isinstance(plain, tuple):
        plain = list(plain)
    try:
        text = json.dumps(plain, allow_nan=False)
    except (TypeError, ValueError):
        return inspect.Parameter.empty
    return json.loads(text)


class _Builder:
    """Turns type hints into schema fragments, collecting named blocks under ``definitions``."""

    def __init__(self) -> None:
        self.definitions: dict[str, Any] = {}

    # -- named blocks
    def _ref(self, name: str, make: Any) -> dict[str, Any]:
        if name not in self.definitions:
            self.definitions[name] = {}  # placeholder: a block may refer to itself
            self.definitions[name] = make()
        return {"$ref": f"#/definitions/{name}"}

    def dataclass(self, cls: type, skip: Sequence[str] = ()) -> dict[str, Any]:
        """An object with the dataclass's init fields; unknown keys are errors, fields without default required."""
        hints = option_hints(cls)
        props: dict[str, Any] = {}
        required = []
        for f in dataclasses.fields(cls):
            if not f.init or f.name in skip:
                continue
            registry = f.metadata.get("registry")
            prop = {"enum": registry.names()} if registry is not None else self.hint(hints.get(f.name, Any))
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = inspect.Parameter.empty
                required.append(f.name)
            props[f.name] = self._with_default(prop, default)
        out: dict[str, Any] = {"type": "object"}
        if _first_line(cls):
            out["description"] = _first_line(cls)
        out.update(properties=props, additionalProperties=False)
        if required:
            out["required"] = required
        return out

    def spec(self, cls: type[Spec]) -> dict[str, Any]:
        """``{<key>: name, ...}`` or the shorthand ``name``: one if/then branch per registered name."""
        registry, key = cls.registry, cls.key
        names = registry.names()
        branches = []
        hints = option_hints(cls)
        for name in names:
            builder = registry.get(name)
            props: dict[str, Any] = {key: {"const": name}}
            builder_hints = option_hints(builder)
            for param, p in registry.parameters(name).items():
                props[param] = self._with_default(self.hint(builder_hints.get(param, p.annotation)), p.default)
            for reserved in cls.reserved:
                props[reserved] = self.hint(hints.get(reserved, Any))
            then: dict[str, Any] = {"properties": props, "additionalProperties": False}
            if _first_line(builder):
                then["description"] = f"{name}: {_first_line(builder)}"
            branches.append({"if": {"properties": {key: {"const": name}}, "required": [key]}, "then": then})
        block = {"type": "object", "required": [key],
                 "properties": {key: {"enum": names, "description": f"the {registry.kind}"}},
                 "allOf": branches}
        # a string is the shorthand `name` of {<key>: name}; if/then/else (not oneOf) keeps errors precise
        out: dict[str, Any] = {"if": {"type": "string"}, "then": {"enum": names}, "else": block}
        if _first_line(cls):
            out["description"] = _first_line(cls)
        return out

    def union(self, choices: dict[Any, type]) -> dict[str, Any]:
        """Dataclasses told apart by their ``type`` field: one if/then branch per value."""
        branches = []
        for value, cls in choices.items():
            body = self.dataclass(cls)
            keep = type_fields(cls, value)
            body["properties"] = {k: v for k, v in body["properties"].items() if k in keep}
            body["properties"]["type"] = {"const": value}
            if "required" in body:
                body["required"] = [k for k in body["required"] if k in keep]
            branches.append({"if": {"properties": {"type": {"const": value}}, "required": ["type"]},
                             "then": body})
        return {"type": "object", "required": ["type"], "properties": {"type": {"enum": list(choices)}},
                "allOf": branches}

    # -- hints
    def hint(self, hint: Any) -> dict[str, Any]:
        """The schema of values the validator's :func:`restore.config.coerce` accepts for ``hint``."""
        if hint is Any or hint is inspect.Parameter.empty:
            return {}
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if isinstance(hint, type) and issubclass(hint, Spec):
            return self._ref(f"{hint.__name__}", lambda: self.spec(hint))
        if dataclasses.is_dataclass(hint):
            choices = discriminated([hint])
            if choices is not None and getattr(hint, "type_keys", None):  # one class, keys that depend on type
                return self._ref(hint.__name__, lambda: self.union(choices))
            return self._ref(hint.__name__, lambda: self.dataclass(hint))
        if origin is Literal:
            return {"enum": list(args)}
        if origin in (Union, types.UnionType):
            members = union_members(hint)
            choices = discriminated(members) if len(members) > 1 else None
            if choices is not None:
                body = self._ref("_or_".join(c.__name__ for c in dict.fromkeys(choices.values())),
                                 lambda: self.union(choices))
                parts = [body]
            else:
                parts = [self.hint(m) for m in members]
            body = parts[0] if len(parts) == 1 else {"anyOf": parts}
            # null or the block: if/else rather than anyOf, so that a block's error is reported as its own
            return {"if": {"type": "null"}, "else": body} if type(None) in args else body
        if hint is type(None):
            return {"type": "null"}
        if hint is bool:
            return {"type": "boolean"}
        if hint in (int, float):
            return {"type": ["integer" if hint is int else "number", "string"], "pattern": NUMBER_TEXT}
        if hint is str:
            return {"type": "string"}
        if origin in (list, tuple, Sequence) or hint in (list, tuple):
            if origin is tuple and args and args[-1] is not Ellipsis:
                return {"type": "array", "items": [self.hint(a) for a in args], "minItems": len(args),
                        "maxItems": len(args)}
            return {"type": "array", "items": self.hint(args[0]) if args else {}}
        if origin in (dict, Mapping) or hint is dict:
            return {"type": "object", "additionalProperties": self.hint(args[1]) if len(args) == 2 else {}}
        return {}

    @staticmethod
    def _with_default(prop: dict[str, Any], default: Any) -> dict[str, Any]:
        value = _json_default(default)
        if value is inspect.Parameter.empty or "$ref" in prop:  # draft-07 ignores keys beside $ref
            return prop
        if isinstance(value, float) and not math.isfinite(value):
            return prop
        return {**prop, "default": value}


def recipe_schema() -> dict[str, Any]:
    """The JSON Schema (a dict) of a whole recipe: :class:`restore.config.Options` plus each task's losses."""
    import_registries()
    b = _Builder()
    root = b.dataclass(Options, skip=("source",))  # `source` is reserved: parse_options refuses it
    tasks = list(typing.get_args(option_hints(Options)["task"]))
    root["properties"]["losses"] = {"type": "object", "description": "the loss terms; their keys depend on task"}
    root["allOf"] = [{"if": {"properties": {"task": {"const": task}}, "required": ["task"]},
                      "then": {"properties": {"losses": b.hint(loss_options(task))}}} for task in tasks]
    root["description"] = ("A restore training recipe (options/train/**/*.yml). Generated from the code by "
                           "`restore schema -o options/schema.json`; do not edit by hand.")
    return {"$schema": DRAFT, "title": "restore recipe", **root, "definitions": dict(sorted(b.definitions.items()))}


def schema_text() -> str:
    """The schema as the text ``restore schema`` writes (stable key order, so regeneration is diff-friendly)."""
    return json.dumps(recipe_schema(), indent=2, ensure_ascii=False) + "\n"


def write_schema(path: str | Path) -> Path:
    """Write :func:`schema_text` to ``path`` atomically."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"-o {path} is a folder; give a file name, e.g. {path / 'schema.json'}")
    if not path.parent.is_dir():
        raise ValueError(f"-o {path}: the folder {path.parent} does not exist")
    atomic_write_text(path, schema_text())
    return path
