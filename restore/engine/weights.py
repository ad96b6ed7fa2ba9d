"""Generator weights in and out: self-describing safetensors files and restore checkpoints.

A published ``.safetensors`` file carries its architecture in the metadata (``{"arch", "kwargs", "task"}`` as
JSON), so :func:`load_generator` needs nothing else. Training checkpoints (``.pt``) describe themselves the same
way; their EMA weights are preferred when present. Nothing is unpickled beyond ``torch.load(weights_only=True)``.

Storage dtype: training exports are fp32; published files (``restore publish``, :func:`convert_weights`) store
their floating-point tensors as fp16, which halves them, and record ``"dtype": "fp16"`` in the metadata. Whatever a
file stores, :func:`read_generator` (and so :func:`load_generator`, :func:`load_state_into`, the CLI and the app)
returns fp32 floating-point tensors; integer and bool buffers are kept as they are. Storing fp16 is refused when a
tensor would overflow fp16 or lose too much to fp16's subnormal range (:func:`check_fp16`).

A weights file is untrusted data. Reading one checks, before any tensor is read or any network is built: that it
is a well-formed safetensors file (or a checkpoint dict with the expected entries, whose tensors own the values
they claim); that its description is a JSON object whose fields have the types restore reads
(:func:`check_description`); that the architecture is known and the kwargs fit its signature; and that the network
those kwargs make, built on the meta device (no memory) and stopped as soon as it outgrows the file, matches the
file's tensors shape by shape and makes images of at most :data:`MAX_SIDE` pixels a side. Every refusal is one
ValueError naming the file (and the field or kwarg), so ``restore infer`` prints one ``error:`` line and exits 2.

Community files (ESRGAN, Real-ESRGAN, SwinIR, ... from other projects: ``.pth/.pt/.ckpt/.safetensors`` without
restore's metadata) are the fallback: they are read the same safe way, and the state dict goes to
:mod:`restore.engine.community` (spandrel), built under the same size probe. :func:`load_generator` returns them
with a description shaped like restore's; :func:`load_state_into` maps ESRGAN-family files onto ``rrdbnet``.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from restore.engine import checkpoint as ckpt
from restore.files import atomic_output

META_KEY = "restore"


DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
FP16_MAX = 65504.0  # largest finite fp16
FP16_TINY = 2.0 ** -14  # smallest normal fp16; below it values keep fewer bits, below 2**-25 they become 0
FP16_MAX_REL_ERROR = 1e-2  # relative L2 error of a tensor beyond which fp16 loses too much (normal values: ~3e-4)


def check_fp16(state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Raise ValueError (naming ``path`` and the tensor) when a floating-point tensor cannot be stored as fp16:
    a finite value beyond +-65504 (it would become inf), or a tensor that fp16 changes by more than 1 % of its own
    magnitude (relative L2 error), which happens when its values lie below fp16's normal range (2**-14, about
    6.1e-5) and become subnormal with few bits left, or 0 (e.g. a small learned scale). Rounding normal values costs
    about 3e-4, and a few tiny values next to larger ones (near-zero biases) add an absolute error below 3e-8."""
    for name, t in state.items():
        if not t.is_floating_point() or not t.numel():
            continue
        x = t.detach().float()
        finite = x[torch.isfinite(x)]
        if finite.numel() and float(finite.abs().max()) > FP16_MAX:
            raise ValueError(f"{path}: tensor '{name}' has |x| up to {float(finite.abs().max()):.4g}, beyond "
                             f"fp16's {FP16_MAX:.0f}: it cannot be stored as fp16 (store it as fp32: --dtype fp32)")
        norm = float(finite.norm())
        if norm == 0:
            continue
        rel = float((finite.half().float() - finite).norm()) / norm
        if rel > FP16_MAX_REL_ERROR:
            tiny = int(((finite != 0) & (finite.abs() < FP16_TINY)).sum())
            raise ValueError(f"{path}: tensor '{name}' would lose too much as fp16: {tiny} of its {finite.numel()} "
                             f"values are below fp16's normal range ({FP16_TINY:.3g}), a relative error of {rel:.2g} "
                             f"(> {FP16_MAX_REL_ERROR:g}) (store it as fp32: --dtype fp32)")


