"""Real-ESRGAN's second-order degradations ("realesrgan") for the SR data path, and for evaluation.

Real-ESRGAN (Wang et al., ICCV-W 2021, Sec. 3 and Fig. 2) makes the LR image of a photo with two rounds of
blur -> random resize -> Gaussian or Poisson noise -> JPEG, then the final resize back to the LR size with a sinc
filter, in random order with the last JPEG. Its defaults are those of Real-ESRGAN's ``train_realesrgan_x4plus.yml``
/ ``train_realesrnet_x4plus.yml`` (xinntao/Real-ESRGAN, options/): the kernel lists, probabilities, sigma and beta
ranges of the data set block, and the resize/noise/JPEG options of the model block.

The parts are basicsr's own: the kernels (``bivariate_Gaussian``, ``bivariate_generalized_Gaussian``,
``bivariate_plateau``, ``circular_lowpass_kernel``), ``filter2D``, ``DiffJPEG`` and ``USMSharp``; the noise follows
``generate_gaussian_noise_pt`` / ``generate_poisson_noise_pt``.

Determinism, and how it departs from Real-ESRGAN (docs/real_world_sr.md):

* Every random number of an item comes from the item's own ``np.random.Generator`` (:func:`draw_item`; the data
  set passes ``default_rng([seed, epoch, index])``), never from Python's, numpy's or torch's global generators.
  basicsr's ``random_*`` helpers draw from those, so we draw their parameters ourselves, with Real-ESRGAN's
  distributions, and call basicsr's deterministic kernel builders. The noise images are drawn on the training
  device from a per-item ``torch.Generator`` seeded by a number the item's generator draws (basicsr's noise
  helpers call the global ``torch.randn`` / ``torch.poisson``, so the noise is drawn here with basicsr's formulas).
  An item is therefore a function of (seed, epoch, index) and the device: CPU and CUDA noise differ.
* Real-ESRGAN draws the resize scale, interpolation, noise type and sinc/JPEG order once per *batch* and mixes
  batches through a 180-pair pool to regain diversity. Here every item draws its own, so no pool is needed and an
  item does not depend on which items share its batch. Items whose sizes differ run one by one between the
  first blur and the final resize; the rest runs batched.
* Real-ESRGAN degrades a 400x400 crop and then crops ``gt_size``; here the worker's ``gt_size`` crop is degraded.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from restore.data.device_ops import downscale_batch
from restore.registry import OptionValueError, did_you_mean

KernelName = Literal["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
KERNELS: tuple[str, ...] = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
ResizeMode = Literal["area", "bilinear", "bicubic"]
RESIZE_MODES: tuple[str, ...] = ("area", "bilinear", "bicubic")
UPDOWN: tuple[str, ...] = ("up", "down", "keep")
USM_RADIUS = 51  # basicsr USMSharp(radius=50) rounds up to an odd 51x51 Gaussian; its reflect padding needs 26 px

# Real-ESRGAN's sinc cutoffs (basicsr/data/realesrgan_dataset.py): omega_c ~ U[pi/3, pi] for kernels below 13 px,
# U[pi/5, pi] otherwise; the final sinc filter always U[pi/3, pi].
SINC_SMALL, SINC_LARGE, SINC_SIZE_SPLIT = (math.pi / 3, math.pi), (math.pi / 5, math.pi), 13


def _basicsr(submodule: str) -> ModuleType:
    from restore.compat import import_basicsr  # deferred: installs the torchvision alias basicsr needs

    with warnings.catch_warnings():  # importing basicsr imports scipy.ndimage.filters (deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        return import_basicsr(submodule)


# ----------------------------------------------------------------------------------------------- options
@dataclass(frozen=True)
class DegradationOptions:
    """``data.train.degradation``: how the training LR is made from the HR crop.

    ``type: bicubic`` (the default) is MATLAB's antialiased bicubic downscale, clipped: the SR benchmark protocol.
    ``type: realesrgan`` is Real-ESRGAN's second-order pipeline; every other key belongs to it. The defaults are
    Real-ESRGAN's x4plus training options (``train_realesrgan_x4plus.yml``); the ``*_prob`` keys marked "ours"
    and ``kernel_range``, ``resize_modes``, ``sinc_first_prob`` are values Real-ESRGAN hard-codes, exposed so a
    stage can be switched off. Ranges are ``[low, high]``, drawn uniformly.
    """

    type_keys: ClassVar[dict[str, tuple[str, ...]]] = {"bicubic": ()}  # bicubic takes no other key (config.py)
    type: Literal["bicubic", "realesrgan"] = "bicubic"
    usm_gt: bool = False  # USM-sharpened GT as the L1/perceptual target and as the source of the LR (Real-ESRGAN)
    kernel_range: tuple[int, int] = (7, 21)  # odd kernel sizes 7, 9, ..., 21
    # first stage (the data set block of train_realesrgan_x4plus.yml)
    blur_prob: float = 1.0  # ours: Real-ESRGAN always blurs in the first stage
    kernel_list: tuple[KernelName, ...] = KERNELS  # type: ignore[assignment]
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    betap_range: tuple[float, float] = (1.0, 2.0)
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)  # up, down, keep
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5  # else Poisson noise
    noise_range: tuple[float, float] = (1.0, 30.0)  # Gaussian sigma on the 0..255 scale
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_prob: float = 1.0  # ours: Real-ESRGAN always compresses
    jpeg_range: tuple[float, float] = (30.0, 95.0)
    # second stage
    second_blur_prob: float = 0.8
    kernel_list2: tuple[KernelName, ...] = KERNELS  # type: ignore[assignment]
    kernel_prob2: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob2: float = 0.1
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    betag_range2: tuple[float, float] = (0.5, 4.0)
    betap_range2: tuple[float, float] = (1.0, 2.0)
    resize_prob2: tuple[float, float, float] = (0.3, 0.4, 0.3)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob2: float = 0.5
    noise_range2: tuple[float, float] = (1.0, 25.0)
    poisson_scale_range2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob2: float = 0.4
    jpeg_prob2: float = 1.0  # ours
    jpeg_range2: tuple[float, float] = (30.0, 95.0)
    # the final step: [resize back + sinc] then JPEG with sinc_first_prob, else JPEG then [resize back + sinc]
    final_sinc_prob: float = 0.8
    sinc_first_prob: float = 0.5
    resize_modes: tuple[ResizeMode, ...] = RESIZE_MODES  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.type not in ("bicubic", "realesrgan"):
            raise OptionValueError("type", f"must be bicubic or realesrgan, got {self.type!r}"
                                           f"{did_you_mean(str(self.type), ['bicubic', 'realesrgan'])}")
        if self.type == "bicubic":
            changed = [f.name for f in fields(self) if f.name != "type" and getattr(self, f.name) != f.default]
            if changed:
                raise OptionValueError(changed[0], "is an option of degradation type realesrgan, but type is "
                                                   "bicubic; set type: realesrgan or remove it")
            return
        for f in fields(self):
            if f.name.endswith("_prob") and f.name not in ("kernel_prob", "kernel_prob2", "resize_prob",
                                                             "resize_prob2"):
                _probability(f.name, getattr(self, f.name))
        lo, hi = _pair("kernel_range", self.kernel_range, minimum=1)
        if lo % 2 == 0 or hi % 2 == 0:
            raise OptionValueError("kernel_range", f"must be two odd kernel sizes [low, high], got {[lo, hi]}")
        for suffix in ("", "2"):
            _kernels(f"kernel_list{suffix}", getattr(self, f"kernel_list{suffix}"), f"kernel_prob{suffix}",
                     getattr(self, f"kernel_prob{suffix}"))
            _pair(f"blur_sigma{suffix}", getattr(self, f"blur_sigma{suffix}"), minimum=0, open_min=True)
            for beta in ("betag", "betap"):
                key = f"{beta}_range{suffix}"
                b_lo, b_hi = _pair(key, getattr(self, key), minimum=0, open_min=True)
                if not b_lo <= 1 <= b_hi:  # Real-ESRGAN draws beta below or above 1 with equal odds
                    raise OptionValueError(key, f"must contain 1 (Real-ESRGAN draws beta from [low, 1] or "
                                                f"[1, high] with equal odds), got {[b_lo, b_hi]}")
            _distribution(f"resize_prob{suffix}", getattr(self, f"resize_prob{suffix}"), "(up, down, keep)")
            key = f"resize_range{suffix}"
            r_lo, r_hi = _pair(key, getattr(self, key), minimum=0, open_min=True)
            if not r_lo <= 1 <= r_hi:
                raise OptionValueError(key, f"must contain 1 (down-scales are drawn from [low, 1], up-scales "
                                            f"from [1, high]), got {[r_lo, r_hi]}")
            _pair(f"noise_range{suffix}", getattr(self, f"noise_range{suffix}"), minimum=0)
            _pair(f"poisson_scale_range{suffix}", getattr(self, f"poisson_scale_range{suffix}"), minimum=0)
            key = f"jpeg_range{suffix}"
            q_lo, q_hi = _pair(key, getattr(self, key), minimum=1)
            if q_hi >= 100:  # DiffJPEG's quality factor (200 - 2q) / 100 is 0 at q = 100: a division by zero
                raise OptionValueError(key, f"must be JPEG qualities in [1, 100), got {[q_lo, q_hi]}")
        if not self.resize_modes:
            raise OptionValueError("resize_modes", f"must list at least one of {', '.join(RESIZE_MODES)}")
        for i, mode in enumerate(self.resize_modes):
            if mode not in RESIZE_MODES:
                raise OptionValueError(f"resize_modes[{i}]", f"unknown interpolation {mode!r}"
                                                             f"{did_you_mean(str(mode), RESIZE_MODES)}; "
                                                             f"valid: {', '.join(RESIZE_MODES)}")

    @property
    def kernel_sizes(self) -> tuple[int, ...]:
        """The odd kernel sizes drawn uniformly (Real-ESRGAN: 7, 9, ..., 21)."""
        return tuple(range(self.kernel_range[0], self.kernel_range[1] + 1, 2))

    @property
    def pad_to(self) -> int:
        """Every kernel is zero-padded to this size so that a batch of them stacks (Real-ESRGAN pads to 21)."""
        return self.kernel_range[1]


def _probability(key: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise OptionValueError(key, f"must be a probability in [0, 1], got {value}")


def _pair(key: str, value: Sequence[float], minimum: float, open_min: bool = False) -> tuple[float, float]:
    if len(value) != 2:
        raise OptionValueError(key, f"must be a range [low, high], got {list(value)}")
    lo, hi = value
    if lo > hi:
        raise OptionValueError(key, f"must be a range [low, high] with low <= high, got {[lo, hi]}")
    if lo < minimum or (open_min and lo == minimum):
        bound = f"> {minimum}" if open_min else f">= {minimum}"
        raise OptionValueError(key, f"must have low {bound}, got {[lo, hi]}")
    return lo, hi


def _distribution(key: str, probs: Sequence[float], what: str) -> None:
    if any(not 0 <= p <= 1 for p in probs) or abs(sum(probs) - 1) > 1e-6:
        raise OptionValueError(key, f"must be probabilities {what} in [0, 1] that sum to 1, got {list(probs)}")


def _kernels(list_key: str, names: Sequence[str], prob_key: str, probs: Sequence[float]) -> None:
    if not names:
        raise OptionValueError(list_key, f"must name at least one kernel of: {', '.join(KERNELS)}")
    for i, name in enumerate(names):
        if name not in KERNELS:
            raise OptionValueError(f"{list_key}[{i}]", f"unknown kernel {name!r}{did_you_mean(str(name), KERNELS)}; "
                                                       f"valid: {', '.join(KERNELS)}")
    if len(probs) != len(names):
        raise OptionValueError(prob_key, f"must give one probability per kernel in {list_key} ({len(names)}), "
                                         f"got {len(probs)}: {list(probs)}")
    _distribution(prob_key, probs, f"(one per kernel in {list_key})")


def as_options(spec: DegradationOptions | Mapping[str, Any] | None, default_type: str = "bicubic"
               ) -> DegradationOptions:
    """A :class:`DegradationOptions` from itself, a plain mapping (Python callers) or None (``default_type``)."""
    if spec is None:
        return DegradationOptions(type=default_type)  # type: ignore[arg-type]
    if isinstance(spec, DegradationOptions):
        return spec
    if isinstance(spec, Mapping):
        known = {f.name for f in fields(DegradationOptions)}
        for key in spec:
            if key not in known:
                raise OptionValueError(str(key), f"is not a degradation option{did_you_mean(str(key), sorted(known))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
        return DegradationOptions(**values)
    raise TypeError(f"a degradation spec must be DegradationOptions, a mapping or None, got {type(spec).__name__}")


def size_problem(opts: DegradationOptions, size: int, scale: int) -> str | None:
    """Why an HR side of ``size`` px is too small for the pipeline at ``scale`` (None when it is not): a kernel's
    reflect padding needs more pixels than half the kernel wherever it is applied, and each resize must keep a pixel.
    The message reads after the name of the size (``gt_size is too small ...``)."""
    if opts.type != "realesrgan":
        return None
    pad = opts.pad_to // 2
    lr = size // scale
    first = math.floor(size * (opts.resize_range[0] if opts.resize_prob[1] > 0 else 1.0))  # down-scales reach low
    second = int(lr * (opts.resize_range2[0] if opts.resize_prob2[1] > 0 else 1.0))
    checks = [
        (opts.usm_gt, size, USM_RADIUS // 2 + 1, f"usm_gt blurs the HR with a {USM_RADIUS}x{USM_RADIUS} kernel"),
        (opts.blur_prob > 0, size, pad + 1, f"the first blur pads the HR by {pad} px"),
        (True, first, 1, "the first resize must keep a pixel"),
        (opts.second_blur_prob > 0, first, pad + 1,
         f"the second blur pads the image left by the first resize (down to {opts.resize_range[0]}x) by {pad} px"),
        (True, second, 1, "the second resize must keep a pixel"),
        (opts.final_sinc_prob > 0, lr, pad + 1, f"the final sinc filter pads the LR image by {pad} px"),
    ]
    for active, got, need, why in checks:
        if active and got < need:
            return (f"is too small for the realesrgan degradation at x{scale}: {why}, which needs {need} px there but "
                    f"gets {got} from {size} px; use larger crops or images, smaller kernels (kernel_range) or a "
                    "narrower resize_range")
    return None


# ----------------------------------------------------------------------------------------------- per-item draws
@dataclass(frozen=True)
class KernelDraw:
    """One blur kernel's parameters; ``kind`` is a Real-ESRGAN kernel name or ``sinc``."""

    kind: str
    size: int
    sigma_x: float = math.nan
    sigma_y: float = math.nan
    theta: float = 0.0
    beta: float = math.nan
    omega: float = math.nan  # sinc cutoff (radians)

    def array(self, pad_to: int) -> np.ndarray:
        """The normalised (pad_to, pad_to) float32 kernel, built by basicsr and zero-padded around the centre."""
        deg = _basicsr("data.degradations")
        iso = self.kind.endswith("_iso") or self.kind == "iso"
        if self.kind == "sinc":
            k = deg.circular_lowpass_kernel(self.omega, self.size, pad_to=0)
        elif self.kind in ("iso", "aniso"):
            k = deg.bivariate_Gaussian(self.size, self.sigma_x, self.sigma_y, self.theta, isotropic=iso)
        elif self.kind.startswith("generalized"):
            k = deg.bivariate_generalized_Gaussian(self.size, self.sigma_x, self.sigma_y, self.theta, self.beta,
                                                   isotropic=iso)
        else:
            k = deg.bivariate_plateau(self.size, self.sigma_x, self.sigma_y, self.theta, self.beta, isotropic=iso)
        p = (pad_to - self.size) // 2
        return np.pad(np.asarray(k, dtype=np.float32), ((p, p), (p, p)))


