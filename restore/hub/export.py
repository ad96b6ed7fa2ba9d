"""Generators as ONNX and TorchScript files that run without restore, checked against PyTorch before they are kept.

An exported file is a whole inference step, not just the network: images go in and come out in [0, 1], SPADE
takes integer class ids (one-hot and instance edges are computed inside the graph) and StarGAN a plain attribute
vector, so a user of onnxruntime or libtorch needs nothing but the file (docs/export.md lists the inputs).

Height, width and batch are dynamic axes (SPADE's height and width are fixed by its architecture; an SR model that
computes with sizes as Python numbers, as SwinIR does, is exported at one ``fixed_size``). The file is
written to a temporary name, run on inputs of sizes other than the traced one (odd sides, batch 2, a real image)
with onnxruntime on the CPU or the TorchScript runtime, and compared with the PyTorch model; only a file whose
largest difference is within the tolerance of its precision (:data:`TOLERANCES`) replaces the output path.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restore.files import atomic_output

FORMATS: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt"}
"""Export formats and their usual file suffix."""

OPSET = 17
"""ONNX opset of exported files (onnxruntime >= 1.13 runs it)."""

TOLERANCES: dict[str, float] = {"fp32": 1e-4, "fp16": 2e-2}
"""Largest allowed |exported - PyTorch fp32| on the [0, 1] output, per precision of the exported file. Measured on
the 2-core CPU of development (docs/export.md#tolerances): fp32 files differ by at most 1.1e-6 (TorchScript: 0
but for SwinIR), fp16 files by 1.6e-3; the margins (~100x, ~10x) are for other CPUs' kernels and deeper networks."""

TORCHSCRIPT_META = "restore.json"
"""Name of the TorchScript archive's extra file that holds the metadata (``torch.jit.load(_extra_files=...)``)."""

VERIFY_SIZES: tuple[tuple[int, int, int], ...] = ((2, 37, 53), (1, 29, 41))
"""(batch, height, width) of the random inputs an export is checked on: odd sides, batch 2, and neither equal to
the traced example (:data:`TRACE_SIZE`), so a size or batch baked into the graph fails the check."""

REAL_SIDE = 63
"""Largest side of the centre crop of a real image an SR export is checked on (odd, unlike the random sizes)."""

TRACE_SIZE: tuple[int, int, int] = (1, 24, 32)
"""(batch, height, width) of the example the graph is traced with."""


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


BAKED = ("the network computes with sizes as Python numbers, which tracing fixes to the traced example's; such a "
         "model cannot be exported with dynamic sizes")

FIXED_REMEDY = "; export it at one size instead with --fixed-size HxW (docs/export.md#fixed-size)"
"""Said after :data:`BAKED` for an SR model exported with dynamic sizes: the fixed-size export is the way out."""


def parse_fixed_size(text: str | Sequence[int]) -> tuple[int, int]:
    """``"HxW"`` (or an (H, W) pair) -> (H, W), both whole numbers >= 1; ValueError naming the value otherwise."""
    if isinstance(text, str):
        parts = text.lower().replace(" ", "").split("x")
        ok = len(parts) == 2 and all(p.isdigit() for p in parts)
        values = [int(p) for p in parts] if ok else []
    else:
        values = [int(v) for v in text] if len(text) == 2 and all(float(v) == int(v) for v in text) else []
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"--fixed-size {text!r}: give the input's height and width in pixels as HxW, both >= 1 "
                         "(e.g. --fixed-size 256x256)")
    return values[0], values[1]


class ExportCheckError(ValueError):
    """The model does not export, or the exported file does not reproduce it within the tolerance; nothing was
    written. A ValueError, so ``restore export`` prints it as one ``error:`` line and exits 2."""