def _dtype(dtype: str) -> torch.dtype:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def save_state(state: dict[str, torch.Tensor], path: str | Path, desc: dict[str, Any], dtype: str = "fp32",
               metadata: dict[str, str] | None = None) -> Path:
    """Write a state dict + its description ``{"arch", "kwargs", "task", ...}`` to ``path`` (.safetensors),
    atomically, floating-point tensors as ``dtype`` ("fp32" or "fp16", recorded as the description's "dtype");
    integer and bool tensors as they are. ``metadata``: other safetensors metadata entries to keep."""
    from safetensors.torch import save_file

    target = _dtype(dtype)
    path = Path(path)
    if target == torch.float16:
        check_fp16(state, path)
    out = {k: (v.detach().to(target) if v.is_floating_point() else v.detach()).contiguous().cpu()
           for k, v in state.items()}
    meta = {**(metadata or {}), META_KEY: json.dumps({**desc, "dtype": dtype})}
    with atomic_output(path) as tmp:  # safetensors writes 0600; atomic_output gives the usual permissions
        save_file(out, str(tmp), metadata=meta)
    return path


def save_generator(module: nn.Module, path: str | Path, arch: str, kwargs: dict[str, Any], task: str,
                   extra: dict[str, Any] | None = None, dtype: str = "fp32") -> Path:
    """Write weights (floating-point tensors as ``dtype``: "fp32", the default for training exports, or "fp16",
    what ``restore publish`` stores) + architecture metadata to ``path`` (.safetensors), atomically."""
    return save_state(module.state_dict(), path, {"arch": arch, "kwargs": kwargs, "task": task, **(extra or {})},
                      dtype=dtype)


def convert_weights(src: str | Path, dst: str | Path | None = None, dtype: str = "fp16") -> Path:
    """Rewrite a .safetensors weights file with its floating-point tensors stored as ``dtype``, keeping all its
    metadata (``dst`` None: in place, atomically). Refused, leaving the file alone, when a tensor does not fit fp16."""
    from safetensors import SafetensorError, safe_open

    src = Path(src)
    if src.suffix != ".safetensors":
        raise ValueError(f"{src}: only .safetensors weights files can be converted")
    if not src.is_file():
        raise FileNotFoundError(f"model weights not found: {src}")
    try:
        with safe_open(str(src), framework="pt") as f:
            meta = dict(f.metadata() or {})
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise _unreadable(src, err) from None
    desc = _parse_description(src, meta)
    meta.pop(META_KEY)
    desc.pop("dtype", None)
    return save_state(state, dst if dst is not None else src, desc, dtype=dtype, metadata=meta)


def stored_dtype(state: dict[str, torch.Tensor]) -> str:
    """"fp16" when any floating-point tensor is stored as fp16, else "fp32" (what a file without a recorded dtype
    holds)."""
    return "fp16" if any(isinstance(v, torch.Tensor) and v.dtype == torch.float16 for v in state.values()) else "fp32"


# ------------------------------------------------------------------------------------------ validating a file
# A weights file is data from anywhere: everything below checks it before trusting it, and every refusal is one
# ValueError naming the file (``restore infer`` prints it as one ``error:`` line and exits 2).

MAX_SIDE = 8192
"""Largest image side (pixels) a weights file may ask for: StarGAN's ``image_size``, a SPADE generator's output
(``sample_shape()``). Larger values are refused before anything runs: they would make inference allocate
gigabytes per image."""

_SHOW = 120  # characters of a hostile value quoted in a message


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOW else text[:_SHOW] + "..."


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(low: int, high: int | None = None) -> Any:
    return lambda v: _is_int(v) and v >= low and (high is None or v <= high)