@dataclass(frozen=True)
class StageDraw:
    """One stage's draws: blur kernel (None: no blur), resize, noise and JPEG quality (None: no JPEG). In the
    second stage ``jpeg`` is the final JPEG, which runs before or after the resize back (``ItemDraw.sinc_first``)."""

    kernel: KernelDraw | None
    updown: str
    resize: float
    mode: str
    gaussian: bool
    sigma: float  # Gaussian noise sigma (0..255 scale); 0 for Poisson
    poisson: float  # Poisson noise scale; 0 for Gaussian
    gray: bool
    jpeg: float | None


@dataclass(frozen=True)
class ItemDraw:
    """Everything random about one item's degradation: the worker draws it, the device applies it."""

    first: StageDraw
    second: StageDraw
    sinc_first: bool
    final_mode: str
    final_sinc: KernelDraw | None
    noise_seed: int


def _beta(rng: np.random.Generator, span: Sequence[float]) -> float:
    """Real-ESRGAN's beta draw (basicsr random_bivariate_generalized_Gaussian / _plateau): U[low, 1] or U[1, high]."""
    return float(rng.uniform(span[0], 1) if rng.random() < 0.5 else rng.uniform(1, span[1]))


def _draw_kernel(rng: np.random.Generator, opts: DegradationOptions, suffix: str) -> KernelDraw:
    """A blur kernel as basicsr's RealESRGANDataset draws it (sinc with sinc_prob, else random_mixed_kernels)."""
    sizes = opts.kernel_sizes
    size = int(sizes[rng.integers(len(sizes))])
    if rng.random() < getattr(opts, f"sinc_prob{suffix}"):
        span = SINC_SMALL if size < SINC_SIZE_SPLIT else SINC_LARGE
        return KernelDraw("sinc", size, omega=float(rng.uniform(*span)))
    names, probs = getattr(opts, f"kernel_list{suffix}"), np.asarray(getattr(opts, f"kernel_prob{suffix}"))
    kind = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    sigma = getattr(opts, f"blur_sigma{suffix}")
    sx = float(rng.uniform(*sigma))
    if kind.endswith("aniso"):
        sy, theta = float(rng.uniform(*sigma)), float(rng.uniform(-math.pi, math.pi))
    else:
        sy, theta = sx, 0.0
    beta = math.nan
    if kind.startswith("generalized"):
        beta = _beta(rng, getattr(opts, f"betag_range{suffix}"))
    elif kind.startswith("plateau"):
        beta = _beta(rng, getattr(opts, f"betap_range{suffix}"))
    return KernelDraw(kind, size, sx, sy, theta, beta)


