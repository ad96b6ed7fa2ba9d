"""Finding and reading the pretrained feature networks that losses and metrics need (VGG for the perceptual
loss, AlexNet for LPIPS, Inception for FID). They are never bundled: each is looked up in the same order (an
explicit path, an environment variable, caches, then ``../shared/weights`` beside the repository)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_WEIGHTS = Path("shared") / "weights"
"""The shared weights folder, relative to the folder that holds the repository (``../shared/weights``)."""


def find_pretrained(what: str, explicit: str | os.PathLike | None = None, env_var: str | None = None,
                    places: Sequence[Path] = (), how_to_get: str = "", required: bool = True) -> Path | None:
    """The file for ``what``: ``explicit`` if given, else ``$env_var``, else the first of ``places`` that exists.

    An explicit path or an environment variable naming a missing file is always an error. When nothing is found,
    ``required`` raises FileNotFoundError listing every place looked at (and ``how_to_get``), else returns None.
    """
    hint = f" {how_to_get}" if how_to_get else ""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{what} file not found: {path}.{hint}")
        return path
    env = os.environ.get(env_var) if env_var else None
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{env_var} is set to {env}, but no such file exists.{hint}")
        return path
    for path in places:
        if path.is_file():
            return path
    if not required:
        return None
    looked = "; ".join(([f"${env_var} (not set)"] if env_var else []) + [str(p) for p in places])
    raise FileNotFoundError(f"the {what} was not found; looked at: {looked}.{hint}")


def read_tensor_state(path: str | os.PathLike, what: str = "weights") -> dict[str, Tensor]:
    """A state dict of tensors from ``path``: safetensors, or ``torch.load(weights_only=True)`` (no pickled code
    runs). Errors name the file instead of showing unpickler internals."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors, zip errors, unsafe globals
        raise ValueError(f"cannot load {what} from {path}: {type(err).__name__}: {err}") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors for {what}, got {type(state).__name__}")
    return state


def features_only(state: dict[str, Tensor], prefix: str = "features.") -> dict[str, Tensor]:
    """The ``features`` part of a torchvision classifier's state dict (``features.0.weight`` -> ``0.weight``);
    a state dict of the features alone is returned as it is."""
    if any(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state
