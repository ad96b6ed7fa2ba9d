"""Community SR model files (ESRGAN, Real-ESRGAN, SwinIR, ... as other projects publish them), through spandrel.

People hold model files from ComfyUI, chaiNNer or traiNNer-redux: bare state dicts in many key layouts. spandrel
knows the architectures and deduces their sizes from the tensors, so restore writes no detector of its own. The
file itself is read by :mod:`restore.engine.weights` (safetensors, or ``torch.load(weights_only=True)``: no pickled
code runs), which hands the state dict here:

* :func:`state_of` finds the state dict in what a file holds (spandrel's unwrapping: ``params_ema`` before
  ``params``, ``state_dict``, a ``module.`` prefix), tensors only;
* :func:`build` detects the architecture and returns a :class:`CommunityModel` (restore's generator interface:
  RGB in, RGB out, the model's own size, precision and tiling hints honoured) with a description shaped like
  restore's own: ``task`` "sr", ``arch`` "spandrel:<id>", ``kwargs`` {"scale"}, ``hints``, channel counts;
* :func:`as_rrdbnet` maps an ESRGAN-family state dict (old ESRGAN ``model.N`` keys, BSRGAN, Real-ESRGAN's basicsr
  keys) onto the keys of restore's ``rrdbnet`` (basicsr's RRDBNet), for ``train.pretrained_generator``.

Every refusal is one ValueError naming the file.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restore.inference.tiling import TilingHints

PREFIX = "spandrel:"
"""``desc["arch"]`` of a community model: ``spandrel:`` + spandrel's architecture id (``spandrel:ESRGAN``)."""
CHANNELS = (1, 3)  # grey models take the mean of the RGB channels and give their output to all three
_SHOW_KEYS = 4


def supported() -> list[str]:
    """The architecture ids spandrel's registry detects (what a community file may hold)."""
    import spandrel

    return [a.architecture.id for a in spandrel.MAIN_REGISTRY.architectures("insertion")]


def _has_tensors(raw: Any) -> bool:
    """A tensor at the top of ``raw`` or one level down (``{"params_ema": {...}}``): without one it is no model."""
    if not isinstance(raw, dict):
        return False
    return any(isinstance(v, Tensor) or (isinstance(v, dict) and any(isinstance(t, Tensor) for t in v.values()))
               for v in raw.values())


def state_of(path: Any, raw: Any, refusal: str) -> dict[str, Tensor]:
    """The state dict of a community file: spandrel's canonical unwrapping of ``raw`` (what the file holds), its
    tensors only. ``refusal``: why it is not a restore file, which starts the message when it is no model either."""
    if not _has_tensors(raw):
        what = f"a {type(raw).__name__}" if not isinstance(raw, dict) else "no tensors"
        raise ValueError(f"{refusal}, and it is no community model file either (it holds {what})")
    import spandrel

    state = spandrel.canonicalize_state_dict(raw)
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors or not all(isinstance(k, str) for k in tensors):
        raise ValueError(f"{refusal}, and it is no community model file either (its state dict has "
                         f"{'no tensors' if not tensors else 'keys that are not strings'})")
    return tensors


def _keys(state: dict[str, Tensor]) -> str:
    shown = ", ".join(repr(k) for k in list(state)[:_SHOW_KEYS])
    return shown + (", ..." if len(state) > _SHOW_KEYS else "")


