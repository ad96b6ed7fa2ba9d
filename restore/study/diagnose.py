"""``restore diagnose``: measure a trained critic and write a report (markdown + JSON + three PNGs).

Why: the SAN paper argues with two measurements that are easy to get wrong by hand. Fig. 3: SN's estimate (the
reshaped-matrix norm) sits well below the true operator norm of a conv layer; Fig. 5: conv inputs are channel-sparse,
which is what SAN's constant exploits. GraN and the penalties are judged instead by the critic's input gradients.
This module reloads a run's critic exactly as it was trained, feeds it real and generated images of the run's own
task, and records all three; the measurement routines themselves live (and are tested) in ``restore.study.measures``.

Conventions: per-layer norms are of the layer's *raw* weight (for SN/BSN/SAN the parametrization's ``original``, i.e.
the layer without normalization); the norm of the weight the critic actually uses is reported beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from restore.norms.san import sparsity_aware_constant
from restore.study.measures import (
    channel_sparsity,
    circular_conv_spectral_norm,
    finite_difference_lipschitz,
    input_gradient_norms,
    reshaped_spectral_norm,
)

DELTAS = (1e-3, 1e-2, 1e-1, 1.0)
NEAR_ZERO = 1e-3  # "near-zero" channel: norm <= NEAR_ZERO x the layer's median channel norm
# What the input gradients are taken with respect to (the images real_for_penalty/generate give, as in the penalties).
IMAGE_SPACE = {"sr": "images in [0, 1]; the critic sees 2x - 1, so these norms are 2x the gradient w.r.t. the "
                     "critic's own input",
               "spade": "images in [-1, 1] (the critic's own input; the label map is held fixed)",
               "stargan": "images in [-1, 1] (the critic's own input)"}


# ----------------------------------------------------------------------------------------------- loading
def resolve_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """(checkpoint file, run folder) for a run folder, its checkpoints/ folder, or a ``.pt`` checkpoint."""
    from restore.engine.checkpoint import latest_checkpoint
    from restore.engine.runs import RunFolder

    path = Path(path)
    if path.suffix == ".safetensors":
        raise ValueError(f"{path} is a generator weights file (.safetensors): it holds no critic. Pass the run "
                         "folder (runs/<name>/) or one of its checkpoints (runs/<name>/checkpoints/step_XXXXXXXX.pt)")
    if path.is_dir():
        folder = RunFolder.at(path).checkpoints
        found = latest_checkpoint(folder) or latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"{path}: no checkpoint found (expected {folder}/step_XXXXXXXX.pt); "
                                    "pass a run folder or a .pt checkpoint")
        path = found
    elif not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (pass a run folder or a .pt checkpoint)")
    run = path.parent.parent if RunFolder.at(path.parent.parent).checkpoints == path.parent else path.parent
    return path, run


def _set_data_root(config: dict[str, Any], data: str, source: Path) -> None:
    """Point the stored training data block at ``data`` (``roots: [data]`` or ``root: data``, by data set type)."""
    import restore.data  # noqa: F401  (fills the DATASETS registry)
    from restore.registry import DATASETS

    train = (config.get("data") or {}).get("train")
    if not isinstance(train, dict) or "type" not in train:
        raise ValueError(f"{source}: the stored options have no data.train block, so --data has nothing to replace")
    if not Path(data).is_dir():
        raise FileNotFoundError(f"--data {data}: folder not found")
    if train["type"] not in DATASETS:
        return  # parse_options names the unknown type
    params = DATASETS.parameters(train["type"])
    if "roots" in params:
        train["roots"] = [str(data)]
    elif "root" in params:
        train["root"] = str(data)
    else:
        raise ValueError(f"--data: data set '{train['type']}' has no single root folder ({', '.join(params)}); "
                         "give its folders with --set data.train.KEY=PATH instead")


@dataclass
class Loaded:
    """A run's task rebuilt from its checkpoint, with the trained critic and generator loaded (eval mode)."""

    checkpoint: Path
    run: Path
    step: int
    opts: Any
    task: Any
    generator_source: str  # "ema" or "generator"