def _draw_stage(rng: np.random.Generator, opts: DegradationOptions, suffix: str) -> StageDraw:
    blur_prob = opts.blur_prob if suffix == "" else opts.second_blur_prob
    kernel = _draw_kernel(rng, opts, suffix)
    kernel = kernel if rng.random() < blur_prob else None
    updown = UPDOWN[int(rng.choice(3, p=np.asarray(getattr(opts, f"resize_prob{suffix}")) /
                                      sum(getattr(opts, f"resize_prob{suffix}"))))]
    lo, hi = getattr(opts, f"resize_range{suffix}")
    resize = float(rng.uniform(1, hi)) if updown == "up" else float(rng.uniform(lo, 1)) if updown == "down" else 1.0
    mode = opts.resize_modes[int(rng.integers(len(opts.resize_modes)))]
    gaussian = bool(rng.random() < getattr(opts, f"gaussian_noise_prob{suffix}"))
    sigma = float(rng.uniform(*getattr(opts, f"noise_range{suffix}"))) if gaussian else 0.0
    poisson = 0.0 if gaussian else float(rng.uniform(*getattr(opts, f"poisson_scale_range{suffix}")))
    gray = bool(rng.random() < getattr(opts, f"gray_noise_prob{suffix}"))
    jpeg_on = rng.random() < getattr(opts, f"jpeg_prob{suffix}")
    quality = float(rng.uniform(*getattr(opts, f"jpeg_range{suffix}")))
    return StageDraw(kernel, updown, resize, mode, gaussian, sigma, poisson, gray, quality if jpeg_on else None)


