"""Seamless tiled inference for SR generators on images of any size.

Why tiles: a generator's activations at 4x output size do not fit on a GPU for a 4000x3000 photo. Each LR window
of at most ``tile`` x ``tile`` pixels goes to the device alone; its upscaled output comes straight back and is
accumulated on the CPU in float32, so device memory is bounded by one window whatever the image size.

Layout, per axis (rows and columns are tiled independently, tiles are their product):

* windows of exactly ``tile`` LR pixels (the whole axis when it is not longer than ``tile``) are spread evenly from
  one image border to the other, consecutive windows overlapping by at least ``2 * overlap``;
* the *cores* of the windows partition the image: the boundary between two neighbours lies in the middle of their
  overlap, so every window sees at least ``overlap`` LR pixels of real context beyond its core on each inner side.
  At the image borders there is no margin (the core reaches the border) and so no ramp.

Blending: a window's output has weight 1 in its core; past the core edge the weight falls along a raised-cosine
ramp to 0 at ``overlap / 2`` LR pixels and stays 0 in the rest of the margin. The outer half of the margin is thus
pure context that absorbs the model's zero-padding effects at the window edge, and the inner half is a crossfade:
around each core boundary the two neighbours are mixed over a band of ``overlap`` LR pixels (weight 1/2 each at the
boundary). Weights are normalised by their sum (per axis, which is exact for a product grid), so a constant image
stays constant and no weight-sum buffer is needed. Consequence: for a model whose receptive-field radius is at most
``overlap / 2`` LR pixels every blended pixel comes from windows that saw all of its context, and the tiled result
equals the untiled one up to float rounding; wider receptive fields give small, smoothly blended differences
instead of visible seams.

Out of memory: when a window does not fit on the device (``torch.OutOfMemoryError``, which CUDA raises), the tile is
halved and the image run again, down to :data:`OOM_FLOOR` pixels (or the model's minimum input side), with one note
on stderr; later images of the same model start at the tile that fitted. A model may carry
:class:`TilingHints` (community models carry spandrel's): a model that advises against tiling runs in one pass.
"""

from __future__ import annotations

import math
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

MIN_TILE = 8
MIN_CORE = 8
OOM_FLOOR = 32
"""Smallest tile (LR pixels) the out-of-memory fallback halves down to; a model's larger minimum side wins."""


@dataclass(frozen=True)
class TilingHints:
    """What a model says about being tiled, as the attribute ``model.tiling_hints`` (community models carry
    spandrel's advice): ``advice`` "supported" (tile freely), "discouraged" (the model relies on global context, so
    tiles leave artefacts) or "internal" (it tiles itself); the last two run each image in one pass, tiled only when
    the device runs out of memory. ``minimum``: the smallest input side the model takes (the out-of-memory floor
    never goes below it). ``name`` is how notes call the model."""

    name: str = "the model"
    advice: str = "supported"
    minimum: int = 0


def tiling_hints(model: Any) -> TilingHints:
    """The model's :class:`TilingHints`, or the default (tiling supported, no minimum)."""
    hints = getattr(model, "tiling_hints", None)
    return hints if isinstance(hints, TilingHints) else TilingHints()


class _PerModel:
    """What :func:`tiled_forward` remembers about a model between calls (the tile that fitted after running out of
    memory, the notes already given), kept only as long as the model lives."""

    def __init__(self) -> None:
        self._data: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()

    def of(self, model: Any) -> dict[str, Any]:
        try:
            return self._data.setdefault(model, {})
        except TypeError:  # not weakly referenceable (a bound method): nothing is remembered
            return {}


_MEMORY = _PerModel()


def _note_once(model: Any, kind: str, text: str) -> None:
    """One ``note:`` line on stderr per model and kind (tqdm.write: it keeps a progress bar intact)."""
    said = _MEMORY.of(model).setdefault("said", set())
    if kind not in said:
        said.add(kind)
        from tqdm import tqdm

        tqdm.write(f"note: {text}", file=sys.stderr)


def normalise_tile(tile: int | None) -> int | None:
    """``tile`` as :func:`tiled_forward` uses it: 0 (what ``--tile 0`` and the demo's slider give) and None both
    mean one pass over the whole image."""
    if isinstance(tile, int) and not isinstance(tile, bool) and tile == 0:
        return None
    return tile