def load_run(checkpoint: str | Path, data: str, overrides: Sequence[str] = (),
             device: torch.device | str = "cpu") -> Loaded:
    """Rebuild the task of ``checkpoint`` from its stored options, training data at ``data``; load the weights.

    The perceptual loss network and ``train.pretrained_generator`` are dropped from the options: neither is needed to
    run the critic, and their files may not exist where the diagnosis runs.
    """
    from restore.config import parse_options
    from restore.engine.checkpoint import load
    from restore.tasks import build_task

    path, run = resolve_checkpoint(checkpoint)
    state = load(path)
    if not isinstance(state, dict) or "config" not in state or "critic" not in state:
        raise ValueError(f"{path} is not a training checkpoint (no stored options or critic); pass a run folder or "
                         "a checkpoint written by restore train")
    config = json.loads(json.dumps(state["config"]))  # deep copy of plain data
    if state["critic"] is None:
        raise ValueError(f"{path}: this run trains no critic (task {config.get('task')}); nothing to diagnose")
    _set_data_root(config, data, path)
    config.setdefault("train", {})["pretrained_generator"] = None
    losses = config.get("losses") or {}
    if config.get("task") in ("sr", "spade") and "perceptual" in losses:
        losses["perceptual"] = None
    opts = parse_options(config, source=f"{path} (stored options, data root from --data)", overrides=overrides)
    task = build_task(opts)
    if task.critic is None:
        raise ValueError(f"{path}: the options rebuild no critic (a --set removed it?); nothing to diagnose")
    try:
        task.critic.load_state_dict(state["critic"])
    except RuntimeError as err:
        raise ValueError(f"{path}: the stored critic weights do not fit the critic rebuilt from its options "
                         f"(did a --set change the critic?): {_first_problem(err)}") from None
    source = "ema" if state.get("ema") is not None else "generator"
    gen_state = state["ema"] if source == "ema" else state["generator"]["state"]
    try:
        task.generator.load_state_dict(gen_state)
    except RuntimeError as err:
        raise ValueError(f"{path}: the stored generator weights do not fit the generator rebuilt from its options "
                         f"(different data under --data?): {_first_problem(err)}") from None
    device = torch.device(device)
    task.critic.to(device).eval().requires_grad_(False)
    task.generator.to(device).eval().requires_grad_(False)
    return Loaded(path, run, int(state.get("step", 0)), opts, task, source)


def _first_problem(err: Exception, limit: int = 300) -> str:
    """The first concrete line of a load_state_dict error (its first line only names the class)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[1] if len(lines) > 1 else (lines[0] if lines else type(err).__name__)
    return text if len(text) <= limit else text[:limit] + " ..."


# ----------------------------------------------------------------------------------------------- conv layers
def conv_layers(critic: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every Conv2d of the critic, by module name (restore's circular-padding Conv2d is a subclass)."""
    return [(name or "(critic)", m) for name, m in critic.named_modules() if isinstance(m, nn.Conv2d)]