def draw_item(opts: DegradationOptions, rng: np.random.Generator) -> ItemDraw:
    """Draw one item's degradation from its own generator (the order of draws is fixed, so it is reproducible)."""
    if opts.type != "realesrgan":
        raise ValueError(f"draw_item needs degradation type realesrgan, got {opts.type!r}")
    first = _draw_stage(rng, opts, "")
    second = _draw_stage(rng, opts, "2")
    sinc_first = bool(rng.random() < opts.sinc_first_prob)
    final_mode = opts.resize_modes[int(rng.integers(len(opts.resize_modes)))]
    final_sinc = None
    if rng.random() < opts.final_sinc_prob:
        sizes = opts.kernel_sizes
        size = int(sizes[rng.integers(len(sizes))])
        final_sinc = KernelDraw("sinc", size, omega=float(rng.uniform(*SINC_SMALL)))
    seed = int(rng.integers(0, 2**63 - 1))
    return ItemDraw(first, second, sinc_first, final_mode, final_sinc, seed)


# ----------------------------------------------------------------------------------------------- as tensors
# The scalars of an item, in the order of its (N,) float64 row; modes are indices into RESIZE_MODES, flags 0/1,
# a quality of 0 means no JPEG. Kernels travel as a (3, K, K) float32 tensor (zeros where there is none).
_STAGE_VALUES = ("blur", "resize", "mode", "gaussian", "sigma", "poisson", "gray", "jpeg")
VALUES: tuple[str, ...] = (tuple(f"{v}1" for v in _STAGE_VALUES) + tuple(f"{v}2" for v in _STAGE_VALUES)
                           + ("sinc_first", "final_mode", "final_sinc"))