def _check_options(scale: int, tile: int | None, overlap: int) -> None:
    """Raise a ValueError naming the bad option; every option is checked whatever the image size."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise ValueError(f"overlap must be an integer >= 0 (LR pixels), got {overlap!r}")
    if tile is None:
        return
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < MIN_TILE:
        raise ValueError(f"tile must be an integer >= {MIN_TILE} (LR pixels) or 0 / None for no tiling, got {tile!r}")
    if tile - 2 * overlap < MIN_CORE:
        raise ValueError(
            f"tile {tile} is too small for overlap {overlap}: each tile needs {overlap} LR pixels of context on both "
            f"sides plus a core of at least {MIN_CORE}, so tile must be >= 2 * overlap + {MIN_CORE} = "
            f"{2 * overlap + MIN_CORE} (raise tile or lower overlap)"
        )


def axis_tiles(n: int, tile: int | None, overlap: int) -> list[tuple[int, int, int, int]]:
    """Split one axis of ``n`` LR pixels into windows: ``(win_start, win_end, core_start, core_end)`` each.

    Windows are ``tile`` long (or the whole axis when ``tile`` is None or >= n), evenly spaced, and overlap their
    neighbours by >= ``2 * overlap``; cores are contiguous, disjoint and cover ``[0, n)``.
    """
    if tile is None or n <= tile:
        return [(0, n, 0, n)]
    k = math.ceil((n - tile) / (tile - 2 * overlap)) + 1
    starts = [(i * (n - tile) + (k - 1) // 2) // (k - 1) for i in range(k)]
    bounds = [0]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        shared = a + tile - b  # length of the overlap of two neighbouring windows, >= 2 * overlap
        bounds.append(b + shared // 2)
    bounds.append(n)
    return [(s, s + tile, c0, c1) for s, c0, c1 in zip(starts, bounds[:-1], bounds[1:], strict=True)]


def axis_weights(tiles: list[tuple[int, int, int, int]], scale: int, overlap: int) -> list[Tensor]:
    """Per-window 1-D HR blending weights (float32, length ``scale * window``), normalised so they sum to 1.

    Raw weight: 1 inside the core, a raised cosine falling to 0 over ``overlap / 2`` LR pixels past the core edge
    (measured at HR pixel centres), 0 beyond. Normalising per axis makes the 2-D outer products sum to 1 as well.
    """
    n_hr = max(scale * t[1] for t in tiles)
    half = scale * overlap / 2.0
    raw: list[Tensor] = []
    total = torch.zeros(n_hr, dtype=torch.float64)
    for w0, w1, c0, c1 in tiles:
        centres = torch.arange(scale * w0, scale * w1, dtype=torch.float64) + 0.5
        dist = torch.clamp(torch.maximum(scale * c0 - centres, centres - scale * c1), min=0.0)
        if half > 0:
            w = torch.where(dist < half, 0.5 * (1.0 + torch.cos(math.pi * dist.clamp(max=half) / half)), 0.0)
        else:
            w = (dist == 0).to(torch.float64)
        raw.append(w)
        total[scale * w0:scale * w1] += w
    return [(w / total[scale * w0:scale * w1]).float() for w, (w0, w1, _, _) in zip(raw, tiles, strict=True)]


def model_device(model: Callable[[Tensor], Tensor]) -> torch.device:
    """Where ``model`` runs: the device of its first parameter or buffer (nn.Module), else the CPU."""
    if isinstance(model, nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    return torch.device("cpu")


@torch.inference_mode()
def tiled_forward(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    scale: int,
    tile: int | None = 256,
    overlap: int = 16,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Tensor:
    """Run ``model`` on ``x`` window by window and blend the outputs seamlessly (see the module docstring).

    x: (N, C, H, W) float, usually (1, 3, H, W) RGB in [0, 1] on the CPU. Returns (N, C', scale*H, scale*W) float32
    on the CPU (channels-last in memory, so ``out[0].permute(1, 2, 0).numpy()`` is a copy-free HWC view).
    ``tile``: LR window size sent to the model (None or 0: one pass; no tiling along an axis not longer than it).
    ``overlap``: LR pixels of context kept around each core. ``device``: where the model runs (default: the model's
    parameters' device). ``dtype``: cast of each window (e.g. torch.float16 on CUDA; reduced-precision floats run
    under autocast so fp32 weights work). ``progress(done, total)`` is called after each window.

    When the device runs out of memory the tile is halved and the image run again (down to :data:`OOM_FLOOR` or
    the model's minimum side; a ValueError past it); a model whose :class:`TilingHints` advise against tiling runs
    in one pass. Each is said once per model on stderr.
    """
    tile = normalise_tile(tile)
    _check_options(scale, tile, overlap)
    if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[0] < 1:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"x must be a 4-D (N, C, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor (values in [0, 1]), got dtype {x.dtype}")
    _, _, h, w = x.shape
    if h < 1 or w < 1:
        raise ValueError(f"x has an empty spatial size {h}x{w}")
    dev = torch.device(device) if device is not None else model_device(model)
    hints = tiling_hints(model)
    if tile is not None and hints.advice != "supported":
        _note_once(model, "advice", f"{hints.name} advises against tiling ({hints.advice}); each image runs in one "
                                    "pass, in tiles only if the device runs out of memory")
        tile = None
    memory = _MEMORY.of(model)
    fitted = memory.get("fitted")
    if fitted is not None and (tile is None or tile > fitted):  # a tile that fitted after running out of memory
        tile, overlap = fitted, _overlap_for(fitted, overlap)
    asked, floor = tile, max(OOM_FLOOR, hints.minimum)
    while True:
        try:
            out = _blend(model, x, scale, tile, overlap, dev, dtype, progress)
        except torch.cuda.OutOfMemoryError:  # CUDA's out of memory (torch.OutOfMemoryError); constructible on CPU
            tried = min(tile, max(h, w)) if tile is not None else max(h, w)  # a tile beyond the image is one pass
            if tried <= floor:
                raise ValueError(
                    f"out of memory on {dev} even with {tried}-pixel tiles (the floor is {floor}) for a {h}x{w} image; "
                    "free memory on the device (other processes), or run on the CPU with --device cpu"
                ) from None
            _release(dev)
            tile = max(floor, tried // 2)
            overlap = _overlap_for(tile, overlap)
            memory["fitted"] = tile
            continue
        if tile != asked:
            was = f"{asked}-pixel tiles" if asked is not None else "one pass"
            _note_once(model, f"oom {tile}", f"out of memory on {dev} with {was} ({h}x{w} image); ran with "
                                             f"{tile}-pixel tiles (overlap {overlap}), which later images start from")
        return out


def _overlap_for(tile: int, overlap: int) -> int:
    """The overlap a smaller ``tile`` can keep: at most what leaves a core of :data:`MIN_CORE`."""
    return max(0, min(overlap, (tile - MIN_CORE) // 2))


def _release(dev: torch.device) -> None:
    """Give the failed pass's cached blocks back before the retry."""
    if dev.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _blend(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    scale: int,
    tile: int | None,
    overlap: int,
    dev: torch.device,
    dtype: torch.dtype | None,
    progress: Callable[[int, int], None] | None,
) -> Tensor:
    """One tiled pass of :func:`tiled_forward` with fixed options."""
    n, _, h, w = x.shape
    autocast = dtype in (torch.float16, torch.bfloat16) and dev.type in ("cuda", "cpu")

    rows, cols = axis_tiles(h, tile, overlap), axis_tiles(w, tile, overlap)
    row_w = [t.to(dev) for t in axis_weights(rows, scale, overlap)]
    col_w = [t.to(dev) for t in axis_weights(cols, scale, overlap)]
    total = len(rows) * len(cols)
    out: Tensor | None = None
    done = 0
    for (r0, r1, _, _), wr in zip(rows, row_w, strict=True):
        for (c0, c1, _, _), wc in zip(cols, col_w, strict=True):
            # contiguous CPU copy first: one memcpy to the device, and the model can never write into ``x``
            patch = x[:, :, r0:r1, c0:c1].contiguous().to(dev, non_blocking=True)
            patch = patch.to(dtype) if dtype is not None else patch.float()
            with torch.autocast(dev.type, dtype=dtype, enabled=autocast):
                y = model(patch)
            ph, pw = r1 - r0, c1 - c0
            if not isinstance(y, Tensor) or y.dim() != 4 or y.shape[0] != n or y.shape[2:] != (scale * ph, scale * pw):
                got = "x".join(str(s) for s in y.shape[2:]) if isinstance(y, Tensor) and y.dim() == 4 else (
                    tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__)
                raise ValueError(
                    f"model output is {got} for a {ph}x{pw} input (batch {n}); expected "
                    f"{scale * ph}x{scale * pw} (N={n}) for scale {scale}: check that the model's scale matches"
                )
            if out is None:
                out = torch.empty(n, y.shape[1], scale * h, scale * w, dtype=torch.float32,
                                  memory_format=torch.channels_last).zero_()
            elif y.shape[1] != out.shape[1]:
                raise ValueError(f"model output has {y.shape[1]} channels for one tile and {out.shape[1]} for another")
            y = y.float() * wr[:, None] * wc[None, :]
            out[:, :, scale * r0:scale * r1, scale * c0:scale * c1] += y.cpu()
            done += 1
            if progress is not None:
                progress(done, total)
    assert out is not None
    return out