def raw_weight(module: nn.Module) -> Tensor:
    """The layer's weight without normalization: a parametrization's ``original`` (SN, BSN, SAN), else ``weight``."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original.detach()
    return module.weight.detach()


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _dilated(weight: Tensor, dilation: tuple[int, int]) -> Tensor:
    """(m, n, kh, kw) -> the equivalent undilated kernel (zeros between the taps)."""
    dh, dw = dilation
    if dh == dw == 1:
        return weight
    m, n, kh, kw = weight.shape
    out = weight.new_zeros(m, n, dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    out[:, :, ::dh, ::dw] = weight
    return out


@torch.no_grad()
def true_norm(weight: Tensor, size: tuple[int, int], groups: int = 1, dilation: tuple[int, int] = (1, 1)) -> float:
    """Operator norm of the stride-1 circular conv on ``size`` inputs; a grouped conv is block-diagonal (max)."""
    w = _dilated(weight.detach().float().cpu(), dilation)
    per = w.shape[0] // groups
    return max(float(circular_conv_spectral_norm(w[g * per:(g + 1) * per], size)) for g in range(groups))


@torch.no_grad()
def layer_norms(module: nn.Conv2d, size: tuple[int, int]) -> dict[str, Any]:
    """SAN's constant, SN's estimate, the true norm (raw weight) and the true norm of the weight in use, at ``size``.

    ``dc`` is the norm at frequency 0 (sum of the taps), a lower bound of ``true`` by construction. ``kernel_fits``:
    the (dilated) kernel is no larger than the input; only then is ``true >= sn`` guaranteed (Parseval; a kernel
    that wraps around a smaller input can cancel itself).
    """
    raw = raw_weight(module).float().cpu()
    dilation = _pair(module.dilation)
    kh, kw = _pair(module.kernel_size)
    ekh, ekw = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    san = float(sparsity_aware_constant(raw, size, dilation=dilation))
    sn = float(reshaped_spectral_norm(raw))
    true = true_norm(raw, size, module.groups, dilation)
    dc = max(float(torch.linalg.matrix_norm(g.sum((2, 3)), ord=2)) for g in raw.chunk(module.groups, 0))
    used = module.weight.detach().float().cpu()
    scale = float((used * raw).sum() / (raw * raw).sum().clamp_min(1e-30))
    if torch.allclose(used, scale * raw, rtol=1e-5, atol=1e-8):  # SN, BSN, SAN divide by a number: reuse the SVDs
        effective = abs(scale) * true
    else:
        effective = true_norm(used, size, module.groups, dilation)
    return {"san": san, "sn": sn, "true": true, "dc": dc, "true_over_sn": _ratio(true, sn),
            "true_over_san": _ratio(true, san), "true_effective": effective,
            "kernel_fits": ekh <= size[0] and ekw <= size[1]}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


class ConvInputs:
    """Forward pre-hooks on every Conv2d of a critic while active (``with``): the first input's (H, W) of each
    layer and the per-sample channel norms ``(N, C)`` of every input it sees (accumulated over calls)."""

    def __init__(self, critic: nn.Module):
        self.layers = conv_layers(critic)
        self.sizes: dict[str, tuple[int, int]] = {}
        self.norms: dict[str, list[Tensor]] = {name: [] for name, _ in self.layers}
        self._handles: list[Any] = []

    def __enter__(self) -> ConvInputs:
        for name, module in self.layers:
            self._handles.append(module.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _hook(self, name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]
            self.sizes.setdefault(name, (int(x.shape[-2]), int(x.shape[-1])))
            self.norms[name].append(channel_sparsity(x)[0].cpu())

        return hook

    def channel_norms(self, name: str) -> Tensor:
        """All recorded channel norms of layer ``name``: (samples, C); empty when it saw no input."""
        seen = self.norms[name]
        return torch.cat(seen) if seen else torch.zeros(0, 0)


def sparsity_summary(norms: Tensor, near: float = NEAR_ZERO) -> dict[str, Any]:
    """Fractions of exactly-zero channels and of near-zero ones (<= ``near`` x median) in channel norms (S, C)."""
    flat = norms.flatten().double()
    median = float(flat.median())
    threshold = near * median
    return {"channels": int(norms.shape[1]), "samples": int(norms.shape[0]),
            "zero_fraction": float((flat <= 0).double().mean()),
            "near_zero_fraction": float((flat <= threshold).double().mean()),
            "near_zero_threshold": threshold, "median_norm": median, "max_norm": float(flat.max())}


# ----------------------------------------------------------------------------------------------- data
def draw_batches(task: Any, images: int, batch: int, device: torch.device) -> tuple[list[Any], int]:
    """``images`` items of the training set spread evenly over it (epoch 0: the data set's own seeded crops), in
    batches of ``batch`` moved with ``task.to_device``. Returns (batches, number of images used)."""
    from torch.utils.data import default_collate

    dataset = task.train_dataset()
    total = len(dataset)
    if total == 0:
        raise ValueError("the training data set is empty")
    count = min(images, total)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(0)
    indices = torch.linspace(0, total - 1, count).round().long().tolist()
    batches = []
    for start in range(0, count, batch):
        items = [dataset[i] for i in indices[start:start + batch]]
        batches.append(task.to_device(default_collate(items), device))
    return batches, count


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the global RNG (StarGAN's target permutation, SPADE's VAE noise) without disturbing the caller's."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


# ----------------------------------------------------------------------------------------------- measuring
@dataclass
class Diagnosis:
    """All numbers of one report (``to_json`` is what diagnostics.json holds)."""

    header: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)
    sparsity: list[dict[str, Any]] = field(default_factory=list)
    histograms: dict[str, Tensor] = field(default_factory=dict)  # channel norms per layer (plots only)
    gradients: dict[str, list[float]] = field(default_factory=dict)  # "real"/"fake" -> per-sample norms
    finite_differences: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        grads = {k: {**_stats(v), "norms": v} for k, v in self.gradients.items()}
        return _finite({"header": self.header, "layers": self.layers, "sparsity": self.sparsity,
                        "gradients": grads, "finite_differences": self.finite_differences})


def _stats(values: Sequence[float]) -> dict[str, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return {"median": float(t.median()), "mean": float(t.mean()), "min": float(t.min()), "max": float(t.max())}


def _finite(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become null (JSON has no NaN/inf)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def measure(loaded: Loaded, batches: list[Any], deltas: Sequence[float] = DELTAS) -> Diagnosis:
    """Per-layer norms and input sparsity (real images), input gradients and finite differences (real and fake)."""
    task, critic, generator = loaded.task, loaded.task.critic, loaded.task.generator
    fakes = []
    recorder = ConvInputs(critic)
    with torch.no_grad():
        for batch in batches:
            fakes.append(task.generate(generator, batch).detach())
            with recorder:
                task.critic_forward(critic, batch, task.real_for_penalty(batch))
    diag = Diagnosis(header={})
    for name, module in recorder.layers:
        if name not in recorder.sizes:
            continue  # never reached by this task's forward
        size = recorder.sizes[name]
        kh, kw = _pair(module.kernel_size)
        diag.layers.append({"name": name, "in_channels": module.in_channels, "out_channels": module.out_channels,
                            "kernel": [kh, kw], "stride": list(_pair(module.stride)),
                            "dilation": list(_pair(module.dilation)), "groups": module.groups,
                            "padding_mode": module.padding_mode, "input_size": list(size),
                            "parametrized": parametrize.is_parametrized(module, "weight"),
                            **layer_norms(module, size)})
        norms = recorder.channel_norms(name)
        diag.sparsity.append({"name": name, **sparsity_summary(norms)})
        diag.histograms[name] = norms.flatten()
    real_g: list[float] = []
    fake_g: list[float] = []
    fd: dict[str, list[Tensor]] = {"real": [], "fake": []}
    for batch, fake in zip(batches, fakes, strict=True):
        def critic_fn(x: Tensor, batch: Any = batch) -> Any:
            return task.critic_forward(critic, batch, x)

        for kind, x, out in (("real", task.real_for_penalty(batch), real_g), ("fake", fake, fake_g)):
            out += input_gradient_norms(critic_fn, x).detach().float().cpu().tolist()
            fd[kind].append(finite_difference_lipschitz(critic_fn, x, tuple(deltas)).detach().float().cpu())
    diag.gradients = {"real": real_g, "fake": fake_g}
    fd_all = {k: torch.cat(v, dim=1).double() for k, v in fd.items()}
    for i, d in enumerate(deltas):
        row: dict[str, Any] = {"delta": float(d)}
        for kind, values in fd_all.items():
            row[f"{kind}_median"] = float(values[i].median())
            row[f"{kind}_max"] = float(values[i].max())
        diag.finite_differences.append(row)
    return diag


# ----------------------------------------------------------------------------------------------- plots
def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot, no display, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def plot_layers(diag: Diagnosis, path: Path) -> None:
    """Grouped bars per conv layer: SN's estimate, SAN's constant, the true norm (raw weights), log scale."""
    n = len(diag.layers)
    fig = _figure(max(6.0, 0.9 * n + 2), 4.2)
    ax = fig.add_subplot()
    xs = torch.arange(n).double()
    for k, (key, label) in enumerate((("sn", "SN estimate (reshaped)"), ("san", "SAN constant"),
                                      ("true", "true norm (stride-1 circular)"))):
        values = [max(layer[key], 1e-12) for layer in diag.layers]
        ax.bar((xs + (k - 1) * 0.27).tolist(), values, width=0.27, label=label)
    ax.set_yscale("log")
    top = max(max(layer[k] for k in ("sn", "san", "true")) for layer in diag.layers) if diag.layers else 1.0
    ax.set_ylim(top=max(top, 1e-12) * 4)  # room for the legend above the bars
    ax.set_xticks(xs.tolist())
    ax.set_xticklabels([layer["name"] for layer in diag.layers], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("operator norm of the raw weight")
    ax.set_title("Per-layer norms (SAN paper Fig. 3)")
    ax.legend(fontsize=8, ncol=3, loc="upper center")
    fig.tight_layout()
    fig.savefig(path)


def plot_sparsity(diag: Diagnosis, path: Path) -> None:
    """Small multiples: histogram of per-sample channel norms of each conv layer's input (SAN paper Fig. 5)."""
    n = max(1, len(diag.sparsity))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig = _figure(3.2 * cols, 2.6 * rows)
    for i, s in enumerate(diag.sparsity):
        ax = fig.add_subplot(rows, cols, i + 1)
        values = diag.histograms[s["name"]].double().numpy()
        ax.hist(values, bins=40, color="tab:blue")
        ax.axvline(s["near_zero_threshold"], color="tab:red", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(f"{s['name']} ({s['channels']} ch)\nzero {100 * s['zero_fraction']:.1f}%, "
                     f"near-zero {100 * s['near_zero_fraction']:.1f}%", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Channel norms of each conv layer's input (real images)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def plot_gradients(diag: Diagnosis, path: Path) -> None:
    """Box plot of ||grad_x D(x)|| on real vs generated images, and the finite-difference slopes per step size."""
    fig = _figure(10, 4)
    ax = fig.add_subplot(1, 2, 1)
    ax.boxplot([diag.gradients["real"], diag.gradients["fake"]])
    ax.set_xticks([1, 2])
    ax.set_xticklabels(["real", "generated"])
    ax.set_ylabel("||grad_x D(x)||")
    ax.set_title("Input-gradient norms")
    ax = fig.add_subplot(1, 2, 2)
    deltas = [r["delta"] for r in diag.finite_differences]
    for kind, color in (("real", "tab:blue"), ("fake", "tab:orange")):
        ax.plot(deltas, [r[f"{kind}_median"] for r in diag.finite_differences], "o-", color=color,
                label=f"{'generated' if kind == 'fake' else kind}: median")
        ax.plot(deltas, [r[f"{kind}_max"] for r in diag.finite_differences], "s--", color=color,
                label=f"{'generated' if kind == 'fake' else kind}: max")
    ax.set_xscale("log")
    ax.set_xlabel("step d along the gradient direction")
    ax.set_ylabel("|D(x + d n) - D(x)| / d")
    ax.set_title("Finite-difference Lipschitz estimate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


# ----------------------------------------------------------------------------------------------- report
def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(header: Sequence[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_report(diag: Diagnosis) -> str:
    """The markdown report: header, the three tables, the plots (relative links) and the caveats."""
    h = diag.header
    norm = dict(h["norm"])
    norm_name = norm.pop("type", "none")
    norm_opts = ", ".join(f"{k}={v}" for k, v in norm.items()) or "defaults"
    arch_opts = ", ".join(f"{k}={v}" for k, v in h["critic_kwargs"].items()) or "defaults"
    out = [f"# Critic diagnostics: {h['run']}", "",
           f"- checkpoint: `{h['checkpoint']}` (step {h['step']})",
           f"- task: {h['task']}; critic: {h['critic_arch']} ({arch_opts})",
           f"- critic norm: **{norm_name}** ({norm_opts})",
           f"- images: {h['images']} real training images from `{h['data']}` (spread evenly over the set, the data "
           f"set's own epoch-0 crops) and as many generated from them by the "
           f"{'EMA generator' if h['generator'] == 'ema' else 'generator (the run keeps no EMA)'}",
           f"- device: {h['device']}", ""]
    if h["images"] < h["images_requested"]:
        out += [f"Only {h['images']} images exist in the training set ({h['images_requested']} were asked for).", ""]

    out += ["## 1. Per-layer operator norms (SAN paper Fig. 3)", "",
            "Norms of each conv layer's **raw** weight (for SN, BSN and SAN the parametrization's original weight, "
            "i.e. the layer without normalization), at the input size the layer sees. *SN* is the top singular value "
            "of the weight reshaped to (out, in·kh·kw), what spectral normalization divides by; *SAN* is SAN's "
            "constant (max over kernels and frequencies of |DFT|, Lemma 1); *true* is the exact operator norm of the "
            "stride-1 circular convolution on that input (Sedghi et al.). *true (used)* is the true norm of the "
            "weight the critic actually applies (after its normalization).", ""]
    rows = []
    for r in diag.layers:
        stride = "x".join(map(str, r["stride"]))
        rows.append([f"`{r['name']}`", f"{r['in_channels']}→{r['out_channels']}", "x".join(map(str, r["kernel"])),
                     stride, "x".join(map(str, r["input_size"])), r["sn"], r["san"], r["true"], r["true_over_sn"],
                     r["true_over_san"], r["true_effective"]])
    out += [_table(["layer", "in→out", "kernel", "stride", "input HxW", "SN", "SAN", "true", "true/SN", "true/SAN",
                    "true (used)"], rows), "", "![per-layer norms](layers.png)", ""]
    notes = ["- true ≥ SAN always (an entry of a matrix never exceeds its spectral norm); true ≥ SN whenever the "
             "kernel fits inside the input (Parseval), so true/SN > 1 measures how much SN underestimates."]
    if any(r["stride"] != [1, 1] for r in diag.layers):
        notes.append("- Strided layers: the stride-1 circular operator norm is an **upper bound** of the strided "
                     "layer's norm (subsampling has norm 1), not its exact value.")
    if any(r["padding_mode"] != "circular" for r in diag.layers):
        notes.append("- Layers that pad with zeros (not circularly) are not exactly circular convolutions; their "
                     "*true* column is the norm of the same kernel as a circular convolution on that input size.")
    if not all(r["kernel_fits"] for r in diag.layers):
        folded = ", ".join(f"`{r['name']}`" for r in diag.layers if not r["kernel_fits"])
        notes.append(f"- Kernel larger than its input (it wraps around circularly; true ≥ SN is not guaranteed): "
                     f"{folded}.")
    out += notes + [""]

    out += ["## 2. Channel sparsity of conv inputs (SAN paper Fig. 5)", "",
            "Per real image and channel, the L2 norm of each conv layer's input channel. *zero*: fraction of exactly "
            f"zero channels (norm ≤ 0); *near-zero*: norm ≤ {NEAR_ZERO:g} × the layer's median channel norm. SAN's "
            "constant is tight for inputs with one active channel, so the sparser the inputs, the closer it is to "
            "the layer's real gain on them. (Leaky ReLU never outputs exact zeros.)", ""]
    rows = [[f"`{s['name']}`", s["channels"], s["samples"], s["zero_fraction"], s["near_zero_fraction"],
             s["median_norm"], s["max_norm"]] for s in diag.sparsity]
    out += [_table(["layer input", "channels", "images", "zero", "near-zero", "median norm", "max norm"], rows), "",
            "![channel-norm histograms](sparsity.png)", ""]

    real, fake = _stats(diag.gradients["real"]), _stats(diag.gradients["fake"])
    out += ["## 3. Input gradients", "",
            f"‖∇ₓD(x)‖ per image, D = the per-image mean of the critic's score map (summed over scales), with the "
            f"condition held fixed; x = {h['image_space']}.", "",
            _table(["images", "median", "mean", "min", "max"],
                   [["real", real["median"], real["mean"], real["min"], real["max"]],
                    ["generated", fake["median"], fake["mean"], fake["min"], fake["max"]]]), "",
            "Finite differences |D(x + d·n) − D(x)| / d along the unit gradient direction n (a Lipschitz estimate "
            "across the linear pieces of the critic, which the gradient alone does not see):", "",
            _table(["d", "real median", "real max", "generated median", "generated max"],
                   [[r["delta"], r["real_median"], r["real_max"], r["fake_median"], r["fake_max"]]
                    for r in diag.finite_differences]), "",
            "![input gradients](gradients.png)", "",
            "## Caveats", "",
            "- Per-layer norms use the raw weights; the product of per-layer norms bounds the critic's Lipschitz "
            "constant only for a plain conv/linear stack with 1-Lipschitz activations. Instance norm (and other "
            "normalization layers) divide by input statistics, so no per-layer bound composes through them.",
            "- GraN, GP, R1 and none leave the weights alone: their *true (used)* equals *true*, and what bounds "
            "a GraN critic is its output normalization (‖∇D‖ < K almost everywhere), seen in section 3, not the "
            "per-layer norms.",
            "- All numbers are from one checkpoint, a few images and the critic in eval mode (no power-iteration "
            "updates)."]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------- entry point
@dataclass
class DiagnoseResult:
    out: Path
    report: Path
    json: Path
    diagnosis: Diagnosis


def diagnose(checkpoint: str | Path, data: str, out: str | Path | None = None, images: int = 32, batch: int = 8,
             device: torch.device | str = "cpu", overrides: Sequence[str] = (),
             deltas: Sequence[float] = DELTAS) -> DiagnoseResult:
    """Load a run's checkpoint, measure its critic on ``images`` real and generated images, write the report to
    ``out`` (default ``<run>/diagnostics/``): report.md, diagnostics.json, layers.png, sparsity.png, gradients.png."""
    if images < 1:
        raise ValueError(f"--images must be >= 1, got {images}")
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    if not deltas or any(d <= 0 for d in deltas):
        raise ValueError(f"finite-difference steps must be > 0, got {list(deltas)}")
    device = torch.device(device)
    loaded = load_run(checkpoint, data, overrides, device)
    opts = loaded.opts
    with _seeded(opts.seed, device):
        batches, count = draw_batches(loaded.task, images, batch, device)
        diag = measure(loaded, batches, deltas)
    diag.header = {"checkpoint": str(loaded.checkpoint), "run": str(loaded.run), "step": loaded.step,
                   "task": opts.task, "critic_arch": opts.critic.name, "critic_kwargs": dict(opts.critic.kwargs),
                   "norm": opts.critic.norm.to_dict(), "images": count, "images_requested": images,
                   "batch": batch, "data": str(data), "generator": loaded.generator_source, "device": str(device),
                   "image_space": IMAGE_SPACE.get(opts.task, "the task's images"), "deltas": [float(d) for d in deltas],
                   "near_zero": NEAR_ZERO}
    target = Path(out) if out is not None else loaded.run / "diagnostics"
    target.mkdir(parents=True, exist_ok=True)
    plot_layers(diag, target / "layers.png")
    plot_sparsity(diag, target / "sparsity.png")
    plot_gradients(diag, target / "gradients.png")
    report = target / "report.md"
    report.write_text(render_report(diag), encoding="utf-8")
    json_path = target / "diagnostics.json"
    json_path.write_text(json.dumps(diag.to_json(), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return DiagnoseResult(target, report, json_path, diag)


__all__ = [
    "ConvInputs",
    "DiagnoseResult",
    "Diagnosis",
    "conv_layers",
    "diagnose",
    "layer_norms",
    "load_run",
    "raw_weight",
    "resolve_checkpoint",
    "sparsity_summary",
    "true_norm",
]