def _stage_row(s: StageDraw) -> list[float]:
    return [float(s.kernel is not None), s.resize, float(RESIZE_MODES.index(s.mode)), float(s.gaussian), s.sigma,
            s.poisson, float(s.gray), s.jpeg or 0.0]


def item_tensors(draw: ItemDraw, pad_to: int) -> dict[str, Tensor]:
    """The draw as the tensors a DataLoader collates: ``deg_kernels`` (3, K, K), ``deg_values`` (N,), ``deg_seed``."""
    zeros = np.zeros((pad_to, pad_to), dtype=np.float32)
    kernels = [k.array(pad_to) if k is not None else zeros for k in (draw.first.kernel, draw.second.kernel,
                                                                     draw.final_sinc)]
    row = _stage_row(draw.first) + _stage_row(draw.second) + [
        float(draw.sinc_first), float(RESIZE_MODES.index(draw.final_mode)), float(draw.final_sinc is not None)]
    return {"deg_kernels": torch.from_numpy(np.stack(kernels)),
            "deg_values": torch.tensor(row, dtype=torch.float64),
            "deg_seed": torch.tensor(draw.noise_seed, dtype=torch.int64)}


# ----------------------------------------------------------------------------------------------- device side
_JPEG: Any = None
_USM: dict[str, Any] = {}


