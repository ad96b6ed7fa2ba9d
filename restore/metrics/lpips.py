"""LPIPS-alex (Zhang et al. 2018, v0.1) without any download.

The ``lpips`` package ships its linear heads (``lpips/weights/v0.1/alex.pth``) but fetches the ImageNet AlexNet
trunk through torchvision at run time. Here the trunk is built untrained and the ImageNet AlexNet convolution
weights are loaded from a local file: torchvision's own checkpoint in the torch hub cache, or a state dict of
``torchvision.models.alexnet().features`` (keys ``0.weight`` ... ``10.bias``) such as
``../shared/weights/alexnet_imagenet_features.pth``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
import torch

from restore.assets import REPO_ROOT, SHARED_WEIGHTS, features_only, find_pretrained, read_tensor_state

ENV_VAR = "RESTORE_ALEXNET"
SHARED_FILE = SHARED_WEIGHTS / "alexnet_imagenet_features.pth"
_HUB_FILE = "alexnet-owt-7be5be79.pth"  # torchvision AlexNet_Weights.IMAGENET1K_V1
_REPO_ROOT = REPO_ROOT  # a module attribute, so tests can point the shared folder elsewhere


def _candidates() -> list[Path]:
    """Where :func:`find_alexnet_weights` looks, in order (after the environment variable)."""
    return [Path(torch.hub.get_dir()) / "checkpoints" / _HUB_FILE, _REPO_ROOT.parent / SHARED_FILE]


def find_alexnet_weights() -> Path | None:
    """The ImageNet AlexNet weights file to use: ``$RESTORE_ALEXNET``, else torchvision's checkpoint in the torch
    hub cache, else ``../shared/weights/alexnet_imagenet_features.pth`` beside the repository; None if none exists.

    Raises FileNotFoundError when ``RESTORE_ALEXNET`` is set to a path that does not exist.
    """
    return find_pretrained("ImageNet AlexNet weights", None, ENV_VAR, _candidates(), required=False)


def _features_state(path: Path) -> dict[str, torch.Tensor]:
    """Load an AlexNet ``features`` state dict (bare keys, or a full torchvision model with ``features.``)."""
    return features_only(read_tensor_state(path, "AlexNet weights"))


def _load_trunk(net: torch.nn.Module, path: Path) -> None:
    """Copy AlexNet ``features.<i>`` weights into lpips' slice modules (slice1 holds 0-1, slice2 2-4, ...)."""
    state = _features_state(path)
    targets: dict[str, torch.nn.Parameter] = {}
    for slice_name in ("slice1", "slice2", "slice3", "slice4", "slice5"):
        for index, module in getattr(net, slice_name).named_children():
            for pname, param in module.named_parameters(recurse=False):
                targets[f"{index}.{pname}"] = param
    missing = sorted(set(targets) - set(state))
    if missing:
        raise ValueError(f"{path} is not an AlexNet features state dict: missing {', '.join(missing)} "
                         f"(has {', '.join(sorted(map(str, state))[:12])})")
    with torch.no_grad():
        for key, param in targets.items():
            value = state[key]
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(param.shape):
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"{path}: {key} has shape {shape}, AlexNet needs {tuple(param.shape)}")
            param.copy_(value.to(param.dtype))


class LPIPSMetric:
    """LPIPS-alex v0.1 distance between two images; lower is more similar, 0 for identical images.

    ``weights``: the AlexNet file (see module doc); None searches with :func:`find_alexnet_weights` and raises
    FileNotFoundError naming the places looked at when nothing is found.
    """

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        if weights is None:
            found = find_alexnet_weights()
            if found is None:
                looked = ", ".join(str(p) for p in _candidates())
                raise FileNotFoundError(
                    f"LPIPS needs the ImageNet AlexNet weights and none were found (looked at ${ENV_VAR}, {looked}). "
                    f"Pass weights=PATH (restore eval --lpips-weights PATH) or set {ENV_VAR}=PATH to a "
                    "torchvision AlexNet checkpoint or a state dict of torchvision.models.alexnet().features.")
            weights = found
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"AlexNet weights file for LPIPS not found: {path}")
        import lpips

        heads = Path(lpips.__file__).resolve().parent / "weights" / "v0.1" / "alex.pth"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore", UserWarning)  # torchvision's "pretrained is deprecated"
            model = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
        state = torch.load(heads, map_location="cpu", weights_only=True)  # saved from CUDA tensors
        lin_state = {k: v for k, v in state.items() if re.match(r"lin\d+\.", k)}
        result = model.load_state_dict(lin_state, strict=False)
        lins = {k for k in model.state_dict() if re.match(r"lin\d+\.", k)}  # (also aliased as lins.<i>)
        if not lins or set(lin_state) != lins or result.unexpected_keys:
            raise RuntimeError(f"{heads}: the lpips package's v0.1 alex heads do not match its model")
        _load_trunk(model.net, path)
        self.weights = path
        self.device = torch.device(device)
        self.model = model.eval().requires_grad_(False).to(self.device)

    @torch.no_grad()
    def __call__(self, sr: np.ndarray, hr: np.ndarray) -> float:
        """Distance between (H, W, 3) float RGB images in [0, 1] (same shape, at least 31x31)."""
        a, b = np.asarray(sr), np.asarray(hr)
        if a.shape != b.shape:
            raise ValueError(f"sr and hr must have the same shape, got sr {a.shape} and hr {b.shape}")
        if a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"LPIPS expects (H, W, 3) RGB images, got shape {a.shape}")
        if min(a.shape[:2]) < 31:
            raise ValueError(f"LPIPS-alex needs images of at least 31x31 pixels (AlexNet's pooling), "
                             f"got shape {a.shape}")

        def prep(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None]
            return (t.clamp(0, 1) * 2 - 1).to(self.device)  # lpips expects NCHW in [-1, 1]

        return float(self.model(prep(a), prep(b)).reshape(()))