def _list_of(check: Any) -> Any:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _rgb(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 3 and all(_is_int(c) and 0 <= c <= 255 for c in v)


# the description fields restore reads: how to check one, and what to say when it is wrong
_FIELDS: dict[str, tuple[Any, str]] = {
    "arch": (lambda v: isinstance(v, str) and v != "", "a non-empty string (a generator architecture)"),
    "kwargs": (lambda v: isinstance(v, dict), "a JSON object of architecture options"),
    "task": (lambda v: isinstance(v, str), "a string (sr, spade, stargan, attributes)"),
    "dtype": (lambda v: v in DTYPES, f"one of {', '.join(DTYPES)}"),
    "label_set": (lambda v: isinstance(v, str), "a string (a label set name)"),
    "num_classes": (_int_in(1), "an integer >= 1"),
    "num_labels": (lambda v: v is None or _int_in(1)(v), "an integer >= 1 or null"),
    "dont_care": (lambda v: v is None or _int_in(0)(v), "an integer >= 0 or null"),
    "use_instance": (lambda v: isinstance(v, bool), "true or false"),
    "class_names": (_list_of(lambda x: isinstance(x, str)), "a list of strings"),
    "palette": (_list_of(_rgb), "a list of [R, G, B] integers in 0..255"),
    "attribute_names": (lambda v: _list_of(lambda x: isinstance(x, str))(v) and len(v) > 0,
                        "a non-empty list of strings"),
    "exclusive_groups": (_list_of(_list_of(_int_in(0))), "a list of lists of attribute indices"),
    "image_size": (lambda v: v is None or _int_in(1, MAX_SIDE)(v), f"an integer in 1..{MAX_SIDE} or null"),
}
_REQUIRED = ("arch", "kwargs", "task")
_TASK_FIELDS = {"spade": ("label_set", "num_classes"), "stargan": ("attribute_names",)}


def check_description(path: str | Path, desc: Any, where: str = f"metadata '{META_KEY}'") -> dict[str, Any]:
    """``desc`` when it is a description restore can use (a JSON object with "arch", "kwargs", "task" and, where
    present, the task fields restore reads with their types), else ValueError naming the file and the field."""
    damaged = "the file is damaged or was not written by restore"
    if not isinstance(desc, dict):
        raise ValueError(f"{path}: {where} must be a JSON object {{\"arch\", \"kwargs\", \"task\", ...}}, got a "
                         f"{type(desc).__name__} {_show(desc)}; {damaged}")
    for key, (check, what) in _FIELDS.items():
        if key in desc and not check(desc[key]):
            raise ValueError(f"{path}: {where}: '{key}' must be {what}, got {_show(desc[key])}; {damaged}")
    for key in (*_REQUIRED, *_TASK_FIELDS.get(desc.get("task", ""), ())):
        if key not in desc:
            raise ValueError(f"{path}: {where} has no '{key}' (it has {_show(sorted(desc))}); {damaged}")
    if any(not isinstance(k, str) for k in desc["kwargs"]):
        raise ValueError(f"{path}: {where}: the keys of 'kwargs' must be strings, got {_show(list(desc['kwargs']))}")
    names = desc.get("attribute_names")
    for group in desc.get("exclusive_groups") or ():
        if names is not None and any(i >= len(names) for i in group):
            raise ValueError(f"{path}: {where}: 'exclusive_groups' entry {group} names an attribute beyond the "
                             f"{len(names)} of 'attribute_names'; {damaged}")
    return desc


def _parse_description(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    """The checked description from a safetensors file's metadata."""
    if META_KEY not in meta:
        raise ValueError(f"{path}: no '{META_KEY}' metadata (arch and kwargs); it was not written by restore")
    try:
        desc = json.loads(meta[META_KEY])
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError; absurd nesting: RecursionError
        raise ValueError(f"{path}: metadata '{META_KEY}' is not JSON ({_first_line(err)}); the file is damaged or "
                         "was not written by restore") from None
    return check_description(path, desc)


def _unreadable(path: Path, err: BaseException) -> ValueError:
    return ValueError(f"{path}: not a readable safetensors file ({_first_line(err)}); it is damaged or truncated: "
                      "download or export it again")


class _Foreign(ValueError):
    """A readable file without restore's metadata (a community model file, or no model at all). Its message is the
    refusal for restore's own format; ``held()`` reads what the file holds (a state dict, or anything else)."""

    def __init__(self, path: Path, refusal: str, held: Callable[[], Any]):
        super().__init__(refusal)
        self.path, self.refusal, self.held = path, refusal, held


@dataclass
class _Weights:
    """A weights file opened and checked: its description, its tensors' shapes and bytes, and how to read them
    (safetensors: from the header alone, so that a network can be checked against it before any tensor is read)."""

    path: Path
    desc: dict[str, Any]
    shapes: dict[str, tuple[int, ...]]
    load: Callable[[], dict[str, torch.Tensor]]


def _open_safetensors(path: Path) -> _Weights:
    from safetensors import SafetensorError, safe_open

    try:  # safetensors checks the header: its length, its JSON, and that the offsets cover exactly the file
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            slices = {k: f.get_slice(k) for k in f.keys()}
            shapes = {k: tuple(int(n) for n in s.get_shape()) for k, s in slices.items()}
            dtypes = {s.get_dtype() for s in slices.values()}
    except (SafetensorError, OSError) as err:
        raise _unreadable(path, err) from None

    def load() -> dict[str, torch.Tensor]:
        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, RuntimeError, TypeError) as err:
            raise _unreadable(path, err) from None

    if META_KEY not in meta:
        raise _Foreign(path, f"{path}: no '{META_KEY}' metadata (arch and kwargs); it was not written by restore", load)
    desc = _parse_description(path, meta)
    desc.setdefault("dtype", "fp16" if "F16" in dtypes else "fp32")
    return _Weights(path, desc, shapes, load)


def _check_tensors(path: Path, state: Any, where: str) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict: string keys, tensors that own the values they claim (a broadcast view of one
    number can pose as a huge tensor in a tiny file)."""
    if not isinstance(state, dict):
        raise ValueError(f"{path}: {where} must be a dict of tensors, got {type(state).__name__}; not a restore "
                         "checkpoint, or a damaged one")
    for key, t in state.items():
        if not isinstance(key, str) or not isinstance(t, torch.Tensor):
            raise ValueError(f"{path}: {where} entry {_show(key)} is not a tensor ({type(t).__name__}); not a "
                             "restore checkpoint, or a damaged one")
        need = t.numel() * t.element_size()
        have = t.untyped_storage().nbytes() - t.storage_offset() * t.element_size()
        if need > have:
            raise ValueError(f"{path}: {where} tensor '{key}' claims shape {tuple(t.shape)} ({need:,} bytes) but its "
                             f"storage holds {have:,} bytes (a broadcast view, not weights); the checkpoint is "
                             "damaged or hostile")
    return state


def _load_reason(err: ValueError) -> str:
    """The cause in torch.load's message, which runs over several lines (and, for a file ``weights_only`` refuses,
    suggests loading it with ``weights_only=False``: advice a hostile file must not get)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "Unpickler error" in line:
            rest = line.split("Unpickler error:", 1)[-1].strip() or (lines[i + 1] if i + 1 < len(lines) else "")
            rest = rest.split(" Please use ", 1)[0].rstrip(". ")  # torch's advice to allowlist the file's globals
            return f"content that weights_only=True does not load: {rest}"
    first = lines[0] if lines else type(err).__name__
    return first.split(": ", 1)[-1] if first.startswith("cannot load checkpoint") else first