# ------------------------------------------------------------------------------------------ the exported graphs
def _pad_to(x: Tensor, multiple: int, mode: str = "replicate") -> Tensor:
    """Pad the bottom and right of (N, C, H, W) to multiples of ``multiple`` (``mode``: "replicate", or "reflect"
    for sides of at least ``multiple``); the amounts are computed from the traced shape, so the exported graph pads
    whatever size it is given."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, (-w) % multiple, 0, (-h) % multiple), mode=mode)


def _pad_edge(x: Tensor, minimum: int, multiple: int) -> Tensor:
    """:func:`restore.engine.community._pad` to spandrel's size requirements (sides raised to ``minimum``, then to a
    multiple of ``multiple``: reflect as far as the side allows, replicate the rest), with the amounts as tensor
    ops of the traced shape, so that the exported graph pads any size the same way (no Python ``max`` / ``min``)."""
    h, w = x.shape[-2:]
    h, w = torch.as_tensor(h), torch.as_tensor(w)
    need_h, need_w = torch.clamp(h, min=minimum), torch.clamp(w, min=minimum)
    pad_h, pad_w = need_h + (-need_h) % multiple - h, need_w + (-need_w) % multiple - w
    rh, rw = torch.minimum(pad_h, h - 1), torch.minimum(pad_w, w - 1)
    x = F.pad(x, (0, rw, 0, rh), mode="reflect")
    return F.pad(x, (0, pad_w - rw, 0, pad_h - rh), mode="replicate")


class SRGraph(nn.Module):
    """image (N, C, H, W) in [0, 1] -> (N, C, scale*H, scale*W) clamped to [0, 1], as ``restore infer`` writes it.
    ``multiple`` > 1: sides are padded (``mode``) to its multiples first and the output cropped back (basicsr's x2
    RRDBNet unshuffles pixels and needs even sides). Community models (``mode`` "reflect") are padded as
    :class:`restore.engine.community.CommunityModel` pads them: to ``minimum`` and ``multiple`` (spandrel's size
    requirements), inside the graph, so small inputs run in the exported file too."""

    def __init__(self, model: nn.Module, scale: int, multiple: int = 1, mode: str = "replicate", minimum: int = 0):
        super().__init__()
        self.model, self.scale, self.multiple, self.mode, self.minimum = model, scale, multiple, mode, minimum

    def forward(self, image: Tensor) -> Tensor:
        if self.multiple == 1 and self.minimum <= 1:
            return self.model(image).clamp(0, 1)
        h, w = image.shape[-2:]
        if self.mode == "reflect":
            out = self.model(_pad_edge(image, self.minimum, self.multiple))
        else:
            out = self.model(_pad_to(image, self.multiple, self.mode))
        return out[..., : self.scale * h, : self.scale * w].clamp(0, 1)


class StarGANGraph(nn.Module):
    """(image (N, 3, H, W) in [0, 1], attributes (N, A) in {0, 1}) -> (N, 3, H, W) in [0, 1].

    The generator works in [-1, 1] on sides that are multiples of 4; other sides are replicate-padded to the next
    multiple of 4 and the output cropped back. ``restore infer`` also crops the photo's centred square and resizes it
    to the model's ``image_size`` first; the graph leaves that to the caller (any size runs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: Tensor, attributes: Tensor) -> Tensor:
        h, w = image.shape[-2:]
        y = self.model(_pad_to(image, 4) * 2 - 1, attributes)[..., :h, :w]
        return ((y + 1) / 2).clamp(0, 1)


def _edges(instance: Tensor) -> Tensor:
    """(N, H, W) instance ids -> (N, H, W) 1 where a 4-neighbour has another id (both pixels of a pair), else 0:
    :func:`restore.data.labels.instance_edges` in tensor ops that export."""
    dx = (instance[:, :, 1:] != instance[:, :, :-1]).float()
    dy = (instance[:, 1:, :] != instance[:, :-1, :]).float()
    ex = torch.maximum(F.pad(dx, (1, 0)), F.pad(dx, (0, 1)))
    ey = torch.maximum(F.pad(dy, (0, 0, 1, 0)), F.pad(dy, (0, 0, 0, 1)))
    return torch.maximum(ex, ey)


class SPADEGraph(nn.Module):
    """(label (N, H, W) int64 class ids [, instance (N, H, W) int64 ids] [, style (N, z_dim)]) -> (N, 3, H, W) in
    [0, 1]; (H, W) is the model's ``sample_shape()``.

    The one-hot map (ids outside [0, num_classes) give an all-zero column) and the instance edges are computed in
    the graph; models trained without instances take the label alone, VAE models also take a style vector z."""

    def __init__(self, model: nn.Module, num_classes: int, use_instance: bool, use_vae: bool, dtype: torch.dtype):
        super().__init__()
        self.model, self.use_instance, self.use_vae, self.dtype = model, use_instance, use_vae, dtype
        self.register_buffer("classes", torch.arange(num_classes).view(1, num_classes, 1, 1), persistent=False)

    def forward(self, label: Tensor, *extra: Tensor) -> Tensor:
        seg = (label.unsqueeze(1) == self.classes).to(self.dtype)
        if self.use_instance:
            seg = torch.cat([seg, _edges(extra[0]).unsqueeze(1).to(self.dtype)], 1)
        out = self.model(seg, extra[-1]) if self.use_vae else self.model(seg)
        return ((out + 1) / 2).clamp(0, 1)


# ------------------------------------------------------------------------------------------ what a model exports
@dataclass
class Port:
    """One input or output of an exported file, as docs/export.md and the file's metadata describe it."""

    name: str
    dtype: str  # "float" (float32, or float16 in fp16 files) or "int64"
    shape: list[str | int]
    range: str
    what: str

    def numpy_dtype(self, precision: str) -> type:
        if self.dtype == "int64":
            return np.int64
        return np.float16 if precision == "fp16" else np.float32


@dataclass
class Case:
    """One verification input: arrays by input name (float32 / int64) and the PyTorch fp32 model's output."""

    what: str
    inputs: dict[str, np.ndarray]
    reference: np.ndarray


@dataclass
class Plan:
    """What a loaded model exports as: how to wrap it into the graph, its ports, the traced example and the checks."""

    build: Callable[[nn.Module, torch.dtype], nn.Module]  # (network, dtype) -> the graph module around it
    inputs: list[Port]
    outputs: list[Port]
    example: tuple[Tensor, ...]
    cases: list[Case]
    scale: int
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)
    fixed_size: tuple[int, int] | None = None  # (H, W) the graph takes, when its sides are not dynamic
    remedy: str = ""  # said after BAKED when a check finds a size baked into the graph