def _jpeger(device: torch.device) -> Any:
    """basicsr's DiffJPEG (hard rounding). Its quantisation tables are module-level Parameters shared by every
    DiffJPEG instance, so one instance is kept and moved to the device in use."""
    global _JPEG
    if _JPEG is None:
        _JPEG = _basicsr("utils.diffjpeg").DiffJPEG(differentiable=False)
    if _JPEG.compress.y_quantize.y_table.device != device:
        _JPEG.to(device)
    return _JPEG


def _jpeg(x: Tensor, qualities: Sequence[float]) -> Tensor:
    q = torch.tensor(list(qualities), dtype=torch.float32, device=x.device)  # DiffJPEG overwrites it in place
    return _jpeger(x.device)(torch.clamp(x, 0, 1), quality=q)


def usm_sharpen(images: Tensor) -> Tensor:
    """basicsr's USMSharp (weight 0.5, threshold 10, 51x51 Gaussian) of a (B, 3, H, W) batch in [0, 1]."""
    key = str(images.device)
    if key not in _USM:
        _USM[key] = _basicsr("utils.img_process_util").USMSharp().to(images.device)
    with torch.no_grad():
        return _USM[key](images.contiguous())


def _filter2d(x: Tensor, kernels: Tensor) -> Tensor:
    return _basicsr("utils.img_process_util").filter2D(x.contiguous(), kernels.contiguous())  # it uses .view()