def detect(path: Any, state: dict[str, Tensor], refusal: str) -> Any:
    """spandrel's model descriptor for ``state`` (an image-to-image model); ValueError naming the file when spandrel
    knows no architecture for it, or knows one but cannot load these tensors into it."""
    import spandrel

    try:
        found = spandrel.ModelLoader("cpu").load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise ValueError(f"{refusal}, and spandrel {spandrel.__version__} recognises no architecture in its "
                         f"{len(state)} tensors (keys {_keys(state)}); supported community architectures: "
                         f"{', '.join(supported())}") from None
    except (KeyError, ValueError, AssertionError, RuntimeError, TypeError, IndexError, AttributeError) as err:
        lines = str(err).strip().splitlines()
        raise ValueError(f"{path}: spandrel takes it for a known architecture but cannot load its tensors "
                         f"({lines[0] if lines else type(err).__name__}); the file is damaged, or a variant spandrel "
                         "does not support") from None
    arch = found.architecture.id
    if not isinstance(found, spandrel.ImageModelDescriptor):
        raise ValueError(f"{path}: a {arch} model ({found.purpose}: it takes an image and a mask); restore runs "
                         "image-to-image models (super-resolution, restoration)")
    if found.input_channels not in CHANNELS or found.output_channels not in CHANNELS:
        raise ValueError(f"{path}: a {arch} model with {found.input_channels} input and {found.output_channels} "
                         "output channels; restore runs RGB (3-channel) and grey (1-channel) models")
    return found


def description(found: Any) -> dict[str, Any]:
    """restore's description of a spandrel model: what ``load_generator`` returns next to the module."""
    import spandrel

    req = found.size_requirements
    return {"arch": PREFIX + found.architecture.id, "kwargs": {"scale": int(found.scale)}, "task": "sr",
            "source": "community", "purpose": found.purpose, "tags": list(found.tags),
            "in_channels": int(found.input_channels), "out_channels": int(found.output_channels),
            "hints": {"fp16": bool(found.supports_half), "bf16": bool(found.supports_bfloat16),
                      "size_requirements": {"minimum": int(req.minimum), "multiple_of": int(req.multiple_of),
                                            "square": bool(req.square)},
                      "tiling": found.tiling.name.lower()},
            "spandrel": spandrel.__version__}


def build(path: Any, state: dict[str, Tensor], refusal: str) -> tuple[CommunityModel, dict[str, Any]]:
    """(:class:`CommunityModel`, description) for a community state dict, on the CPU, eval mode."""
    found = detect(path, state, refusal)
    desc = description(found)
    return CommunityModel(found, desc).eval(), desc


def _pad(x: Tensor, pad_w: int, pad_h: int) -> Tensor:
    """Pad right and bottom: reflect as far as the image allows (side - 1), replicate the rest (as spandrel's own
    call does), so the padding looks like the image's edge and the output there is cropped off."""
    h, w = x.shape[-2:]
    rw, rh = min(pad_w, w - 1), min(pad_h, h - 1)
    if rw or rh:
        x = F.pad(x, (0, rw, 0, rh), mode="reflect")
    if pad_w - rw or pad_h - rh:
        x = F.pad(x, (0, pad_w - rw, 0, pad_h - rh), mode="replicate")
    return x


