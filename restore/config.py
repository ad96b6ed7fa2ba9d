"""Typed option schema: YAML files -> frozen dataclasses, with ``--set a.b=value`` overrides.

Why dataclasses (stdlib) and not pydantic or OmegaConf: we need errors that name the file, the key path and the
bad value, "did you mean" for unknown keys, and option blocks checked against registered builders' signatures;
a ~200-line converter over ``typing`` hints does exactly that with no extra dependency and no interpolation
surprises. YAML is read with ``yaml.safe_load`` semantics (plus a duplicate-key check); nothing is eval'd.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

import yaml

from restore.registry import CRITICS, DATASETS, GENERATORS, NORMS, OptionValueError, Registry, did_you_mean


class ConfigError(ValueError):
    """An option problem, phrased for people: ``<file>: <key.path> <what is wrong>``."""

    def __init__(self, message: str, where: str = "", reason: str = ""):
        super().__init__(message)
        self.where = where
        self.reason = reason or message


# ----------------------------------------------------------------------------------------------- YAML reading
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: merged keys may be overridden explicitly
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise ConfigError(f"{mark.name}:{mark.line + 1}: duplicate key '{key}'")
        seen[key] = True
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read one option file into a plain dict; syntax errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"options file not found: {path}")
    try:
        with path.open(encoding="utf-8") as f:
            loader = _UniqueKeyLoader(f)
            loader.name = str(path)
            try:
                data = loader.get_single_data()
            finally:
                loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(err, 'problem', None) or err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


# ----------------------------------------------------------------------------------------------- overrides
def parse_override(text: str) -> tuple[list[str], Any]:
    """``"critic.norm.ratio=0.5"`` -> (["critic", "norm", "ratio"], 0.5). The value is read as YAML (safely)."""
    key, sep, raw = text.partition("=")
    keys = key.strip().split(".")
    if not sep or not all(k.strip() for k in keys):
        raise ConfigError(f"--set expects key.path=value, got '{text}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return [k.strip() for k in keys], value


def apply_override(data: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set ``data[k0][k1]...[kn] = value`` in place, creating intermediate mappings."""
    node = data
    for i, k in enumerate(keys[:-1]):
        child = node.get(k)
        if child is None:
            child = node[k] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {'.'.join(keys)}: '{'.'.join(keys[: i + 1])}' is a value, not a block")
        node = child
    node[keys[-1]] = value