def _filter_rows(x: Tensor, kernels: Tensor, on: Sequence[bool]) -> Tensor:
    """filter2D of the rows of ``x`` whose flag is set, each with its own kernel; the other rows pass unchanged."""
    rows = [i for i, flag in enumerate(on) if flag]
    if not rows:
        return x
    if len(rows) == len(on):
        return _filter2d(x, kernels)
    idx = torch.tensor(rows, device=x.device)
    out = x.clone()
    out[idx] = _filter2d(x[idx], kernels[idx])
    return out


def _noise(x: Tensor, gaussian: bool, sigma: float, poisson: float, gray: bool, gen: torch.Generator) -> Tensor:
    """Add basicsr's Gaussian (``generate_gaussian_noise_pt``) or Poisson (``generate_poisson_noise_pt``) noise to one
    (1, 3, h, w) image, drawn from ``gen``, and clip to [0, 1] (Real-ESRGAN: clip=True, rounds=False)."""
    if gaussian:
        shape = (1, 1, *x.shape[-2:]) if gray else tuple(x.shape)
        noise = torch.randn(shape, generator=gen, device=x.device, dtype=x.dtype) * (sigma / 255.0)
    else:
        from torchvision.transforms.functional import rgb_to_grayscale

        src = rgb_to_grayscale(x, num_output_channels=1) if gray else x
        src = torch.clamp((src * 255.0).round(), 0, 255) / 255.0  # round and clip for counting values correctly
        vals = 2.0 ** math.ceil(math.log2(len(torch.unique(src))))
        noise = (torch.poisson(src * vals, generator=gen) / vals - src) * poisson
    return torch.clamp(x + noise, 0, 1)


def _resize(x: Tensor, mode: str, scale: float | None = None, size: tuple[int, int] | None = None) -> Tensor:
    if (size is not None and tuple(x.shape[-2:]) == size) or scale == 1.0:
        return x  # F.interpolate to the same size is the identity for area, bilinear and bicubic
    if size is not None:
        return F.interpolate(x, size=size, mode=mode)
    return F.interpolate(x, scale_factor=scale, mode=mode)