def _fixed_rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _real_rgb(image: Path | None) -> tuple[str, np.ndarray] | None:
    if image is None:
        return None
    from restore.data.io import read_image

    return image.name, read_image(image).rgb.astype(np.float32)


def _odd_crop(rgb: np.ndarray, side: int) -> np.ndarray:
    """The centre of the image, at most ``side`` pixels a side and odd on each side (when the image allows), so the
    real-image check has odd sides too and stays quick on large photos (an SR model's output is 16x its input)."""
    h, w = rgb.shape[:2]
    ch, cw = min(h, side), min(w, side)
    ch, cw = ch - (1 - ch % 2) if ch > 1 else ch, cw - (1 - cw % 2) if cw > 1 else cw
    top, left = (h - ch) // 2, (w - cw) // 2
    return rgb[top:top + ch, left:left + cw]


def _fixed_crop(rgb: np.ndarray, h: int, w: int) -> tuple[np.ndarray, str]:
    """The image's centre at exactly ``h`` x ``w`` for a fixed-size graph (reflect-padded where the image is smaller,
    so the bundled 128 x 128 example checks a 256 x 256 export too), and how it was made."""
    ih, iw = rgb.shape[:2]
    ch, cw = min(ih, h), min(iw, w)
    top, left = (ih - ch) // 2, (iw - cw) // 2
    crop = rgb[top:top + ch, left:left + cw]
    if (ch, cw) == (h, w):
        return crop, f"centre {h}x{w}"
    return np.pad(crop, ((0, h - ch), (0, w - cw), (0, 0)), mode="symmetric"), f"centre {ch}x{cw} padded to {h}x{w}"


def _nchw(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)


