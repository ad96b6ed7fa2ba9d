"""Generator weights in and out: self-describing safetensors files and restore checkpoints.

A published ``.safetensors`` file carries its architecture in the metadata (``{"arch", "kwargs", "task"}`` as
JSON), so :func:`load_generator` needs nothing else. Training checkpoints (``.pt``) describe themselves the same
way; their EMA weights are preferred when present. Nothing is unpickled beyond ``torch.load(weights_only=True)``.

Storage dtype: training exports are fp32; published files (``restore publish``, :func:`convert_weights`) store
their floating-point tensors as fp16, which halves them, and record ``"dtype": "fp16"`` in the metadata. Whatever a
file stores, :func:`read_generator` (and so :func:`load_generator`, :func:`load_state_into`, the CLI and the app)
returns fp32 floating-point tensors; integer and bool buffers are kept as they are. Storing fp16 is refused when a
tensor would overflow fp16 or lose too much to fp16's subnormal range (:func:`check_fp16`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

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
    from safetensors import safe_open

    src = Path(src)
    if src.suffix != ".safetensors":
        raise ValueError(f"{src}: only .safetensors weights files can be converted")
    if not src.is_file():
        raise FileNotFoundError(f"model weights not found: {src}")
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata() or {})
        state = {k: f.get_tensor(k) for k in f.keys()}
    if META_KEY not in meta:
        raise ValueError(f"{src}: no '{META_KEY}' metadata (arch and kwargs); it was not written by restore")
    desc = json.loads(meta.pop(META_KEY))
    desc.pop("dtype", None)
    return save_state(state, dst if dst is not None else src, desc, dtype=dtype, metadata=meta)


def stored_dtype(state: dict[str, torch.Tensor]) -> str:
    """"fp16" when any floating-point tensor is stored as fp16, else "fp32" (what a file without a recorded dtype
    holds)."""
    return "fp16" if any(isinstance(v, torch.Tensor) and v.dtype == torch.float16 for v in state.values()) else "fp32"


def read_generator(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(description {"arch", "kwargs", "task", "dtype" (as stored), ...}, state dict with fp32 floating-point
    tensors) from a .safetensors file or a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model weights not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        if META_KEY not in meta:
            raise ValueError(f"{path}: no '{META_KEY}' metadata (arch and kwargs); it was not written by restore")
        desc = json.loads(meta[META_KEY])
        desc.setdefault("dtype", stored_dtype(state))
        return desc, _as_fp32(state)
    state = ckpt.load(path)
    if "generator" not in state:
        raise ValueError(f"{path}: not a restore checkpoint (no 'generator' entry)")
    gen = state["generator"]
    desc = {**gen.get("extra", {}), "arch": gen["type"], "kwargs": gen["kwargs"],
            "task": state.get("config", {}).get("task", "sr")}
    return desc, _as_fp32(state["ema"] if state.get("ema") is not None else gen["state"])


def _as_fp32(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating-point tensors as fp32 (whatever was stored); integer and bool buffers unchanged."""
    return {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dtype != torch.float32
            else v for k, v in state.items()}


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Build the generator a weights file describes, load its weights, eval mode. Returns (module, description)."""
    import restore.archs  # noqa: F401  (fills the registry)
    from restore.registry import GENERATORS

    desc, state = read_generator(path)
    try:
        module = GENERATORS.build(desc["arch"], **desc["kwargs"])
    except KeyError as err:
        raise ValueError(f"{path}: {err.args[0]}") from None
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit {desc['arch']} {desc['kwargs']}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return module.to(device).eval(), desc


def load_state_into(module: nn.Module, path: str | Path) -> None:
    """Initialise ``module`` from a weights file (e.g. a PSNR-pretrained generator); shapes must match."""
    desc, state = read_generator(path)
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path}: cannot initialise the generator from these weights ({desc.get('arch')} "
                         f"{desc.get('kwargs')}): {str(err).splitlines()[0]}") from None