def _open_checkpoint(path: Path) -> _Weights:
    try:
        state = ckpt.load(path)  # torch.load(weights_only=True): no code is unpickled
    except ValueError as err:
        raise ValueError(f"{path}: cannot load checkpoint ({_load_reason(err)}); it is damaged, or it holds pickled "
                         "code or objects, which restore never runs (only tensors and plain values are loaded: "
                         "weights_only=True; a .safetensors file of the model loads)") from None
    if not isinstance(state, dict) or "generator" not in state:
        found = f"a {type(state).__name__}" if not isinstance(state, dict) else f"keys {_show(sorted(map(str, state)))}"
        raise _Foreign(path, f"{path}: not a restore checkpoint (no 'generator' entry; it holds {found})",
                       lambda: state)
    gen, config = state["generator"], state.get("config") or {}
    if not isinstance(gen, dict) or not all(k in gen for k in ("type", "kwargs", "state")):
        raise ValueError(f"{path}: the checkpoint's 'generator' must be a dict with 'type', 'kwargs' and 'state', got "
                         f"{_show(gen if not isinstance(gen, dict) else sorted(map(str, gen)))}; damaged checkpoint")
    extra = gen.get("extra") or {}
    if not isinstance(extra, dict) or not isinstance(config, dict):
        raise ValueError(f"{path}: the checkpoint's generator 'extra' and 'config' must be dicts; damaged checkpoint")
    desc = check_description(path, {**extra, "arch": gen["type"], "kwargs": gen["kwargs"],
                                    "task": config.get("task", "sr")}, "the checkpoint's generator description")
    ema = state.get("ema")
    weights = _check_tensors(path, ema if ema is not None else gen["state"], "'ema'" if ema is not None else
                             "generator 'state'")
    desc.setdefault("dtype", stored_dtype(weights))
    return _Weights(path, desc, {k: tuple(v.shape) for k, v in weights.items()}, lambda: weights)