@torch.no_grad()
def _sr_plan(model: nn.Module, desc: dict[str, Any], image: Path | None,
             fixed_size: tuple[int, int] | None = None) -> Plan:
    """Community models (spandrel) honour their hints: sides padded inside the graph (reflect, as restore infer pads
    them) to the required minimum and multiple, and checked on an input below the minimum. ``fixed_size`` (H, W):
    traced and checked at that size only (batch stays dynamic), for networks that size their windows in Python."""
    scale = int(desc.get("kwargs", {}).get("scale", getattr(model, "scale", 4)))
    community = desc.get("source") == "community"
    channels = 3 if community else int(getattr(model, "in_channels", 3))  # community models take RGB (grey: inside)
    need = (desc.get("hints") or {}).get("size_requirements") or {}
    if need.get("square"):
        raise ValueError(f"{desc.get('arch')} needs square inputs (spandrel's size requirements); restore export "
                         "writes graphs for any height and width and cannot export it")
    multiple = max(2 if desc.get("arch") == "rrdbnet" and scale == 2 else 1, int(need.get("multiple_of") or 1))
    mode = "reflect" if community else "replicate"
    minimum = int(need.get("minimum") or 1)
    trace = TRACE_SIZE
    sizes = list(VERIFY_SIZES)
    if minimum > 1:  # below the minimum: the graph pads it (batch 2, odd sides, one side of 1 pixel)
        sizes.append((2, max(1, minimum // 2) | 1, 1))
    if fixed_size is not None:
        fh, fw = fixed_size
        bad = [s for s in fixed_size if s % multiple]
        if bad:
            raise ValueError(f"--fixed-size {fh}x{fw}: {desc.get('arch')} needs sides that are multiples of "
                             f"{multiple}; e.g. --fixed-size {fh + (-fh) % multiple}x{fw + (-fw) % multiple}")
        trace = (TRACE_SIZE[0], fh, fw)
        sizes = [(VERIFY_SIZES[0][0], fh, fw)]  # batch 2 at the one size (the real image is the batch-1 check)

    def build(net: nn.Module, dtype: torch.dtype) -> nn.Module:
        return SRGraph(net, scale, multiple, mode, minimum if community else 0)

    ref = build(model, torch.float32)
    rng = _fixed_rng()
    cases = []
    for n, h, w in sizes:
        x = rng.random((n, channels, h, w), dtype=np.float32)
        cases.append(Case(f"random {n}x{channels}x{h}x{w}", {"image": x}, ref(torch.from_numpy(x)).numpy()))
    real = _real_rgb(image)
    if real is not None and channels == 3:
        if fixed_size is None:
            x = _nchw(_odd_crop(real[1], REAL_SIDE))
            how = f"centre {x.shape[2]}x{x.shape[3]}"
        else:
            crop, how = _fixed_crop(real[1], *fixed_size)
            x = _nchw(crop)
        cases.append(Case(f"{real[0]} ({how})", {"image": x}, ref(torch.from_numpy(x)).numpy()))
    n, h, w = trace
    what = "RGB image, channels first" if channels == 3 else "image, channels first"
    if fixed_size is not None:
        return Plan(
            build=build, scale=scale, cases=cases, example=(torch.rand(n, channels, h, w),), fixed_size=(h, w),
            inputs=[Port("image", "float", ["batch", channels, h, w], "[0, 1]",
                         f"{what}; exactly {h} x {w} (the graph's fixed size: give it tiles of a bigger image)")],
            outputs=[Port("output", "float", ["batch", channels, scale * h, scale * w], "[0, 1]",
                          f"the image upscaled x{scale}, clamped")],
            dynamic={"image": {0: "batch"}, "output": {0: "batch"}})
    return Plan(
        build=build, scale=scale, cases=cases, example=(torch.rand(n, channels, h, w),), remedy=FIXED_REMEDY,
        inputs=[Port("image", "float", ["batch", channels, "height", "width"], "[0, 1]",
                     what + (f"; sides below {minimum} are padded inside the graph" if minimum > 1 else ""))],
        outputs=[Port("output", "float", ["batch", channels, f"{scale}*height", f"{scale}*width"], "[0, 1]",
                      f"the image upscaled x{scale}, clamped")],
        dynamic={"image": {0: "batch", 2: "height", 3: "width"},
                 "output": {0: "batch", 2: "out_height", 3: "out_width"}})


def _attribute_bits(rng: np.random.Generator, n: int, groups: Sequence[Sequence[int]], a: int) -> np.ndarray:
    """Random target vectors that respect the exclusive groups (one member of each group set)."""
    bits = (rng.random((n, a)) < 0.5).astype(np.float32)
    for g in groups:
        bits[:, list(g)] = 0
        bits[np.arange(n), np.asarray(g)[rng.integers(0, len(g), n)]] = 1
    return bits


@torch.no_grad()
def _stargan_plan(model: nn.Module, desc: dict[str, Any], image: Path | None) -> Plan:
    from restore.inference.translate import stargan_translate

    names = list(desc["attribute_names"])
    groups = desc.get("exclusive_groups", [])
    a, size = len(names), int(desc.get("image_size") or 128)
    def build(net: nn.Module, dtype: torch.dtype) -> nn.Module:
        return StarGANGraph(net)

    ref = build(model, torch.float32)
    rng = _fixed_rng()
    cases = []
    for n, h, w in VERIFY_SIZES:
        x, c = rng.random((n, 3, h, w), dtype=np.float32), _attribute_bits(rng, n, groups, a)
        cases.append(Case(f"random {n}x3x{h}x{w}", {"image": x, "attributes": c},
                          ref(torch.from_numpy(x), torch.from_numpy(c)).numpy()))
    real = _real_rgb(image)
    if real is not None:  # what restore infer computes: the photo's centred square at image_size, translated
        from restore.inference.translate import centre_square
        from restore.inference.upscale import _resize

        top, left, side = centre_square(*real[1].shape[:2])
        square = _resize(real[1][top:top + side, left:left + side], size, size)
        c = _attribute_bits(rng, 1, groups, a)
        out = stargan_translate(model, square, c[0], size)
        cases.append(Case(f"{real[0]} {size}x{size} (as restore infer)", {"image": _nchw(square), "attributes": c},
                          _nchw(out)))
    n, h, w = TRACE_SIZE
    return Plan(
        build=build, scale=1, cases=cases,
        example=(torch.rand(n, 3, h, w), torch.from_numpy(_attribute_bits(rng, n, groups, a))),
        inputs=[Port("image", "float", ["batch", 3, "height", "width"], "[0, 1]",
                     f"RGB photo, channels first; the model was trained on {size}x{size} face crops"),
                Port("attributes", "float", ["batch", a], "{0, 1}", f"target attributes in this order: "
                     f"{', '.join(names)}" + (f"; exclusive groups {groups}" if groups else ""))],
        outputs=[Port("output", "float", ["batch", 3, "height", "width"], "[0, 1]", "the photo with the target "
                      "attributes")],
        dynamic={"image": {0: "batch", 2: "height", 3: "width"}, "attributes": {0: "batch"},
                 "output": {0: "batch", 2: "height", 3: "width"}})


def _spade_reference(model: nn.Module, desc: dict[str, Any], ids: np.ndarray, inst: np.ndarray | None,
                     z: np.ndarray | None) -> np.ndarray:
    """What :func:`restore.inference.translate.spade_generate` computes, for a batch and a given style z."""
    from restore.data.labels import instance_edges, segmentation_input

    edges = torch.from_numpy(np.stack([instance_edges(i) for i in inst])) if inst is not None else None
    seg = segmentation_input(torch.from_numpy(ids), int(desc["num_classes"]), edges)
    out = model(seg, torch.from_numpy(z)) if z is not None else model(seg)
    return ((out.clamp(-1, 1) + 1) / 2).numpy()


def _blocks(rng: np.random.Generator, n: int, h: int, w: int, values: int) -> np.ndarray:
    """(n, h, w) int64 maps of random rectangles (label-map-like regions with boundaries, not per-pixel noise)."""
    out = np.zeros((n, h, w), dtype=np.int64)
    for k in range(n):
        for _ in range(12):
            top, left = rng.integers(0, h), rng.integers(0, w)
            out[k, top:top + rng.integers(1, h // 2 + 2), left:left + rng.integers(1, w // 2 + 2)] = \
                rng.integers(0, values)
    return out


@torch.no_grad()
def _spade_plan(model: nn.Module, desc: dict[str, Any], image: Path | None) -> Plan:
    from restore.inference.translate import resize_nearest, spade_label_ids

    classes = int(desc["num_classes"])
    use_instance, use_vae = bool(desc.get("use_instance")), bool(getattr(model, "use_vae", False))
    z_dim = int(getattr(model, "z_dim", 0))
    h, w = model.sample_shape()
    rng = _fixed_rng()

    def case(what: str, ids: np.ndarray, inst: np.ndarray) -> Case:
        z = rng.standard_normal((len(ids), z_dim), dtype=np.float32) if use_vae else None
        inputs = {"label": ids, **({"instance": inst} if use_instance else {}), **({"style": z} if use_vae else {})}
        return Case(what, inputs, _spade_reference(model, desc, ids, inst if use_instance else None, z))

    real = None
    if image is not None:  # read first: a label map that does not decode is refused before any work
        try:
            real = resize_nearest(spade_label_ids(image, desc), h, w)[None]
        except ValueError as err:
            raise ValueError(f"--verify-image {image}: not a label map of this model's label set: {err}") from None
    cases = []
    for n, _, _ in VERIFY_SIZES[:1]:  # one batch > 1 (the traced one is 1); the size is the model's own
        ids = _blocks(rng, n, h, w, classes)
        cases.append(case(f"random label maps {n}x{h}x{w}", ids, _blocks(rng, n, h, w, 50)))
    if real is not None:
        cases.append(case(f"{image.name} resized to {h}x{w}", real, real))  # the label map is its own instance map
    ports = [Port("label", "int64", ["batch", h, w], f"[0, {classes - 1}]", "class ids: "
                  + ", ".join(f"{i} {c}" for i, c in enumerate(desc.get("class_names") or [])))]
    example = [torch.from_numpy(_blocks(rng, TRACE_SIZE[0], h, w, classes))]
    if use_instance:
        ports.append(Port("instance", "int64", ["batch", h, w], "any", "instance ids (boundaries become the edge "
                          "channel); pass the label map again when you have none, as restore infer does"))
        example.append(torch.from_numpy(_blocks(rng, TRACE_SIZE[0], h, w, 50)))
    if use_vae:
        ports.append(Port("style", "float", ["batch", z_dim], "N(0, 1)", "style vector z"))
        example.append(torch.randn(TRACE_SIZE[0], z_dim))
    dynamic = {p.name: {0: "batch"} for p in ports}
    return Plan(
        build=lambda net, dtype: SPADEGraph(net, classes, use_instance, use_vae, dtype), scale=1, cases=cases,
        example=tuple(example),
        inputs=ports, outputs=[Port("output", "float", ["batch", 3, h, w], "[0, 1]", "RGB photo")],
        dynamic={**dynamic, "output": {0: "batch"}})


def make_plan(model: nn.Module, desc: dict[str, Any], image: Path | None = None,
              fixed_size: tuple[int, int] | None = None) -> Plan:
    """How a loaded generator (with its description: ``load_generator``'s pair) exports, and the checks: inputs with
    the fp32 model's outputs. ``fixed_size``: SR models only (SPADE's size is its architecture's; StarGAN's graph
    takes any size)."""
    task = desc.get("task", "sr")
    if fixed_size is not None and task != "sr":
        raise ValueError(f"--fixed-size is for SR models; a {task} model exports without it "
                         f"({'its size is fixed by its architecture' if task == 'spade' else 'it takes any size'})")
    if task == "sr":
        return _sr_plan(model, desc, image, fixed_size)
    if task == "stargan":
        return _stargan_plan(model, desc, image)
    if task == "spade":
        return _spade_plan(model, desc, image)
    raise ValueError(f"a {task} model cannot be exported: restore export takes sr, spade and stargan generators")


# ------------------------------------------------------------------------------------------ writing and checking
def _plain(model: nn.Module) -> nn.Module:
    """A copy with parametrizations (spectral norm) folded into plain weights: the same outputs in eval mode, and
    a graph without the power-iteration ops (``aten::vdot`` has no ONNX export).

    torch's ``remove_parametrizations`` deletes the property from the parametrized class, which a deep copy shares
    with the original, so the copy's modules are given back their plain class here instead and the original keeps
    working."""
    from torch.nn.utils import parametrize

    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not parametrize.is_parametrized(module):
            continue
        with torch.no_grad():
            values = {name: getattr(module, name).detach().clone() for name in module.parametrizations}
        module.__class__ = module.__class__.__bases__[0]  # the class before parametrize injected its own
        del module._modules["parametrizations"]
        for name, value in values.items():
            module.register_parameter(name, nn.Parameter(value, requires_grad=False))
    return model


def _batch_one(plan: Plan) -> Plan:
    """A fixed-size plan with the batch fixed at 1 as well, for networks that also compute with the batch size as a
    Python number (SwinIR's window reverse): batch-1 checks, the first image of each larger batch."""
    def one(ports: list[Port]) -> list[Port]:
        return [replace(p, shape=[1, *p.shape[1:]]) if p.shape and p.shape[0] == "batch" else p for p in ports]

    cases = [Case(c.what if len(c.reference) == 1 else c.what.replace(f"{len(c.reference)}x", "1x", 1),
                  {k: v[:1] for k, v in c.inputs.items()}, c.reference[:1]) for c in plan.cases]
    return replace(plan, inputs=one(plan.inputs), outputs=one(plan.outputs), dynamic={}, cases=cases)


def _cast_example(example: tuple[Tensor, ...], precision: str) -> tuple[Tensor, ...]:
    dtype = torch.float16 if precision == "fp16" else torch.float32
    return tuple(t.to(dtype) if t.is_floating_point() else t for t in example)


@contextmanager
def _quiet() -> Iterator[None]:
    """Tracer and deprecation warnings are about sizes baked into the graph; the check at other sizes finds those
    that matter, so they are not shown to users."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextmanager
def _output_silenced() -> Iterator[None]:
    """Drop what C++ code writes to file descriptors 1 and 2 meanwhile: torch's TorchScript-based ONNX exporter
    turns its log on by mistake (``setup_onnx_logging`` tests a function for truth) and prints the whole IR graph,
    thousands of lines, when an op does not export; the error itself still comes back as one line."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        for fd, copy_of in zip((1, 2), saved, strict=True):
            os.dup2(copy_of, fd)
            os.close(copy_of)


def _write_onnx(graph: nn.Module, plan: Plan, example: tuple[Tensor, ...], path: Path,
                metadata: dict[str, str]) -> None:
    import onnx

    with _quiet(), _output_silenced():
        torch.onnx.export(graph, example, str(path), dynamo=False, opset_version=OPSET,
                          input_names=[p.name for p in plan.inputs], output_names=[p.name for p in plan.outputs],
                          dynamic_axes=plan.dynamic, do_constant_folding=True)
    proto = onnx.load(str(path))
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"{metadata['name']}: exported by restore (docs/export.md)"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


class SizeGuard(nn.Module):
    """A fixed-size TorchScript graph behind a shape check: the traced graph would run on another size and give a
    wrong image (its windows and masks are the traced size's), where onnxruntime refuses the input; this gives
    TorchScript users the same refusal. ``batch`` 0: any batch."""

    def __init__(self, traced: nn.Module, batch: int, height: int, width: int):
        super().__init__()
        self.traced, self.batch, self.height, self.width = traced, batch, height, width

    def forward(self, image: Tensor) -> Tensor:
        n, h, w = image.shape[0], image.shape[-2], image.shape[-1]
        if h != self.height or w != self.width or (self.batch > 0 and n != self.batch):
            raise ValueError("this exported graph takes (" + (str(self.batch) if self.batch > 0 else "N")
                             + ", C, " + str(self.height) + ", " + str(self.width) + ") images only, got ("
                             + str(n) + ", C, " + str(h) + ", " + str(w) + "); tile bigger images (docs/export.md)")
        return self.traced(image)


def _write_torchscript(graph: nn.Module, plan: Plan, example: tuple[Tensor, ...], path: Path,
                       metadata: dict[str, str]) -> None:
    with _quiet():
        traced = torch.jit.trace(graph, example, check_trace=False)
        if plan.fixed_size is not None:
            batch = plan.inputs[0].shape[0]
            traced = torch.jit.script(SizeGuard(traced, batch if isinstance(batch, int) else 0, *plan.fixed_size))
        torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_META: json.dumps(metadata)})


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of an exported file (ONNX ``metadata_props`` or the TorchScript extra file), as strings;
    the format is told by the content (a TorchScript file is a zip archive), not the suffix."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"exported file not found: {path}")
    if not zipfile.is_zipfile(path):
        import onnx

        return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    files = {TORCHSCRIPT_META: ""}
    with _quiet():
        torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return json.loads(files[TORCHSCRIPT_META])


def _runner(fmt: str, path: Path) -> tuple[str, Any]:
    """(what runs the file, a function inputs-by-name -> first output as float32 numpy)."""
    if fmt == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 4  # a failing run is reported as one line by verify(), not logged as well
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def run_onnx(inputs: dict[str, np.ndarray]) -> np.ndarray:
            return session.run(None, {k: inputs[k] for k in names})[0].astype(np.float32)

        return f"onnxruntime {ort.__version__} (CPU)", run_onnx
    with _quiet():
        module = torch.jit.load(str(path), map_location="cpu")

    def run_torchscript(inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            return module(*(torch.from_numpy(v) for v in inputs.values())).float().numpy()

    return f"TorchScript (torch {torch.__version__}, CPU)", run_torchscript


@dataclass
class Check:
    """One verification: the input, the output shape and the largest |exported - PyTorch|."""

    what: str
    shape: tuple[int, ...]
    max_abs_diff: float


def verify(fmt: str, path: Path, plan: Plan, precision: str, tolerance: float) -> tuple[str, list[Check]]:
    """Run the exported file on every case of ``plan``; ExportCheckError when an output has the wrong shape, is not
    finite, or differs from PyTorch's by more than ``tolerance``."""
    runtime, run = _runner(fmt, path)
    checks = []
    for case in plan.cases:
        inputs = {p.name: case.inputs[p.name].astype(p.numpy_dtype(precision)) for p in plan.inputs}
        try:
            out = run(inputs)
        except Exception as err:  # a size or batch baked into the graph fails here, inside the runtime
            raise ExportCheckError(f"{runtime} cannot run the exported file on {case.what}: {_first_line(err)} "
                                   f"(most likely the graph does not take this size or batch: {BAKED}"
                                   f"{plan.remedy}); the file was not written") from None
        if out.shape != case.reference.shape:
            raise ExportCheckError(f"{runtime} gave shape {out.shape} for {case.what}, PyTorch "
                                   f"{case.reference.shape}: the size is not dynamic in the exported graph ({BAKED}"
                                   f"{plan.remedy}); the file was not written")
        diff = float(np.abs(out - case.reference).max()) if np.isfinite(out).all() else math.inf
        checks.append(Check(case.what, out.shape, diff))
        if not diff <= tolerance:
            raise ExportCheckError(f"{runtime} differs from PyTorch by up to {diff:.3g} on {case.what} (tolerance "
                                   f"{tolerance:g} for {precision}, docs/export.md#tolerances); the file was not "
                                   "written")
    return runtime, checks


@dataclass
class ExportResult:
    """A written and checked file: what ``restore export`` prints (:meth:`summary`)."""

    path: Path
    format: str
    precision: str
    metadata: dict[str, str]
    runtime: str
    checks: list[Check]
    tolerance: float

    def summary(self) -> str:
        lines = [f"wrote {self.path} ({self.format}, {self.precision}, {self.path.stat().st_size / 2**20:.1f} MiB)",
                 f"verified with {self.runtime} against PyTorch (fp32), tolerance {self.tolerance:g}:"]
        lines += [f"  {c.what}: output {'x'.join(map(str, c.shape))}, max abs diff {c.max_abs_diff:.3g}"
                  for c in self.checks]
        return "\n".join(lines)


def _metadata(desc: dict[str, Any], name: str, plan: Plan, precision: str) -> dict[str, str]:
    from restore import __version__

    kept = {k: v for k, v in desc.items() if k not in ("data", "dtype")}  # data: the training machine's paths

    def ports(items: list[Port]) -> str:  # dtypes as the file has them: float32 / float16 / int64
        return json.dumps([{**vars(p), "dtype": np.dtype(p.numpy_dtype(precision)).name} for p in items])

    fixed = {"fixed_size": json.dumps(list(plan.fixed_size))} if plan.fixed_size is not None else {}
    return {"name": name, "task": str(desc.get("task", "sr")), "arch": str(desc.get("arch")), "scale": str(plan.scale),
            "precision": precision, "inputs": ports(plan.inputs), "outputs": ports(plan.outputs), **fixed,
            "restore": json.dumps(kept, default=str), "exporter": f"restore {__version__}, torch {torch.__version__}"}


def _tolerance(precision: str, tolerance: float | None) -> float:
    limit = TOLERANCES[precision] if tolerance is None else float(tolerance)
    if not limit >= 0:
        raise ValueError(f"--tolerance must be a number >= 0, got {tolerance!r}")
    return limit


def check_output(output: str | Path, overwrite: bool = False) -> Path:
    """The output path, refused (ValueError / FileNotFoundError naming it) when its folder is missing or the file
    exists without ``overwrite``."""
    output = Path(output)
    if output.is_dir():
        raise ValueError(f"-o {output} is a folder; give a file name, e.g. {output / 'model.onnx'}")
    if not output.parent.is_dir():
        raise FileNotFoundError(f"-o {output}: the folder {output.parent} does not exist (create it first)")
    if output.exists() and not overwrite:
        raise ValueError(f"-o {output} exists; pass --overwrite to replace it")
    return output


def export_model(model: nn.Module, desc: dict[str, Any], fmt: str, output: str | Path, name: str,
                 fp16: bool = False, tolerance: float | None = None, verify_image: str | Path | None = None,
                 overwrite: bool = False, fixed_size: str | Sequence[int] | None = None) -> ExportResult:
    """Write ``model`` (fp32, as ``load_generator`` returns it, with its description) as ``fmt`` to ``output``
    after checking the file against the model; ``tolerance`` None: :data:`TOLERANCES` of the precision.
    ``verify_image``: a real image (a label map for SPADE) checked besides the random inputs. ``fixed_size``
    ("HxW" or (H, W)): an SR graph that takes exactly that input size (batch still dynamic)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: unknown export format; choose one of {', '.join(FORMATS)}")
    precision = "fp16" if fp16 else "fp32"
    limit = _tolerance(precision, tolerance)
    fixed = parse_fixed_size(fixed_size) if fixed_size is not None else None
    output = check_output(output, overwrite)
    image = Path(verify_image) if verify_image is not None else None
    if image is not None and not image.is_file():
        raise FileNotFoundError(f"--verify-image {image}: no such file")
    if fp16 and (desc.get("hints") or {}).get("fp16") is False:
        raise ValueError(f"{name} ({desc.get('arch')}) does not support fp16 (spandrel says so); export it without "
                         "--fp16")
    model = model.float().cpu().eval()
    plan = make_plan(model, desc, image, fixed)
    dtype = torch.float16 if fp16 else torch.float32
    graph = plan.build(_plain(model).to(dtype), dtype).eval()
    example = _cast_example(plan.example, precision)

    def write_and_verify(plan: Plan, tmp: Path) -> tuple[dict[str, str], str, list[Check]]:
        metadata = _metadata(desc, name, plan, precision)
        try:
            with torch.no_grad():
                if fmt == "onnx":
                    _write_onnx(graph, plan, example, tmp, metadata)
                else:
                    _write_torchscript(graph, plan, example, tmp, metadata)
        except Exception as err:  # an op the exporter does not know: one line naming the model, nothing written
            raise ExportCheckError(f"{name} ({desc.get('arch')}) cannot be exported to {fmt} {precision}: "
                                   f"{_first_line(err)}") from None
        return metadata, *verify(fmt, tmp, plan, precision, limit)

    with atomic_output(output) as tmp:
        try:
            metadata, runtime, checks = write_and_verify(plan, tmp)
        except ExportCheckError:
            if plan.fixed_size is None or "batch" not in str(plan.inputs[0].shape[0]):
                raise
            metadata, runtime, checks = write_and_verify(_batch_one(plan), tmp)  # a batch baked in too (SwinIR)
    return ExportResult(output, fmt, precision, metadata, runtime, checks, limit)


# ------------------------------------------------------------------------------------------ from a model name
def resolve_model(model: str | Path, weights: str | Path = "weights") -> Path:
    """A weights file: ``model`` itself when it is a file, else the published model of that name (its card's
    name or file stem) in the ``weights`` folder; FileNotFoundError listing the published names otherwise."""
    from restore.hub.cards import read_card
    from restore.hub.pipelines import published

    path = Path(model)
    if path.is_file():
        return path
    found: dict[str, Path] = {}
    for files in published(weights).values():
        for file in files:
            found[file.stem] = file
            found.setdefault(str(read_card(file.with_suffix(".yml"))["name"]), file)
    if str(model) in found:
        return found[str(model)]
    names = ", ".join(sorted({f.stem for f in found.values()})) or "none"
    raise FileNotFoundError(f"--model {model}: no such file, nor a published model in {weights}/ (published: "
                            f"{names})")


EXAMPLES = {"sr": "sr_scene.png", "stargan": "sr_scene.png", "spade": "facade_labels.png"}
"""The bundled example (``weights/examples/``) a task's export is checked on when no --verify-image is given (no
face photo is bundled: a StarGAN export is checked on the landscape, which tests the numbers as well)."""


def bundled_example(desc: dict[str, Any], model_path: Path) -> Path | None:
    """The task's example beside the model (``<folder>/examples/``) or in the repository's ``weights/examples/``;
    SPADE's only for models of its label set (CMP Facades)."""
    task = desc.get("task", "sr")
    if task not in EXAMPLES or (task == "spade" and desc.get("label_set") != "cmp_facades"):
        return None
    for folder in (model_path.parent / "examples", Path(__file__).resolve().parents[2] / "weights" / "examples"):
        if (folder / EXAMPLES[task]).is_file():
            return folder / EXAMPLES[task]
    return None


def export(model: str | Path, fmt: str, output: str | Path, fp16: bool = False, tolerance: float | None = None,
           verify_image: str | Path | None = None, overwrite: bool = False,
           weights: str | Path = "weights", fixed_size: str | Sequence[int] | None = None) -> ExportResult:
    """``restore export``: load a weights file or published model (as ``restore infer`` does) and export it,
    checked; ``verify_image`` None: the bundled example of its task when found; ``fixed_size`` "HxW": see
    :func:`export_model`."""
    from restore.hub.pipelines import load_pipeline

    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: unknown export format; choose one of {', '.join(FORMATS)}")
    check_output(output, overwrite)
    _tolerance("fp16" if fp16 else "fp32", tolerance)
    if fixed_size is not None:
        parse_fixed_size(fixed_size)  # a bad value is refused before the model is loaded
    if verify_image is not None and not Path(verify_image).is_file():
        raise FileNotFoundError(f"--verify-image {verify_image}: no such file")
    path = resolve_model(model, weights)
    pipe = load_pipeline(path, device="cpu")
    image = verify_image if verify_image is not None else bundled_example(pipe.desc, path)
    return export_model(pipe.model, pipe.desc, fmt, output, pipe.name, fp16=fp16, tolerance=tolerance,
                        verify_image=image, overwrite=overwrite, fixed_size=fixed_size)