def degrade_batch(hr: Tensor, scale: int, kernels: Tensor, values: Tensor, seeds: Tensor) -> Tensor:
    """Apply collated :func:`item_tensors` draws to an (B, 3, H, W) HR batch in [0, 1] -> (B, 3, H/s, W/s).

    Runs on ``hr``'s device (float32, no autocast, no gradients; CUDA convolutions follow the TF32 setting). The
    first blur and the final sinc / JPEG run batched; each item's resizes, noise and first JPEG run per item, since
    every item has its own sizes.
    """
    b, _, h, w = hr.shape
    lr_size = (h // scale, w // scale)
    rows = [dict(zip(VALUES, r, strict=True)) for r in values.detach().to("cpu", torch.float64).tolist()]
    noise_seeds = seeds.detach().to("cpu").reshape(-1).tolist()
    if len(rows) != b or len(noise_seeds) != b or kernels.shape[:2] != (b, 3):
        raise ValueError(f"degrade_batch: {b} images but {len(rows)} draws / {len(noise_seeds)} seeds / kernels of "
                         f"shape {tuple(kernels.shape)}")
    with torch.no_grad(), torch.autocast(hr.device.type, enabled=False):
        x = hr.float()
        k = kernels.to(device=x.device, dtype=torch.float32)
        x = _filter_rows(x, k[:, 0], [r["blur1"] > 0 for r in rows])
        items = []
        for i, r in enumerate(rows):
            gen = torch.Generator(device=x.device)
            gen.manual_seed(int(noise_seeds[i]))
            y = x[i:i + 1]
            y = _resize(y, RESIZE_MODES[int(r["mode1"])], scale=r["resize1"])
            y = _noise(y, r["gaussian1"] > 0, r["sigma1"], r["poisson1"], r["gray1"] > 0, gen)
            if r["jpeg1"] > 0:
                y = _jpeg(y, [r["jpeg1"]])
            if r["blur2"] > 0:
                y = _filter2d(y, k[i:i + 1, 1])
            y = _resize(y, RESIZE_MODES[int(r["mode2"])], size=(int(h / scale * r["resize2"]),
                                                                 int(w / scale * r["resize2"])))
            y = _noise(y, r["gaussian2"] > 0, r["sigma2"], r["poisson2"], r["gray2"] > 0, gen)
            if r["sinc_first"] == 0 and r["jpeg2"] > 0:
                y = _jpeg(y, [r["jpeg2"]])
            items.append(_resize(y, RESIZE_MODES[int(r["final_mode"])], size=lr_size))
        x = _filter_rows(torch.cat(items), k[:, 2], [r["final_sinc"] > 0 for r in rows])
        late = [i for i, r in enumerate(rows) if r["sinc_first"] > 0 and r["jpeg2"] > 0]
        if late:
            idx = torch.tensor(late, device=x.device)
            x = x.clone()
            x[idx] = _jpeg(x[idx], [rows[i]["jpeg2"] for i in late])
        return torch.clamp((x * 255.0).round(), 0, 255) / 255.0  # Real-ESRGAN: clamp and round to 8-bit levels


def degrade_images(hr: Tensor, scale: int, seeds: Sequence[int],
                   spec: DegradationOptions | Mapping[str, Any] | None = None) -> Tensor:
    """The degraded LR images of an HR batch, deterministic per seed: for evaluation on synthetic real-world LR.

    hr: (B, 3, H, W) float RGB in [0, 1] with H and W divisible by ``scale``; item b uses ``seeds[b]`` (its draws
    come from ``np.random.default_rng(seeds[b])``). ``spec``: :class:`DegradationOptions` or a mapping of its keys;
    None means Real-ESRGAN's defaults (``type: realesrgan``); ``type: bicubic`` gives the plain MATLAB bicubic LR.
    ``usm_gt`` is a training option and is ignored here: ``hr`` is degraded as given. Returns (B, 3, H/s, W/s) in
    [0, 1] (8-bit levels for realesrgan) on ``hr``'s device; the same seed on the same device gives the same image.
    """
    opts = as_options(spec, default_type="realesrgan")
    if hr.ndim != 4 or hr.shape[1] != 3 or not hr.is_floating_point():
        raise ValueError(f"degrade_images expects a float (B, 3, H, W) RGB batch, got {hr.dtype} {tuple(hr.shape)}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"degrade_images: scale must be an integer >= 1, got {scale!r}")
    b, _, h, w = hr.shape
    if h % scale or w % scale:
        raise ValueError(f"degrade_images: a {w}x{h} (WxH) batch is not divisible by the scale {scale}; mod-crop "
                         "it first (restore.data.sr.mod_crop)")
    seeds = list(seeds)
    if len(seeds) != b:
        raise ValueError(f"degrade_images: {b} images but {len(seeds)} seeds")
    if opts.type == "bicubic":
        return downscale_batch(hr.float(), scale)
    problem = size_problem(opts, min(h, w), scale)
    if problem:
        raise ValueError(f"degrade_images: a {w}x{h} (WxH) batch {problem}")
    draws = [item_tensors(draw_item(opts, np.random.default_rng(int(s))), opts.pad_to) for s in seeds]
    return degrade_batch(hr, scale, torch.stack([d["deg_kernels"] for d in draws]).to(hr.device),
                         torch.stack([d["deg_values"] for d in draws]), torch.stack([d["deg_seed"] for d in draws]))