def _open(path: str | Path) -> _Weights:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model weights not found: {path}")
    return _open_safetensors(path) if path.suffix == ".safetensors" else _open_checkpoint(path)


def read_generator(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(description {"arch", "kwargs", "task", "dtype" (as stored), ...}, state dict with fp32 floating-point
    tensors) from a .safetensors file or a checkpoint; ValueError naming the file when it is damaged."""
    weights = _open(path)
    return weights.desc, _as_fp32(weights.load())


def _as_fp32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors as fp32 (whatever was stored); integer and bool buffers unchanged."""
    return {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != torch.float32
            else v for k, v in state.items()}


# ------------------------------------------------------------------------------------------ sizing a network
class _TooBig(Exception):
    """Raised inside a probe build when the network outgrows the file; caught and reworded by :func:`_probe`."""

    def __init__(self, what: str, name: str, shape: tuple[int, ...]):
        super().__init__(what)
        self.what, self.name, self.shape = what, name, shape


class _SizeProbe:
    """While active (in the thread that entered it), counts the parameters, buffers and modules a network registers
    as it is built, and stops the build (:class:`_TooBig`) as soon as it outgrows what the file holds (with slack
    for tensors a builder replaces): so that building ``num_blocks=10**7`` stops after a few blocks."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.max_tensors = 2 * len(shapes) + 64
        self.max_values = 2 * sum(math.prod(s) for s in shapes.values()) + 2**20
        self.max_modules = 4 * len(shapes) + 64
        self.thread = threading.get_ident()
        self.kept: dict[int, torch.Tensor] = {}  # by id, kept alive so that ids stay unique
        self.values = self.modules = 0
        self.handles: list[Any] = []

    def _tensor(self, module: nn.Module, name: str, t: torch.Tensor | None) -> None:
        if t is None or threading.get_ident() != self.thread or id(t) in self.kept:
            return
        self.kept[id(t)] = t
        self.values += t.numel()
        if len(self.kept) > self.max_tensors:
            raise _TooBig(f"more than {self.max_tensors} tensors", name, tuple(t.shape))
        if self.values > self.max_values:
            raise _TooBig(f"more than {self.max_values:,} values", name, tuple(t.shape))

    def _module(self, module: nn.Module, name: str, sub: nn.Module | None) -> None:
        if threading.get_ident() == self.thread:
            self.modules += 1
            if self.modules > self.max_modules:
                raise _TooBig(f"more than {self.max_modules} modules", name, ())

    def __enter__(self) -> _SizeProbe:
        from torch.nn.modules import module as m

        self.handles = [m.register_module_parameter_registration_hook(self._tensor),
                        m.register_module_buffer_registration_hook(self._tensor),
                        m.register_module_module_registration_hook(self._module)]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        self.kept.clear()


# Ops that only fill values (initialisers, in-place arithmetic) and the few whose output shape is obvious (spectral
# norm's power iterations): on meta tensors they compute nothing, yet several have only Python meta kernels whose
# first use imports sympy and torch._dynamo (seconds). The probe answers them with their shape instead.
_FILL_OPS = frozenset({"normal_", "uniform_", "zero_", "fill_", "fill_diagonal_", "bernoulli_", "exponential_",
                       "geometric_", "log_normal_", "cauchy_", "random_", "erfinv_", "mul_", "add_", "sub_", "div_",
                       "clamp_", "copy_", "__imul__", "__iadd__", "__isub__", "__itruediv__"})


class _ShapesOnly(TorchFunctionMode):
    """A torch function mode (per thread) for building on the meta device quickly: see :data:`_FILL_OPS`."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        first = args[0] if args else None
        if isinstance(first, torch.Tensor) and first.is_meta:
            name = getattr(func, "__name__", "")
            if name in _FILL_OPS or getattr(func, "__module__", "") == "torch.nn.init":
                return first  # in place: same tensor, same shape
            if func is torch.nn.functional.normalize:
                out = kwargs.get("out")
                return out if out is not None else torch.empty(first.shape, dtype=first.dtype, device="meta")
            if func in (torch.mv, torch.Tensor.mv):
                return torch.empty(first.shape[0], dtype=first.dtype, device="meta")
            if func in (torch.vdot, torch.dot, torch.Tensor.vdot, torch.Tensor.dot):
                return torch.empty((), dtype=first.dtype, device="meta")
            if (name in ("div", "__truediv__", "true_divide") and len(args) > 1
                    and (not isinstance(args[1], torch.Tensor) or args[1].dim() == 0)):
                return torch.empty(first.shape, dtype=first.dtype, device="meta")
        return func(*args, **kwargs)


def _suspects(kwargs: dict[str, Any], wanted: tuple[int, ...], held: set[int], bound: int) -> str:
    """The integer kwargs most likely to blame for a network that does not fit its file: those whose value is a
    dimension the network wanted but the file does not have, else those larger than anything in the file."""
    ints = {k: v for k, v in kwargs.items() if _is_int(v)}
    names = [k for k, v in ints.items() if v > 1 and v in wanted and v not in held]
    names = names or [k for k, v in ints.items() if v > bound]
    return ", ".join(f"{k}={_show(ints[k])}" for k in names) if names else f"one of {_show(kwargs)}"


def _probe(path: Path, arch: str, kwargs: dict[str, Any], shapes: dict[str, tuple[int, ...]]) -> None:
    """Build ``arch(**kwargs)`` on the meta device (no memory), stopping as soon as it outgrows the file, then check
    it shape by shape against the file's tensors and its output size against :data:`MAX_SIDE`; ValueError naming
    the file and the kwargs to blame when the description does not fit the weights."""
    from restore.registry import GENERATORS, OptionValueError

    held = {n for s in shapes.values() for n in s}
    bound = max([len(shapes), *held, 1])
    damaged = "the metadata does not describe the weights: the file is damaged or was not written by restore"
    try:
        with _SizeProbe(shapes), torch.device("meta"), _ShapesOnly():
            module = GENERATORS.build(arch, **kwargs)
    except _TooBig as big:
        total = sum(math.prod(s) for s in shapes.values())
        at = f" (at tensor '{big.name}' of shape {big.shape})" if big.shape else ""
        raise ValueError(f"{path}: {arch} with kwargs {_suspects(kwargs, big.shape, held, bound)} would need "
                         f"{big.what}{at}, but the file holds {len(shapes)} tensors of {total:,} values; "
                         f"{damaged}") from None
    except OptionValueError as err:
        raise ValueError(f"{path}: kwargs.{err.key} {err.reason}") from None
    except Exception as err:  # a builder fed a file's kwargs: whatever it raises is the file's fault
        raise ValueError(f"{path}: {arch} cannot be built from kwargs {_show(kwargs)}: "
                         f"{_first_line(err)}") from None
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in shapes]
    unexpected = [k for k in shapes if k not in expected]
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit {arch} {_show(kwargs)}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    wrong = [k for k in expected if expected[k] != shapes[k]]
    if wrong:
        k = wrong[0]
        raise ValueError(f"{path}: tensor '{k}' has shape {expected[k]} in the architecture but {shapes[k]} in the "
                         f"file ({len(wrong)} of {len(expected)} tensors differ; check kwargs "
                         f"{_suspects(kwargs, expected[k], set(shapes[k]), bound)}); {damaged}")
    sample_shape = getattr(module, "sample_shape", None)
    if callable(sample_shape):
        h, w = sample_shape()
        if max(h, w) > MAX_SIDE:
            big = ", ".join(f"{k}={v}" for k, v in kwargs.items() if _is_int(v) and v > MAX_SIDE // 8) or _show(kwargs)
            raise ValueError(f"{path}: {arch} with kwargs {big} makes {h}x{w} (HxW) images, beyond the bound of "
                             f"{MAX_SIDE} pixels a side; {damaged}")


def _checked_kwargs(path: Path, arch: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The kwargs checked against the architecture's signature and type hints (ValueError naming the file)."""
    import restore.archs  # noqa: F401  (fills the registry)
    from restore.config import _Ctx, check_kwargs
    from restore.registry import GENERATORS, did_you_mean

    if arch not in GENERATORS:
        raise ValueError(f"{path}: unknown generator architecture {arch!r}{did_you_mean(arch, GENERATORS.names())}; "
                         f"known: {', '.join(GENERATORS.names())} (a file from a newer restore, or a damaged one)")
    return check_kwargs(GENERATORS.get(arch), kwargs, "kwargs", _Ctx(str(path)), f"generator architecture '{arch}'")


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Build the generator a weights file describes, load its weights, eval mode. Returns (module, description).

    A file without restore's metadata is taken as a community model file (:func:`_load_community`). The
    description is checked first, and the network is sized on the meta device against the file's tensors
    before anything is allocated, so a damaged or hostile file is one ValueError naming it (and the kwarg to
    blame), never a huge allocation."""
    from restore.registry import GENERATORS

    try:
        weights = _open(path)
    except _Foreign as foreign:
        return _load_community(foreign, device)
    path, desc = weights.path, weights.desc
    arch = desc["arch"]
    kwargs = _checked_kwargs(path, arch, desc["kwargs"])
    _probe(path, arch, kwargs, weights.shapes)
    state = _as_fp32(weights.load())
    module = GENERATORS.build(arch, **kwargs)
    try:
        module.load_state_dict(state)
    except RuntimeError as err:  # the probe compared shapes; a dtype the module cannot take is left
        raise ValueError(f"{path}: weights do not fit {arch} {_show(desc['kwargs'])}: {_first_line(err)}") from None
    return module.to(device).eval(), desc


def load_state_into(module: nn.Module, path: str | Path) -> None:
    """Initialise ``module`` from a weights file (e.g. a PSNR-pretrained generator); names and shapes must match
    (checked before any tensor is read). A community file initialises a generator whose names and shapes it has,
    or an ``rrdbnet`` from any ESRGAN-family layout (:func:`_init_from_community`)."""
    try:
        weights = _open(path)
    except _Foreign as foreign:
        _init_from_community(module, foreign)
        return
    desc = weights.desc
    what = f"cannot initialise the generator from these weights ({desc.get('arch')} {_show(desc.get('kwargs'))})"
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in weights.shapes]
    unexpected = [k for k in weights.shapes if k not in expected]
    if missing or unexpected:
        raise ValueError(f"{weights.path}: {what}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    wrong = [k for k in expected if expected[k] != weights.shapes[k]]
    if wrong:
        k = wrong[0]
        raise ValueError(f"{weights.path}: {what}: tensor '{k}' is {expected[k]} in the generator but "
                         f"{weights.shapes[k]} in the file ({len(wrong)} tensor(s) differ)")
    try:
        module.load_state_dict(_as_fp32(weights.load()))
    except RuntimeError as err:
        raise ValueError(f"{weights.path}: {what}: {_first_line(err)}") from None


# ------------------------------------------------------------------------------------------ community files
def _stored_name(state: dict[str, torch.Tensor]) -> str:
    dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
    return "fp16" if torch.float16 in dtypes else "bf16" if torch.bfloat16 in dtypes else "fp32"


def _community_state(foreign: _Foreign) -> tuple[dict[str, torch.Tensor], str]:
    """The checked fp32 state dict of a community file, and the dtype it was stored in."""
    from restore.engine import community

    state = community.state_of(foreign.path, foreign.held(), foreign.refusal)
    _check_tensors(foreign.path, state, "the state dict")
    return _as_fp32(state), _stored_name(state)


def _detect_bounded(foreign: _Foreign, state: dict[str, torch.Tensor], build: Callable[[], Any]) -> Any:
    """``build()`` (spandrel building a network from the file's shapes) under the size probe: keys can claim any
    number of blocks, so building stops as soon as the network outgrows the tensors the file holds."""
    try:
        with _SizeProbe({k: tuple(v.shape) for k, v in state.items()}):
            return build()
    except _TooBig as big:
        total = sum(v.numel() for v in state.values())
        raise ValueError(f"{foreign.path}: the network spandrel builds for it would need {big.what}, but the file "
                         f"holds {len(state)} tensors of {total:,} values; the file is damaged or hostile") from None


def _load_community(foreign: _Foreign, device: str | torch.device) -> tuple[nn.Module, dict[str, Any]]:
    """A community model file as (:class:`restore.engine.community.CommunityModel`, description): ``{"arch":
    "spandrel:<id>", "kwargs": {"scale"}, "task": "sr", "dtype" (as stored), "hints" {"fp16", "bf16",
    "size_requirements" {"minimum", "multiple_of", "square"}, "tiling"}, "in_channels", "out_channels", ...}``."""
    from restore.engine import community

    state, stored = _community_state(foreign)
    module, desc = _detect_bounded(foreign, state, lambda: community.build(foreign.path, state, foreign.refusal))
    desc["dtype"] = stored
    return module.to(device).eval(), desc


def _init_from_community(module: nn.Module, foreign: _Foreign) -> None:
    """Load a community state dict into ``module``: as it is when its names and shapes are the module's (basicsr
    RRDBNet keys into ``rrdbnet``), else through spandrel's ESRGAN layouts mapped onto basicsr's RRDBNet keys."""
    from restore.engine import community

    path = foreign.path
    state, _ = _community_state(foreign)
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    what = f"cannot initialise this {type(module).__name__} generator"
    if {k: tuple(v.shape) for k, v in state.items()} != expected:
        found = _detect_bounded(foreign, state, lambda: community.detect(path, state, foreign.refusal))
        mapped = community.as_rrdbnet(found)
        arch = f"it holds a spandrel {found.architecture.id} model ({', '.join(found.tags)})"
        if mapped is None:
            raise ValueError(f"{path}: {arch}, which {what}: train.pretrained_generator takes restore weights of "
                             "the generator's architecture, or an ESRGAN-family file (ESRGAN, BSRGAN, Real-ESRGAN "
                             "RRDBNet) for an rrdbnet generator")
        fits = community.rrdbnet_kwargs(mapped, found)
        missing = [k for k in expected if k not in mapped]
        unexpected = [k for k in mapped if k not in expected]
        wrong = [k for k in expected if k in mapped and tuple(mapped[k].shape) != expected[k]]
        if missing or unexpected or wrong:
            detail = (f"tensor '{wrong[0]}' is {expected[wrong[0]]} in the generator but "
                      f"{tuple(mapped[wrong[0]].shape)} in the file" if wrong and not (missing or unexpected)
                      else f"missing {missing[:3]}, unexpected {unexpected[:3]}")
            raise ValueError(f"{path}: {arch}, which {what} ({detail}); the generator that fits it is "
                             f"{{arch: rrdbnet, {', '.join(f'{k}: {v}' for k, v in fits.items())}}}")
        state = mapped
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: {what}: {_first_line(err)}") from None