# ----------------------------------------------------------------------------------------------- conversion
@dataclass
class _Ctx:
    """Where a value came from, for messages."""

    source: str
    overrides: tuple[str, ...] = ()

    def origin(self, where: str) -> str:
        for o in self.overrides:
            if where == o or where.startswith((o + ".", o + "[")) or o.startswith(where + "."):
                return f"--set {o}"
        return self.source

    def error(self, where: str, message: str) -> ConfigError:
        text = f"{self.origin(where)}: {where} {message}" if where else f"{self.source}: {message}"
        return ConfigError(text, where=where, reason=message)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _as_number(value: Any, kind: type, where: str, ctx: _Ctx) -> Any:
    if isinstance(value, bool):
        raise ctx.error(where, f"must be a number, got {value}")
    if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string: accept numeric strings
        try:
            value = float(value)
        except ValueError:
            raise ctx.error(where, f"must be a number, got {_show(value)}") from None
    if not isinstance(value, (int, float)):
        raise ctx.error(where, f"must be a number, got {type(value).__name__} {_show(value)}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ctx.error(where, f"must be an integer, got {value}")
        return int(value)
    if not math.isfinite(float(value)):
        raise ctx.error(where, f"must be finite, got {value}")
    return float(value)


def coerce(value: Any, hint: Any, where: str, ctx: _Ctx) -> Any:
    """Check ``value`` against a type hint and return it converted (ints for floats, tuples, dataclasses...)."""
    if hint is Any or hint is inspect.Parameter.empty:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and issubclass(hint, Spec):
        return hint.parse(value, where, ctx)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where, ctx)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(_show(a) for a in args)
            hint_txt = did_you_mean(str(value), [str(a) for a in args])
            raise ctx.error(where, f"must be one of {choices}, got {_show(value)}{hint_txt}")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own error is the right one
            return coerce(value, options[0], where, ctx)
        errors: list[ConfigError] = []
        for option in options:
            try:
                return coerce(value, option, where, ctx)
            except ConfigError as err:
                errors.append(err)
        nested = [e for e in errors if e.where != where]
        if nested:  # the value had the right shape for one option but a key inside it was wrong
            raise nested[0]
        raise ctx.error(where, " or ".join(dict.fromkeys(e.reason for e in errors)))
    if hint is type(None):
        if value is not None:
            raise ctx.error(where, f"must be empty (null), got {_show(value)}")
        return None
    if hint is bool:
        if not isinstance(value, bool):
            raise ctx.error(where, f"must be true or false, got {_show(value)}")
        return value
    if hint in (int, float):
        return _as_number(value, hint, where, ctx)
    if hint is str:
        if not isinstance(value, str):
            raise ctx.error(where, f"must be a string, got {_show(value)}")
        return value
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ctx.error(where, f"must be a list, got {_show(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ctx.error(where, f"must be a list of {len(args)} items, got {len(value)}: {list(value)}")
            return tuple(coerce(v, a, f"{where}[{i}]", ctx) for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        items = [coerce(v, item, f"{where}[{i}]", ctx) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or hint is tuple else items
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise ctx.error(where, f"must be a block of keys, got {_show(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): coerce(v, vt, _join(where, str(k)), ctx) for k, v in value.items()}
    if isinstance(hint, type):
        if not isinstance(value, hint):
            raise ctx.error(where, f"must be {hint.__name__}, got {_show(value)}")
        return value
    return value


def _hints(obj: Any) -> dict[str, Any]:
    target = obj.__init__ if isinstance(obj, type) and not dataclasses.is_dataclass(obj) else obj
    try:
        return typing.get_type_hints(target)
    except Exception:  # builder with unresolvable annotations: fall back to no type checks
        return {}


def option_hints(obj: Any) -> dict[str, Any]:
    """The type hints the validator checks a dataclass's fields or a builder's keyword arguments against."""
    return _hints(obj)


def from_dict(cls: type, data: Any, where: str, ctx: _Ctx) -> Any:
    """Build dataclass ``cls`` from a mapping: unknown keys are errors, missing required keys are errors."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ctx.error(where, f"must be a block of keys, got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = _hints(cls)
    for key in data:
        if key not in fields:
            raise ctx.error(_join(where, str(key)), f"is not a known option{did_you_mean(str(key), list(fields))}; "
                                                    f"valid: {', '.join(fields) or '(none)'}")
    values = {}
    for name, f in fields.items():
        sub = _join(where, name)
        if name in data:
            values[name] = coerce(data[name], hints.get(name, Any), sub, ctx)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ctx.error(sub, "is required")
    try:
        obj = cls(**values)
    except OptionValueError as err:
        raise ctx.error(_join(where, err.key), err.reason) from None
    return obj


def check_kwargs(builder: Any, kwargs: Mapping[str, Any], where: str, ctx: _Ctx, what: str) -> dict[str, Any]:
    """Check option-block kwargs against a builder's signature and type hints."""
    sig = inspect.signature(builder)
    params = {
        p.name: p
        for p in sig.parameters.values()
        if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    hints = _hints(builder)
    out = {}
    for key, value in kwargs.items():
        if key not in params:
            raise ctx.error(_join(where, key), f"is not an option of {what}{did_you_mean(key, list(params))}; "
                                               f"valid: {', '.join(params) or '(none)'}")
        out[key] = coerce(value, hints.get(key, params[key].annotation), _join(where, key), ctx)
    return out


# ----------------------------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class Spec:
    """A swappable part: ``{<key>: name, **kwargs}`` resolved by a registry, remembering where it came from."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    where: str = ""
    source: str = ""

    registry: ClassVar[Registry]
    key: ClassVar[str] = "type"
    reserved: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def parse(cls, value: Any, where: str, ctx: _Ctx) -> Spec:
        if isinstance(value, str):  # shorthand: `norm: sn`
            value = {cls.key: value}
        if not isinstance(value, Mapping):
            raise ctx.error(where, f"must be a block like {{{cls.key}: name, ...}}, got {_show(value)}")
        if cls.key not in value:
            raise ctx.error(_join(where, cls.key), f"is required (one of: {', '.join(cls.registry.names())})")
        name = value[cls.key]
        if name not in cls.registry:
            raise ctx.error(_join(where, cls.key), f"unknown {cls.registry.kind} {_show(name)}"
                                                   f"{did_you_mean(str(name), cls.registry.names())}; "
                                                   f"valid: {', '.join(cls.registry.names())}")
        raw = {k: v for k, v in value.items() if k != cls.key and k not in cls.reserved}
        what = f"{cls.registry.kind} '{name}'"
        kwargs = check_kwargs(cls.registry.get(name), raw, where, ctx, what)
        spec = cls(name=name, kwargs=kwargs, where=where, source=ctx.origin(where),
                   **cls._parse_reserved(value, where, ctx))
        if cls.registry.eager:
            spec.build()  # cheap builders: surface value errors now, with file and key
        return spec

    @classmethod
    def _parse_reserved(cls, value: Mapping[str, Any], where: str, ctx: _Ctx) -> dict[str, Any]:
        return {}

    def build(self, **extra: Any) -> Any:
        """Call the registered builder with the spec's kwargs (``extra`` overrides them)."""
        kwargs = {**self.kwargs, **extra}
        try:
            return self.registry.build(self.name, **kwargs)
        except OptionValueError as err:
            prefix = f"{self.source}: " if self.source else ""
            raise ConfigError(f"{prefix}{_join(self.where, err.key)} {err.reason}") from None

    def to_dict(self) -> dict[str, Any]:
        return {self.key: self.name, **{k: _plain(v) for k, v in self.kwargs.items()}}


@dataclass(frozen=True)
class NormSpec(Spec):
    """``critic.norm``: one of the registered critic normalizations (restore.norms)."""

    registry: ClassVar[Registry] = NORMS


@dataclass(frozen=True)
class ArchSpec(Spec):
    """A generator network: ``{arch: name, ...constructor kwargs}``."""

    registry: ClassVar[Registry] = GENERATORS
    key: ClassVar[str] = "arch"


@dataclass(frozen=True)
class CriticSpec(ArchSpec):
    """A critic network plus its normalization block ``norm`` (default: none)."""

    registry: ClassVar[Registry] = CRITICS
    norm: NormSpec = NormSpec(name="none")
    reserved: ClassVar[tuple[str, ...]] = ("norm",)

    @classmethod
    def _parse_reserved(cls, value: Mapping[str, Any], where: str, ctx: _Ctx) -> dict[str, Any]:
        if "norm" not in value:
            return {}
        return {"norm": NormSpec.parse(value["norm"], _join(where, "norm"), ctx)}

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "norm": self.norm.to_dict()}


@dataclass(frozen=True)
class DatasetSpec(Spec):
    """A dataset: ``{type: name, ...constructor kwargs}`` from restore.data."""

    registry: ClassVar[Registry] = DATASETS


# ----------------------------------------------------------------------------------------------- durations
_DURATION = re.compile(r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?")


def parse_duration(value: Any) -> float:
    """``90s``, ``8m``, ``1h30m``, ``2h`` or a plain number of seconds -> seconds (> 0).

    Used by ``train.time_limit`` and ``restore train --time-limit``; the message names the bad value (the caller
    adds the key or flag)."""
    expected = "must be a duration like 90s, 8m, 1h30m, 2h or a number of seconds"
    if isinstance(value, bool):
        raise ValueError(f"{expected}, got {value}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            m = _DURATION.fullmatch(text)
            if not text or m is None or not any(m.groupdict().values()):
                raise ValueError(f"{expected}, got {value!r}") from None
            seconds = sum(float(m[k] or 0) * f for k, f in (("h", 3600), ("m", 60), ("s", 1)))
    else:
        raise ValueError(f"{expected}, got {type(value).__name__} {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a positive duration, got {value!r}")
    return seconds


# ----------------------------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class PathOptions:
    root: str = "runs"


@dataclass(frozen=True)
class DataOptions:
    """Training and validation sets, and DataLoader workers per process."""

    train: DatasetSpec | None = None
    val: DatasetSpec | None = None
    num_workers: int = 2

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise OptionValueError("num_workers", f"must be >= 0, got {self.num_workers}")


@dataclass(frozen=True)
class TrainOptions:
    """Optimisation. Defaults follow the SAN paper Sec. 4.3 (Adam betas (0.5, 0.9), lr 2e-4, batch 32)."""

    steps: int = 400_000
    batch_size: int = 32
    lr_g: float = 2.0e-4
    lr_d: float = 2.0e-4
    betas: tuple[float, float] = (0.5, 0.9)
    critic_steps: int = 1
    ema: float | None = None
    lr_milestones: tuple[float, ...] = (0.125, 0.25, 0.5, 0.75)  # fractions of steps (SAN paper Sec. 4.3)
    lr_gamma: float = 0.5
    # "multistep": multiply by lr_gamma at each milestone; "linear": constant, then a straight line to exactly 0 at
    # the last step, starting at fraction lr_decay_start of the run (StarGAN/SAN: decay over the last third)
    lr_schedule: Literal["multistep", "linear"] = "multistep"
    lr_decay_start: float = 0.5
    # Speed options (docs/speed.md). amp: autocast dtype; bf16 runs on CUDA and the CPU, fp16 (with a GradScaler)
    # on CUDA only. channels_last: NHWC activations and weights; "auto" = on for CUDA, off for the CPU.
    amp: Literal["none", "bf16", "fp16"] = "none"
    channels_last: bool | Literal["auto"] = "auto"
    # torch.compile the generator, the critic or both ("all"); some critic norms are refused (docs/speed.md)
    compile: Literal["none", "generator", "critic", "all"] = "none"
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = "default"
    # TF32 matmuls and convolutions on CUDA (null: torch's defaults). No effect on the CPU, which has no TF32.
    tf32: bool | None = None
    # Adam implementation. auto: fused on CUDA, torch's single-tensor default on the CPU (keeps CPU numerics)
    optimizer_impl: Literal["auto", "fused", "foreach", "single"] = "auto"
    # stop (with checkpoint and exported weights) before this much time has passed: 90s, 8m, 1h30m or seconds
    time_limit: float | str | None = None
    log_every: int = 50
    pretrained_generator: str | None = None  # weights (.safetensors or checkpoint) to initialise the generator

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise OptionValueError("steps", f"must be >= 0, got {self.steps}")
        if self.batch_size < 1:
            raise OptionValueError("batch_size", f"must be >= 1, got {self.batch_size}")
        for key in ("lr_g", "lr_d"):
            if getattr(self, key) <= 0:
                raise OptionValueError(key, f"must be > 0, got {getattr(self, key)}")
        if not all(0 <= b < 1 for b in self.betas):
            raise OptionValueError("betas", f"must both be in [0, 1), got {list(self.betas)}")
        if self.critic_steps < 1:
            raise OptionValueError("critic_steps", f"must be >= 1, got {self.critic_steps}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise OptionValueError("ema", f"must be in (0, 1) or null, got {self.ema}")
        if not all(0 < m < 1 for m in self.lr_milestones):
            raise OptionValueError("lr_milestones", f"must be fractions of the run in (0, 1), got "
                                                    f"{list(self.lr_milestones)}")
        if not 0 <= self.lr_decay_start < 1:
            raise OptionValueError("lr_decay_start", f"must be a fraction of the run in [0, 1), got "
                                                     f"{self.lr_decay_start}")
        if not 0 < self.lr_gamma <= 1:
            raise OptionValueError("lr_gamma", f"must be in (0, 1], got {self.lr_gamma}")
        if self.log_every < 1:
            raise OptionValueError("log_every", f"must be >= 1, got {self.log_every}")
        if self.time_limit is not None:
            try:
                seconds = parse_duration(self.time_limit)
            except ValueError as err:
                raise OptionValueError("time_limit", str(err)) from None
            object.__setattr__(self, "time_limit", seconds)  # stored (and written back) in seconds


@dataclass(frozen=True)
class ValOptions:
    every: int = 5000
    max_images: int | None = None  # validate on the first N images only (None: all)
    samples: int = 4  # images in the sample grid written to TensorBoard and samples/

    def __post_init__(self) -> None:
        if self.every < 1:
            raise OptionValueError("every", f"must be >= 1, got {self.every}")


@dataclass(frozen=True)
class CheckpointOptions:
    every: int = 5000
    keep: int = 3

    def __post_init__(self) -> None:
        if self.every < 1:
            raise OptionValueError("every", f"must be >= 1, got {self.every}")
        if self.keep < 1:
            raise OptionValueError("keep", f"must be >= 1, got {self.keep}")


@dataclass(frozen=True)
class Options:
    """A whole recipe (DESIGN.md, "Option files: the shared skeleton").

    ``losses`` differ by task: :func:`parse_options` checks that block against the task's dataclass
    (:func:`loss_options`), and the task reads it with :func:`parse_block`; it is kept as written, so that stored
    recipes and resume comparisons see the user's keys, not filled-in defaults.
    """

    name: str
    task: Literal["sr", "spade", "stargan", "attributes"]
    seed: int = 0
    path: PathOptions = PathOptions()
    data: DataOptions = DataOptions()
    generator: ArchSpec | None = None
    critic: CriticSpec | None = None
    losses: dict[str, Any] = field(default_factory=dict)
    train: TrainOptions = TrainOptions()
    val: ValOptions = ValOptions()
    checkpoint: CheckpointOptions = CheckpointOptions()
    source: str = field(default="", compare=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Spec):
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != "source"}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_dict(options: Any) -> dict[str, Any]:
    """Plain, YAML-safe dict of resolved options (what checkpoints store and `restore check` prints)."""
    return _plain(options)


def parse_block(schema: type, data: Any, where: str, source: str) -> Any:
    """Validate one option block (e.g. a task's ``losses``) with the same messages as the whole file."""
    return from_dict(schema, data, where, _Ctx(source=source))


def import_registries() -> None:
    """Registries fill when their packages are imported; config needs them all to validate."""
    import restore.archs  # noqa: F401
    import restore.data  # noqa: F401
    import restore.losses  # noqa: F401
    import restore.norms  # noqa: F401


_import_registries = import_registries  # the older private name


def loss_options(task: str) -> type:
    """The dataclass a task's ``losses:`` block is validated into (imported lazily: it imports torch)."""
    from restore.losses.options import TASK_LOSSES

    return TASK_LOSSES[task]


def parse_options(data: Mapping[str, Any], source: str = "<options>", overrides: Sequence[str] = (),
                  schema: type = Options) -> Any:
    """Validate a plain dict (after applying ``--set`` overrides) into ``schema``.

    An override that switches the type of a ``{type: ...}`` block drops the keys only the old type accepted; one
    ``note:`` line on stderr names them (see :func:`apply_overrides`)."""
    import_registries()
    data = _deep_copy(dict(data))
    paths, notes = apply_overrides(data, overrides, schema)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    ctx = _Ctx(source=source, overrides=tuple(paths))
    if "source" in data:
        raise ctx.error("source", "is reserved (it records where the options were read from)")
    opts = from_dict(schema, data, "", ctx)
    if isinstance(opts, Options):  # validated here so that `restore check` catches loss typos, not the task
        from_dict(loss_options(opts.task), opts.losses, "losses", ctx)
    if dataclasses.is_dataclass(opts) and any(f.name == "source" for f in dataclasses.fields(opts)):
        opts = dataclasses.replace(opts, source=source)
    return opts


# ----------------------------------------------------------------------------------------------- type switching
def apply_overrides(data: dict[str, Any], overrides: Sequence[str], schema: type = Options
                    ) -> tuple[list[str], list[str]]:
    """Apply ``--set`` overrides to ``data`` in place; returns (the key paths set, notes for the user).

    ``--set critic.norm.type=sn`` on a block written for ``san`` drops the keys that ``san`` accepts and ``sn``
    does not (``ratio``, ``gain``...), so that switching the method is one override. This holds for every block
    told apart by its ``type`` (or ``arch``) key: norms, architectures, data sets, and typed sub-blocks. Keys set
    by another override of the same command are never dropped: if they do not fit the new type, validation says
    so. Keys that neither type accepts stay too, so a typo is still an error."""
    parsed = [parse_override(text) for text in overrides]
    paths = [".".join(keys) for keys, _ in parsed]
    notes = []
    for text, (keys, value) in zip(overrides, parsed, strict=True):
        dropped = _switch_type(data, keys, value, schema, [p for p in paths if p != ".".join(keys)])
        apply_override(data, keys, value)
        if dropped:
            old, names = dropped
            notes.append(f"--set {text.strip()} dropped {', '.join(names)} (options of {old!r} only)")
    return paths, notes


def _switch_type(data: dict[str, Any], keys: list[str], value: Any, schema: type, explicit: list[str]
                 ) -> tuple[Any, list[str]] | None:
    """Before ``keys = value`` is set: when it changes a typed block's type, remove the keys only the old type
    accepted (unless ``explicit``) and return (old type, dropped key paths)."""
    if len(keys) < 2:
        return None
    block_keys, key = keys[:-1], keys[-1]
    kind = block_kind(hint_at(schema, data, block_keys))
    if kind is None or kind[0] != key:
        return None
    parent = _node(data, block_keys[:-1])
    node = parent.get(block_keys[-1]) if isinstance(parent, dict) else None
    if isinstance(node, str) and kind[2]:  # shorthand `norm: san`: make it a block the override can go into
        node = parent[block_keys[-1]] = {key: node}
    if not isinstance(node, dict) or key not in node or _same(node[key], value):
        return None
    old = node[key]
    old_keys, new_keys = kind[1](old), kind[1](value)
    if old_keys is None or new_keys is None:  # an unknown type: validation names it
        return None
    where = ".".join(block_keys)

    def given(path: str) -> bool:
        return any(p == path or p.startswith(path + ".") or path.startswith(p + ".") for p in explicit)

    drop = [k for k in node if k in old_keys and k not in new_keys and not given(f"{where}.{k}")]
    for k in drop:
        del node[k]
    return (old, [f"{where}.{k}" for k in drop]) if drop else None


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _node(data: Any, keys: Sequence[str]) -> Any:
    for k in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(k)
    return data


def union_members(hint: Any) -> list[Any]:
    """``X | Y | None`` -> [X, Y]; any other hint -> [hint]."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        return [a for a in typing.get_args(hint) if a is not type(None)]
    return [hint]


def discriminated(members: Sequence[Any]) -> dict[Any, type] | None:
    """{type value: dataclass} when ``members`` are dataclasses told apart by a ``type: Literal[...]`` field.

    One dataclass may also serve several types: a ``ClassVar`` ``type_keys`` (``{"bicubic": ()}``) then names the
    keys besides ``type`` that a type accepts (types it does not list accept every field); type switching and
    the JSON schema read it."""
    out: dict[Any, type] = {}
    for m in members:
        if not (isinstance(m, type) and dataclasses.is_dataclass(m)) or issubclass(m, Spec):
            return None
        hint = _hints(m).get("type")
        if typing.get_origin(hint) is not Literal:
            return None
        out.update({v: m for v in typing.get_args(hint)})
    return out or None


def block_kind(hint: Any) -> tuple[str, Any, bool] | None:
    """(discriminator key, type name -> the keys a block of that type accepts or None, shorthand allowed) for a
    typed block's hint (a :class:`Spec` or a discriminated union of dataclasses); None for any other hint."""
    if hint is None:
        return None
    members = union_members(hint)
    for m in members:
        if isinstance(m, type) and issubclass(m, Spec):
            return m.key, functools.partial(_spec_keys, m), True
    choices = discriminated(members)
    if choices:
        return "type", functools.partial(_union_keys, choices), False
    return None


def _spec_keys(spec: type[Spec], name: Any) -> set[str] | None:
    if not isinstance(name, str) or name not in spec.registry:
        return None
    return {spec.key, *spec.reserved, *spec.registry.parameters(name)}


def _union_keys(choices: dict[Any, type], name: Any) -> set[str] | None:
    cls = choices.get(name) if isinstance(name, (str, int, float, bool)) else None
    return type_fields(cls, name) if cls is not None else None


def type_fields(cls: type, name: Any) -> set[str]:
    """The keys a block of dataclass ``cls`` accepts when its ``type`` is ``name`` (see :func:`discriminated`)."""
    only = getattr(cls, "type_keys", {}).get(name)
    return {f.name for f in dataclasses.fields(cls) if f.init and (only is None or f.name in ("type", *only))}


def hint_at(schema: type, data: Mapping[str, Any], keys: Sequence[str]) -> Any:
    """The type hint of the block at ``keys`` of a recipe (``data`` picks the registered type of each block on the
    way, and the task picks the ``losses`` schema); None when the path is not an option."""
    hint: Any = schema
    node: Any = data
    for key in keys:
        hint = _child_hint(hint, node, key, data)
        if hint is None:
            return None
        node = node.get(key) if isinstance(node, Mapping) else None
    return hint


def _child_hint(hint: Any, node: Any, key: str, root: Mapping[str, Any]) -> Any:
    members = union_members(hint)
    choices = discriminated(members)
    if choices is not None:
        name = node.get("type") if isinstance(node, Mapping) else None
        members = [choices[name]] if isinstance(name, (str, int, float, bool)) and name in choices else []
    for m in members:
        if isinstance(m, type) and issubclass(m, Spec):
            if key in m.reserved:
                return _hints(m).get(key)
            name = node.get(m.key) if isinstance(node, Mapping) else node
            if not isinstance(name, str) or name not in m.registry:
                return None
            params = m.registry.parameters(name)
            if key not in params:
                return None
            return _hints(m.registry.get(name)).get(key, params[key].annotation)
        if isinstance(m, type) and dataclasses.is_dataclass(m):
            if m is Options and key == "losses":
                task = root.get("task")
                return loss_options(task) if isinstance(task, str) and task in typing.get_args(
                    _hints(Options)["task"]) else None
            fields = {f.name for f in dataclasses.fields(m) if f.init}
            return _hints(m).get(key) if key in fields else None
    return None


def load_options(path: str | Path, overrides: Sequence[str] = (), schema: type = Options) -> Any:
    """Read a YAML recipe, apply ``--set`` overrides, validate. Errors are :class:`ConfigError`."""
    return parse_options(read_yaml(path), source=str(path), overrides=overrides, schema=schema)


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
