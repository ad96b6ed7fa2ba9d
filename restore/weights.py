"""Generator weights in and out: self-describing safetensors files and restore checkpoints.

A published ``.safetensors`` file carries its architecture in the metadata (``{"arch", "kwargs", "task"}`` as
JSON), so :func:`load_generator` needs nothing else. Training checkpoints (``.pt``) describe themselves the same
way; their EMA weights are preferred when present. Nothing is unpickled beyond ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from restore.engine import checkpoint as ckpt

META_KEY = "restore"


def save_generator(module: nn.Module, path: str | Path, arch: str, kwargs: dict[str, Any], task: str,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write fp32 weights + architecture metadata to ``path`` (.safetensors), atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {META_KEY: json.dumps({"arch": arch, "kwargs": kwargs, "task": task, **(extra or {})})}
    state = {k: v.detach().float().contiguous().cpu() for k, v in module.state_dict().items()
             if v.is_floating_point()}
    state.update({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()
                  if not v.is_floating_point()})
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def read_generator(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(description {"arch", "kwargs", "task", ...}, state dict) from a .safetensors file or a checkpoint."""
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
        return json.loads(meta[META_KEY]), state
    state = ckpt.load(path)
    if "generator" not in state:
        raise ValueError(f"{path}: not a restore checkpoint (no 'generator' entry)")
    gen = state["generator"]
    desc = {**gen.get("extra", {}), "arch": gen["type"], "kwargs": gen["kwargs"],
            "task": state.get("config", {}).get("task", "sr")}
    return desc, state["ema"] if state.get("ema") is not None else gen["state"]


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