class CommunityModel(nn.Module):
    """A spandrel model behind restore's generator interface: (N, 3, h, w) RGB in [0, 1] -> (N, 3, s*h, s*w), not
    clamped (restore's pipelines clip, as for its own generators).

    The model's hints are honoured here and in the tiler: inputs are padded (reflect) to its size requirements and
    the output cropped back; a model without fp16 (or bf16) support runs in fp32 under a reduced-precision request
    (said once on stderr); ``tiling_hints`` carries spandrel's tiling advice and minimum size to
    :func:`restore.inference.tiling.tiled_forward`. Grey models see the channel mean and fill all three channels.
    """

    def __init__(self, found: Any, desc: dict[str, Any]):
        super().__init__()
        self.net = found.model
        self.arch: str = desc["arch"]
        self.scale = int(found.scale)
        self.in_channels, self.out_channels = int(found.input_channels), int(found.output_channels)
        self.requirements = found.size_requirements
        self.unsupported = {dt for dt, ok in ((torch.float16, found.supports_half),
                                              (torch.bfloat16, found.supports_bfloat16)) if not ok}
        self.tiling_hints = TilingHints(name=self.arch, advice=desc["hints"]["tiling"],
                                        minimum=int(self.requirements.minimum))
        # spandrel's own call of this architecture (a few return a tuple, or rescale); the plain call otherwise
        self._call = getattr(found, "_call_fn", None) or (lambda model, image: model(image))
        self._said_fp32 = False

    def _reduced(self, x: Tensor) -> torch.dtype | None:
        """The reduced precision this input asks for (its dtype, or an active autocast), when the model lacks it."""
        if x.dtype in self.unsupported:
            return x.dtype
        kind = x.device.type
        if kind in ("cuda", "cpu") and torch.is_autocast_enabled(kind):
            dt = torch.get_autocast_dtype(kind)
            return dt if dt in self.unsupported else None
        return None

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"{self.arch}: expected an (N, 3, H, W) RGB batch, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if self.in_channels == 1:
            x = x.mean(dim=1, keepdim=True)
        pad_w, pad_h = self.requirements.get_padding(int(w), int(h))
        x = _pad(x, pad_w, pad_h) if pad_w or pad_h else x
        reduced = self._reduced(x)
        if reduced is None:
            y = self._call(self.net, x)
        else:
            if not self._said_fp32:
                self._said_fp32 = True
                from tqdm import tqdm

                tqdm.write(f"note: {self.arch} does not support {str(reduced).removeprefix('torch.')} (spandrel); "
                           "it runs in fp32 although reduced precision (--half) was asked", file=sys.stderr)
            with torch.autocast(x.device.type, enabled=False):
                y = self._call(self.net, x.float())
        y = y[..., : self.scale * h, : self.scale * w] if pad_w or pad_h else y
        return y.repeat(1, 3, 1, 1) if y.shape[1] == 1 else y


# ------------------------------------------------------------------------------------------ fine-tuning
_TOP = re.compile(r"model\.(\d+)\.(weight|bias)$")
_RDB = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
_TRUNK = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)$")


def as_rrdbnet(found: Any) -> dict[str, Tensor] | None:
    """The state dict of an ESRGAN-family model under basicsr's RRDBNet keys (restore's ``rrdbnet``), or None for
    another architecture. spandrel's ESRGAN model holds every ESRGAN layout (old, BSRGAN, Real-ESRGAN) in the
    original ``model.N`` keys: ``model.0`` is conv_first, ``model.1.sub.i.RDBk.convj.0`` body.i.rdbk.convj, the last
    ``model.1.sub`` entry conv_body, then the up-sampling convs, conv_hr and conv_last in order. A key that fits
    none of these (ESRGAN+'s ``conv1x1``) stays as it is, so that the shape check names it."""
    if found.architecture.id != "ESRGAN":
        return None
    old = found.model.state_dict()
    trunk = max((int(m.group(1)) for k in old if (m := _TRUNK.match(k))), default=None)
    tops = sorted({int(m.group(1)) for k in old if (m := _TOP.match(k))})
    names = {i: f"conv_up{n}" for n, i in enumerate(tops[1:-2], start=1)}
    if len(tops) >= 3:
        names.update({tops[0]: "conv_first", tops[-2]: "conv_hr", tops[-1]: "conv_last"})
    out: dict[str, Tensor] = {}
    for key, value in old.items():
        if (m := _RDB.match(key)):
            key = f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"
        elif (m := _TRUNK.match(key)) and int(m.group(1)) == trunk:
            key = f"conv_body.{m.group(2)}"
        elif (m := _TOP.match(key)) and int(m.group(1)) in names:
            key = f"{names[int(m.group(1))]}.{m.group(2)}"
        out[key] = value
    return out


def rrdbnet_kwargs(state: dict[str, Tensor], found: Any) -> dict[str, int]:
    """The ``rrdbnet`` generator options that fit an ESRGAN-family state dict (for the message when they differ)."""
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("body.")}
    out = {"in_channels": int(found.input_channels), "out_channels": int(found.output_channels),
           "scale": int(found.scale), "num_blocks": len(blocks)}
    if "conv_first.weight" in state:
        out["channels"] = int(state["conv_first.weight"].shape[0])
    if "body.0.rdb1.conv1.weight" in state:
        out["growth_channels"] = int(state["body.0.rdb1.conv1.weight"].shape[0])
    return out
