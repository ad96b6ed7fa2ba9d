"""The GAN training loop shared by every task: critic step(s), then a generator step.

The task supplies the networks, datasets and losses (``restore.tasks.base.Task``); the engine owns optimisation,
mixed precision, EMA, distribution, logging, validation scheduling, checkpoints and exact resume. Only the engine
writes logs (TensorBoard + ``metrics.jsonl``); losses and norms report named scalars.

Speed options (``train.amp``, ``channels_last``, ``compile``, ``tf32``, ``optimizer_impl``) and the time budget
(``train.time_limit``) are described in docs/speed.md.

Distribution: the generator is wrapped in torch's DistributedDataParallel. The critic is not: GP, R1 and GraN
differentiate input gradients (``autograd.grad(create_graph=True)``), which DDP documents as unsupported, so the
critic's gradients are all-reduced explicitly after ``backward()`` (the same averaging DDP performs).
"""

from __future__ import annotations

import copy
import math
import random
import signal
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from restore.config import ConfigError, Options, to_dict
from restore.engine import checkpoint as ckpt
from restore.engine.distributed import DistInfo, any_rank
from restore.engine.hardware import hardware
from restore.engine.resume import recipe_changes
from restore.engine.runs import RunFolder
from restore.engine.sampler import EpochIndexed, StepBatchSampler
from restore.engine.task import Task, missing_methods
from restore.files import append_jsonl


class TrainingDiverged(RuntimeError):
    """A loss became NaN/inf; the last good checkpoint is kept."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, read-only folder); earlier checkpoints are intact."""

    @classmethod
    def explain(cls, path: Path, err: BaseException) -> CheckpointWriteError:
        import shutil

        folder = path.parent
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = None
        previous = ckpt.latest_checkpoint(folder)
        need = previous.stat().st_size if previous is not None else None
        reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
        space = f"; {free / 2**20:.0f} MiB free there" if free is not None else ""
        if need is not None:
            space += f", a checkpoint needs about {need / 2**20:.0f} MiB"
        return cls(f"could not write checkpoint {path.name} into {folder} ({reason}){space}. Training is paused at "
                   f"step {_step_of(path)}; the last checkpoint written is {previous or 'none'}. Free some space "
                   "and run the same command again to continue from there")


@dataclass
class TrainResult:
    step: int
    stopped_early: bool
    checkpoint: Path | None
    last_scalars: dict[str, float]
    #: why it stopped before ``train.steps``: "time_limit", "signal", "until" (``stop_at``); None when finished
    stop_reason: str | None = None


#: critic norms that cannot run in a torch.compile'd critic, with the reason (found on torch 2.14, CPU inductor)
COMPILE_REFUSED = {
    "gran": "GraN differentiates the critic inside its forward (autograd.grad(create_graph=True)) and the loss is "
            "then differentiated again: a double backward, which compiled graphs do not support",
    "bsn": "BSN's power iteration updates its vectors in place in every training forward; the compiled graph keeps "
           "them for its backward and the next forward's update invalidates them (autograd's 'modified by an "
           "inplace operation')",
}


def check_compile(target: str, norm_name: str, where: str = "train.compile") -> None:
    """Refuse, at build time, a ``train.compile`` choice that cannot train (messages name the norm and the reason).

    GP and R1 differentiate the critic twice too, but only in their penalty term: the trainer evaluates the penalty
    with the eager critic (same parameters), so compiling the critic still speeds up its loss and the generator's
    adversarial term. Compiling only the generator works with every norm."""
    if target in ("critic", "all") and norm_name in COMPILE_REFUSED:
        raise ConfigError(f"{where}: '{target}' compiles the critic, which critic norm '{norm_name}' cannot use: "
                          f"{COMPILE_REFUSED[norm_name]}. Use compile: generator (or none).")


def adam_options(impl: str, device: torch.device) -> dict[str, bool]:
    """torch.optim.Adam keyword arguments for ``train.optimizer_impl``.

    auto: fused on CUDA; on the CPU torch's own default (the single-tensor loop), so CPU runs of existing recipes
    keep their exact numerics. fused/foreach/single are taken as asked (they agree to float rounding)."""
    if impl == "auto":
        impl = "fused" if device.type == "cuda" else "single"
    return {"fused": {"fused": True, "foreach": False}, "foreach": {"fused": False, "foreach": True},
            "single": {"fused": False, "foreach": False}}[impl]


def _hooks_outside_compile(module: nn.Module) -> None:
    """Run the forward pre-hooks of ``module``'s layers eagerly, outside torch.compile's graphs.

    SAN's per-conv hook reads the input size into Python (``tolist``) and updates host state: traced, it breaks the
    graph anyway and is recompiled for every layer and every requires_grad pattern (7 minutes on a 2-core CPU for a
    9-layer critic, then dynamo's recompile limit); left eager it costs one graph break per conv and no compile."""
    for sub in module.modules():
        for key, hook in list(sub._forward_pre_hooks.items()):
            sub._forward_pre_hooks[key] = torch.compiler.disable(hook, recursive=True)


def _to_memory_format(batch: Any, fmt: torch.memory_format) -> Any:
    """4-D floating tensors of a batch (dicts, lists and tuples walked) in ``fmt``; anything else unchanged."""
    if isinstance(batch, Tensor):
        return batch.contiguous(memory_format=fmt) if batch.dim() == 4 and batch.is_floating_point() else batch
    if isinstance(batch, dict):
        return {k: _to_memory_format(v, fmt) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_memory_format(v, fmt) for v in batch)
    return batch


class TimeBudget:
    """Decides at step boundaries whether one more step, plus a validation that would be due after it, plus the
    checkpoint and the weight export, still ends before the deadline.

    Conservative on purpose: the step estimate is the *maximum* of the last ``window`` measured steps of this
    command (the first step, with its warm-up or compilation, counts until it leaves the window); checkpoint and
    export costs are measured (one real write of each at the start, then the maximum of the real checkpoint
    writes). Before this command has measured a step or a validation, the costs the previous command stored in
    its checkpoint stand in; with none (a fresh run) the first step is taken unmeasured, and a validation's cost is
    not counted until one has run (docs/speed.md)."""

    window = 20

    def __init__(self, limit: float, started: float):
        self.limit, self.started = limit, started
        self.deadline = started + limit
        self.steps: deque[float] = deque(maxlen=self.window)
        self.prior_step: float | None = None  # the previous command's step cost, until this one measures its own
        self.validation: float | None = None
        self.save = 0.0
        self.export = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def step_cost(self) -> float | None:
        return max(self.steps) if self.steps else self.prior_step

    def need(self, validation_due: bool) -> float:
        """Seconds one more step (with a due validation) and the final checkpoint + export need."""
        val = self.validation if (validation_due and self.validation is not None) else 0.0
        return (self.step_cost() or 0.0) + val + self.save + self.export

    def describe(self, validation_due: bool) -> str:
        parts = [f"step {self.step_cost() or 0.0:.2f}s"]
        if validation_due and self.validation is not None:
            parts.append(f"validation {self.validation:.2f}s")
        parts += [f"checkpoint {self.save:.2f}s", f"export {self.export:.2f}s"]
        return f"{self.need(validation_due):.2f}s ({' + '.join(parts)})"


class EMA:
    """Exponential moving average of a module's parameters (buffers copied), used for validation and export."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for e, p in zip(self.module.parameters(), module.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - self.decay)
        for e, b in zip(self.module.buffers(), module.buffers(), strict=True):
            e.copy_(b)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
                             "python_pos": random.getstate()[2]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    random.setstate((3, tuple(int(v) for v in state["python"]), state["python_pos"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def linear_decay(steps: int, start_fraction: float):
    """LR factor for step s: 1 until ``start_fraction * steps``, then a straight line reaching exactly 0 at ``steps``.

    (StarGAN's reference subtracts lr/decay_iters only every 1,000 iterations and so ends near 0.999 of the start
    value; this one really ends at 0.)"""
    start = round(start_fraction * steps)
    span = max(1, steps - start)

    def factor(s: int) -> float:
        return 1.0 if s < start else max(0.0, 1.0 - (s - start) / span)

    return factor


def make_scheduler(opt: torch.optim.Optimizer, t: Any) -> torch.optim.lr_scheduler.LRScheduler:
    """The schedule ``train.lr_schedule`` names, stepped once per generator step."""
    if t.lr_schedule == "linear":
        return torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(t.steps, t.lr_decay_start))
    milestones = sorted({max(1, round(m * t.steps)) for m in t.lr_milestones})
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones, t.lr_gamma)


def generator_description(opts: Options, task: Task, generator: nn.Module) -> dict[str, Any]:
    """{"type", "kwargs", "extra"} of the generator, as the task describes it (SPADE adds its label channels and
    palette, StarGAN its attribute names): what the exported weights file records."""
    return task.describe_generator()


def _load_module(module: nn.Module, state: dict[str, Any], what: str, source: str | Path) -> None:
    """``load_state_dict`` whose failure is one line: how many keys differ, a few of them, and what to do."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        own, stored = set(module.state_dict()), set(state)
        missing, unexpected = sorted(own - stored), sorted(stored - own)
        detail = (f"{len(missing)} of its weights missing (e.g. {', '.join(missing[:3])})" if missing else "") + \
            ("; " if missing and unexpected else "") + \
            (f"{len(unexpected)} unknown (e.g. {', '.join(unexpected[:3])})" if unexpected else "")
        if not detail:
            detail = str(err).strip().splitlines()[-1].strip()[:300]
        raise ValueError(f"{source}: the stored {what} does not fit the {what} this recipe builds ({detail}): the "
                         "architecture or norm differs from the run's; start a new run with --set name=<new name>")\
            from None


CROP_KEYS = ("gt_size", "crop_size", "image_size", "load_size")
"""data.train options that set how large a training image is (the first one a recipe has is named on OOM)."""


def out_of_memory_message(opts: Options, step: int, device: torch.device, err: BaseException) -> str:
    """One line for a training step that ran out of device memory: the batch size and crop it ran with and the
    ``--set`` overrides that lower them (halved), instead of torch's traceback."""
    src = f"{opts.source}: " if opts.source else ""
    train_kwargs = opts.data.train.kwargs if opts.data.train is not None else {}
    crop = next(((k, v) for k in CROP_KEYS if isinstance(v := train_kwargs.get(k), int) and v > 1), None)
    batch = opts.train.batch_size
    tried = next((part.strip() for part in str(err).split(". ") if part.strip().startswith("Tried to allocate")), "")
    ran = f"train.batch_size={batch}" + (f" and data.train.{crop[0]}={crop[1]}" if crop else "")
    fixes = [f"--set train.batch_size={max(1, batch // 2)}"] if batch > 1 else []
    if crop:
        fixes.append(f"--set data.train.{crop[0]}={crop[1] // 2}")
        critic_size = opts.critic.kwargs.get("image_size") if opts.critic is not None else None
        if critic_size == crop[1]:
            fixes.append(f"--set critic.image_size={crop[1] // 2}")
    if opts.train.amp == "none":
        fixes.append("--set train.amp=bf16")
    return (f"{src}out of memory on {device} at step {step}{f' ({tried})' if tried else ''} with {ran}; lower them "
            f"(or free the device), e.g. {' '.join(fixes) or 'a smaller generator'}")


def _step_of(path: Path) -> str:
    name = path.name
    return str(int(name[5:13])) if name.startswith("step_") and name[5:13].isdigit() else "?"


WEIGHT_GROWTH_LIMIT = 100.0
"""A checkpoint whose largest |weight| grew past this many times its start value is not named as good."""


def _max_abs(named: Any) -> float:
    """Largest |value| over (name, tensor) pairs; inf when any is not finite; 0 for none."""
    worst = 0.0
    for _, value in named:
        if isinstance(value, Tensor) and value.is_floating_point() and value.numel():
            m = float(value.detach().abs().max())
            if not math.isfinite(m):
                return math.inf
            worst = max(worst, m)
    return worst


def _ignore_stop_signals(_worker_id: int) -> None:
    """Data workers leave SIGTERM/SIGINT to the main process. ``pkill -f``, Ctrl-C and SLURM's scancel signal the
    whole process group; a worker that died of it would crash the main process before it could write its pause
    checkpoint. The main process shuts the workers down itself (and they exit when it is gone)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Trainer:
    """Runs ``task`` for ``opts.train.steps`` steps in ``run_dir`` (checkpoints/, tb/, samples/, metrics.jsonl)."""

    def __init__(self, opts: Options, task: Task, run_dir: str | Path, device: torch.device,
                 dist_info: DistInfo | None = None, progress: bool = True):
        missing = missing_methods(task)
        if missing:
            raise TypeError(f"{type(task).__name__} is not a restore.engine.task.Task: it lacks "
                            f"{', '.join(missing)}")
        self.opts, self.task, self.device = opts, task, device
        self.dist = dist_info or DistInfo()
        self.run = RunFolder(Path(run_dir), opts.name)
        self.run_dir = self.run.root
        self.ckpt_dir = self.run.checkpoints
        self.progress = progress and self.dist.is_main
        t = opts.train
        cuda = device.type == "cuda"
        src = f"{opts.source}: " if opts.source else ""
        if t.amp == "fp16" and not cuda:
            raise ConfigError(f"{src}train.amp is 'fp16', which needs CUDA (its GradScaler and fp16 kernels); on "
                              f"the {device.type} use amp: bf16 (or none)")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp)
        self.channels_last = cuda if t.channels_last == "auto" else bool(t.channels_last)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.memory_format = fmt
        if cuda and t.tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = t.tf32
            torch.backends.cudnn.allow_tf32 = t.tf32
        if t.compile != "none":
            check_compile(t.compile, task.norm.name, f"{src}train.compile")

        generator = task.generator
        if self.dist.enabled and cuda:  # batch statistics over all GPUs (SPADE with param_free_norm: batch)
            generator = nn.SyncBatchNorm.convert_sync_batchnorm(generator)
        self.G: nn.Module = generator.to(device, memory_format=fmt)
        self.D: nn.Module | None = task.critic.to(device, memory_format=fmt) if task.critic is not None else None
        self.norm = task.norm
        if self.dist.enabled:
            self._broadcast_initial_state()
        self.G_train = DistributedDataParallel(self.G, device_ids=[device.index] if cuda else None) \
            if self.dist.enabled else self.G
        # the critic's loss and the generator's adversarial term go through D_train; penalties (GP, R1: double
        # backward) always use the eager self.D, which shares its parameters
        self.D_train: nn.Module | None = self.D
        if t.compile in ("generator", "all"):
            self.G_train = torch.compile(self.G_train, mode=t.compile_mode)
        if t.compile in ("critic", "all") and self.D is not None:
            _hooks_outside_compile(self.D)
            self.D_train = torch.compile(self.D, mode=t.compile_mode)
        adam = adam_options(t.optimizer_impl, device)
        try:
            self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr_g, betas=t.betas, **adam)
            self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d, betas=t.betas, **adam) \
                if self.D is not None else None
        except RuntimeError as err:
            raise ConfigError(f"{src}train.optimizer_impl is {t.optimizer_impl!r}, which torch "
                              f"{torch.__version__} does not offer here: {err}") from None
        self.sched_g = make_scheduler(self.opt_g, t)
        self.sched_d = make_scheduler(self.opt_d, t) if self.opt_d is not None else None
        self.ema = EMA(self.G, t.ema) if t.ema else None
        # the networks' largest |weight| at the start of the run (kept in checkpoints): a checkpoint named as the
        # last good one after a divergence must not already hold blown-up weights
        self._start_max_abs = {"generator": _max_abs(self.G.named_parameters()),
                               "critic": _max_abs(self.D.named_parameters()) if self.D is not None else 0.0}
        scaler_on = self.amp_dtype is torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=scaler_on)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=scaler_on)
        self.step = 0
        self._critic_time, self._critic_count = 0.0, 0
        self._stop_signal: str | None = None
        self._writer = None
        self._last_save_s = 0.0
        # measured costs for the time budget (stored in checkpoints: the next command starts from them)
        self._validation_s: float | None = None
        self._step_times: deque[float] = deque(maxlen=TimeBudget.window)
        self._prior_step_s: float | None = None

    # ------------------------------------------------------------------------------------------ state
    def _broadcast_initial_state(self) -> None:
        for module in (self.G, self.D):
            if module is None:
                continue
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)

    def state_dict(self) -> dict[str, Any]:
        rng = _rng_state()
        if self.dist.enabled:
            gathered: list[Any] = [None] * self.dist.world_size
            dist.all_gather_object(gathered, rng)
            rng_states = gathered
        else:
            rng_states = [rng]
        return {
            "step": self.step,
            "config": to_dict(self.opts),
            "generator": {**generator_description(self.opts, self.task, self.G), "state": self.G.state_dict()},
            "critic": self.D.state_dict() if self.D is not None else None,
            "ema": self.ema.module.state_dict() if self.ema else None,
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict() if self.opt_d else None,
            "sched_g": self.sched_g.state_dict(),
            "sched_d": self.sched_d.state_dict() if self.sched_d else None,
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "norm": self.norm.state_dict(),
            "rng": rng_states,
            "health": {"start_max_abs": dict(self._start_max_abs)},
            "timing": {"validation_s": self._validation_s,
                       "step_s": max(self._step_times) if self._step_times else self._prior_step_s},
        }

    def load_state_dict(self, state: dict[str, Any], source: str | Path = "the checkpoint") -> None:
        self.step = int(state["step"])
        _load_module(self.G, state["generator"]["state"], "generator", source)
        if self.D is not None:
            if state.get("critic") is None:
                raise ValueError(f"{source}: the checkpoint has no critic, but this run trains one (different "
                                 "recipe? start a new run with --set name=<new name>)")
            _load_module(self.D, state["critic"], "critic", source)
        if self.ema is not None and state.get("ema") is not None:
            self.ema.module.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.opt_d is not None:
            self.opt_d.load_state_dict(state["opt_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        if self.sched_d is not None:
            self.sched_d.load_state_dict(state["sched_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
        self.norm.load_state_dict(state["norm"])
        rng = state["rng"]
        _set_rng_state(rng[self.dist.rank] if self.dist.rank < len(rng) else rng[0])
        timing = state.get("timing") or {}
        self._start_max_abs = dict((state.get("health") or {}).get("start_max_abs") or self._start_max_abs)
        self._validation_s, self._prior_step_s = timing.get("validation_s"), timing.get("step_s")

    def save(self) -> Path:
        """Write a checkpoint (rank 0; every rank must call it because RNG states are gathered)."""
        tic = time.perf_counter()
        state = self.state_dict()
        path = ckpt.checkpoint_path(self.ckpt_dir, self.step)
        if self.dist.is_main:
            try:
                ckpt.save_atomic(state, path)
            except (OSError, RuntimeError) as err:  # a full disk shows as OSError, or as torch's zip-writer error
                raise CheckpointWriteError.explain(path, err) from None
            ckpt.prune(self.ckpt_dir, self.opts.checkpoint.keep)
        self._last_save_s = time.perf_counter() - tic
        return path

    def export_weights(self, path: str | Path | None = None) -> Path:
        """Write the generator to publish (EMA when on) as ``<run>/<name>.safetensors`` (rank 0 only), with its
        architecture and the steps it was trained for: what ``restore train`` leaves when it finishes or stops for
        its time limit."""
        from restore.engine.weights import save_generator

        path = Path(path) if path is not None else self.run.weights
        gen = generator_description(self.opts, self.task, self.G)
        critic_norm = to_dict(self.opts.critic.norm) if self.opts.critic else None
        return save_generator(self.export_generator(), path, arch=gen["type"], kwargs=gen["kwargs"],
                              task=self.opts.task, extra={**gen["extra"], "steps": self.step,
                                                          "critic_norm": critic_norm})

    def _measure_save_costs(self, budget: TimeBudget) -> None:
        """One real write of the checkpoint and of the exported weights (to temporary names, then deleted), so the
        time budget reserves measured costs, not guesses. Every rank takes part (the RNG states are gathered)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        probe = self.ckpt_dir / f".time_probe_{self.dist.rank}.pt"
        tic = time.perf_counter()
        state = self.state_dict()
        if self.dist.is_main:
            ckpt.save_atomic(state, probe)
            probe.unlink(missing_ok=True)
        budget.save = time.perf_counter() - tic
        del state
        if self.dist.is_main:
            probe = self.run_dir / ".time_probe.safetensors"
            tic = time.perf_counter()
            self.export_weights(probe)
            budget.export = time.perf_counter() - tic
            probe.unlink(missing_ok=True)

    def resume(self, path: str | Path | None = None) -> Path | None:
        """Load ``path`` or the newest checkpoint of the run folder; None when there is none."""
        path = Path(path) if path else ckpt.latest_checkpoint(self.ckpt_dir)
        if path is None:
            return None
        state = ckpt.load(path, map_location=self.device)
        if not isinstance(state, dict) or "step" not in state or "generator" not in state:
            raise ValueError(f"{path}: not a restore training checkpoint (no step / generator entries)")
        refused, applied = recipe_changes(state.get("config") or {}, to_dict(self.opts))
        if refused:
            src = self.opts.source or "the recipe"
            raise ConfigError(
                f"{src}: the run folder {self.run_dir} holds checkpoints (step {state['step']}) trained with other "
                f"options: {'; '.join(refused)}. A resumed run keeps its trained state, so these cannot change "
                f"mid-run: start a new run with --set name=<new name> (or another path.root), or undo the change")
        self.load_state_dict(state, source=path)
        if applied and self.dist.is_main:
            print(f"resume: from step {self.step} on, changed options apply: {'; '.join(applied)}", flush=True)
        return path

    # ------------------------------------------------------------------------------------------ steps
    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _all_reduce_grads(self, module: nn.Module) -> None:
        if not self.dist.enabled:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.dist.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def critic_step(self, batch: Any, fake: Tensor) -> dict[str, float]:
        assert self.D is not None and self.opt_d is not None
        tic = time.perf_counter()
        with self._autocast():
            loss, scalars = self.task.critic_loss(self.D_train, batch, fake.detach())
            penalty = self.norm.penalty(lambda x: self.task.critic_forward(self.D, batch, x),
                                        self.task.real_for_penalty(batch), fake.detach())
            total = loss + penalty
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler_d.scale(total).backward()
        self._all_reduce_grads(self.D)
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        self.norm.step()
        scalars = {**scalars, "d/penalty": float(penalty.detach()), "d/total": float(total.detach())}
        # float() above synchronises with the device, so this is the step's real duration (for ablations)
        self._critic_time += time.perf_counter() - tic
        self._critic_count += 1
        return scalars

    def generator_step(self, batch: Any, fake: Tensor) -> dict[str, float]:
        if self.D is not None:
            self.D.requires_grad_(False)
        try:
            with self._autocast():
                loss, scalars = self.task.generator_loss(self.D_train, batch, fake)
            self.opt_g.zero_grad(set_to_none=True)
            self.scaler_g.scale(loss).backward()
            self.scaler_g.step(self.opt_g)
            self.scaler_g.update()
        finally:
            if self.D is not None:
                self.D.requires_grad_(True)
        if self.ema is not None:
            self.ema.update(self.G)
        return {**scalars, "g/total": float(loss.detach())}

    def train_step(self, data: Iterator[Any]) -> dict[str, float]:
        """One training step from the batches ``data`` yields: ``critic_steps`` critic updates (one batch each),
        the generator update on the last batch, the schedulers; ``self.step`` advances by one."""
        t = self.opts.train
        scalars: dict[str, float] = {}
        fake = batch = None
        rounds = t.critic_steps if self.D is not None else 1
        for k in range(rounds):
            batch = self.task.to_device(next(data), self.device)
            if self.channels_last:
                batch = _to_memory_format(batch, self.memory_format)
            with torch.set_grad_enabled(k == rounds - 1), self._autocast():
                fake = self.task.generate(self.G_train, batch)
            if self.D is not None:
                scalars.update(self.critic_step(batch, fake))
        scalars.update(self.generator_step(batch, fake))
        self.sched_g.step()
        if self.sched_d is not None:
            self.sched_d.step()
        self.step += 1
        return scalars

    # ------------------------------------------------------------------------------------------ loop
    def _loader(self) -> Any:
        dataset = self.task.train_dataset()
        sampler = StepBatchSampler(len(dataset), self.opts.train.batch_size, self.opts.seed,
                                   start_step=self.step * self.opts.train.critic_steps, rank=self.dist.rank,
                                   world_size=self.dist.world_size)
        workers = self.opts.data.num_workers
        # Own generator: creating the iterator must not consume the global RNG (GP's draws), or a resumed run
        # (whose loader starts later) would diverge from an uninterrupted one.
        gen = torch.Generator().manual_seed(self.opts.seed * 1_000_003 + self.dist.rank)
        loader = DataLoader(EpochIndexed(dataset), batch_sampler=sampler, num_workers=workers, generator=gen,
                            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
                            worker_init_fn=_ignore_stop_signals if workers > 0 else None)
        return iter(loader)

    def _writer_log(self, scalars: dict[str, float], images: dict[str, Tensor] | None = None) -> None:
        if not self.dist.is_main:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.run.tensorboard))
        for k, v in scalars.items():
            self._writer.add_scalar(k, v, self.step)
        for k, img in (images or {}).items():
            self._writer.add_image(k, img.clamp(0, 1), self.step)
        append_jsonl(self.run.metrics, {"step": self.step, **scalars})

    def last_good_checkpoint(self) -> tuple[Path | None, list[Path]]:
        """The newest checkpoint whose generator and critic weights are finite and within
        ``WEIGHT_GROWTH_LIMIT`` times their largest |weight| at the start of the run, and the newer ones that fail
        that test (a loss can stay finite for a while after the weights have blown up)."""
        rejected: list[Path] = []
        for _, path in reversed(ckpt.list_checkpoints(self.ckpt_dir)):
            try:
                state = ckpt.load(path)
            except ValueError:
                rejected.append(path)
                continue
            start = (state.get("health") or {}).get("start_max_abs") or self._start_max_abs
            nets = {"generator": (state.get("generator") or {}).get("state") or {}, "critic": state.get("critic") or {}}
            names = {"generator": dict(self.G.named_parameters()),
                     "critic": dict(self.D.named_parameters()) if self.D is not None else {}}
            sane = True
            for net, weights in nets.items():
                worst = _max_abs((k, v) for k, v in weights.items() if k in names[net])
                if not math.isfinite(worst) or worst > WEIGHT_GROWTH_LIMIT * max(float(start.get(net, 0.0)), 0.1):
                    sane = False
            if sane:
                return path, rejected
            rejected.append(path)
        return None, rejected

    def _last_good_message(self) -> str:
        good, rejected = self.last_good_checkpoint()
        text = f"Last good checkpoint: {good or 'none yet'}"
        if rejected:
            text += (f" (newer, with weights already blown up: {', '.join(p.name for p in rejected)}; do not "
                     "resume from them)")
        return text + ". Lower the learning rates, check the data, or use a stronger critic norm."

    def _validate(self) -> dict[str, float]:
        model = self.ema.module if self.ema is not None else self.G
        was_training = model.training
        model.eval()
        try:
            metrics, grid = self.task.validate(model, self.device)
        except torch.cuda.OutOfMemoryError as err:  # SR validation already fell back to tiles; this is the rest
            src = f"{self.opts.source}: " if self.opts.source else ""
            raise ConfigError(f"{src}out of memory on {self.device} while validating at step {self.step} "
                              f"({str(err).split('. ')[0]}); validate on smaller or fewer images "
                              "(--set val.max_images=N, or another data.val), or free the device; a resumed run "
                              "accepts these changes and the checkpoints written so far are kept") from None
        finally:
            model.train(was_training)
        images = {}
        if grid is not None:
            images["val/samples"] = grid
            from torchvision.utils import save_image

            self.run.samples.mkdir(parents=True, exist_ok=True)
            save_image(grid, self.run.sample(self.step))
        scalars = {f"val/{k}": v for k, v in metrics.items()}
        self._writer_log(scalars, images)
        return scalars

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signal.Signals(signum).name

    def _record_hardware(self) -> None:
        """One line per training chunk in hardware.jsonl: a model card must name where the steps ran, not where
        ``restore publish`` happens to run (chunks may run on different machines)."""
        append_jsonl(self.run.hardware, {"step": self.step, **hardware(self.device),
                                         "processes": self.dist.world_size})

    def fit(self, stop_at: int | None = None, time_limit: float | None = None,
            started: float | None = None) -> TrainResult:
        """Train from ``self.step`` to ``opts.train.steps`` (or pause at ``stop_at``: training in chunks, e.g. on a
        time-limited GPU); checkpoints every N steps, on SIGINT/SIGTERM and at the end. Raises
        :class:`TrainingDiverged` on a non-finite loss (the last good checkpoint stays).

        ``time_limit`` (seconds; default ``train.time_limit``) counts from ``started`` (a ``time.monotonic()``
        value; default: now). It stops at the last step boundary from which one more step, a due validation, the
        checkpoint and the weight export still end in time (:class:`TimeBudget`); the caller exports the weights
        (:meth:`export_weights`) when ``stop_reason`` is "time_limit"."""
        t = self.opts.train
        end = t.steps if stop_at is None else min(t.steps, stop_at)
        limit = time_limit if time_limit is not None else t.time_limit
        budget = TimeBudget(float(limit), started if started is not None else time.monotonic()) \
            if limit is not None else None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            import yaml

            for stale in self.run.stale_temporaries():  # left by a run killed while writing
                stale.unlink(missing_ok=True)

            self.run.options.write_text(yaml.safe_dump(to_dict(self.opts), sort_keys=False))
            self._record_hardware()
        if budget is not None:
            self._measure_save_costs(budget)
            budget.validation, budget.prior_step = self._validation_s, self._prior_step_s
            budget.steps = self._step_times
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in old:
            signal.signal(s, self._on_signal)
        data = self._loader()
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=t.steps, initial=self.step, desc=self.opts.name, dynamic_ncols=True)
        last: dict[str, float] = {}
        saved: Path | None = None
        reason: str | None = None
        tic, tic_step = time.perf_counter(), self.step
        has_val = self.task.has_validation()

        def say(text: str) -> None:
            if bar is not None:
                bar.write(text)
            elif self.dist.is_main:
                print(text, flush=True)

        def out_of_time(validation_due: bool) -> bool:
            assert budget is not None
            # no step measured yet in this command: one step is taken to measure it, unless even the checkpoint
            # and the export no longer fit
            return budget.left() < budget.need(validation_due)

        def stop_for_time(where: str, validation_due: bool) -> None:
            assert budget is not None
            say(f"time limit: stopped at step {self.step} {where} after {budget.elapsed():.1f}s of "
                f"{budget.limit:.1f}s; {budget.left():.1f}s left, one more step would need "
                f"{budget.describe(validation_due)}")

        try:
            self.G_train.train()
            if self.D is not None:
                self.D.train()
            while self.step < end:
                if budget is not None:
                    val_due = has_val and (self.step + 1) % self.opts.val.every == 0
                    if any_rank(out_of_time(val_due), self.dist, self.device):
                        reason = "time_limit"
                        stop_for_time("(before its next step)", val_due)
                        break
                step_tic = time.perf_counter()
                try:
                    scalars = self.train_step(data)
                except FloatingPointError as err:  # a norm found non-finite weights (SAN's constant)
                    raise TrainingDiverged(f"training diverged at step {self.step + 1}: {err}; stopping. "
                                           f"{self._last_good_message()}") from None
                except torch.cuda.OutOfMemoryError as err:  # bad input: the recipe asks for more than the device has
                    raise ConfigError(out_of_memory_message(self.opts, self.step + 1, self.device, err)) from None
                bad = [k for k, v in scalars.items() if not math.isfinite(v)]
                if any_rank(bool(bad), self.dist, self.device):
                    raise TrainingDiverged(
                        f"non-finite loss at step {self.step} ({', '.join(bad) or 'on another rank'}); stopping. "
                        f"{self._last_good_message()}")
                last = scalars
                if bar is not None:
                    bar.update(1)
                    if self.step % max(1, min(t.log_every, 10)) == 0:
                        bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in scalars.items()
                                         if k in ("g/total", "d/total", "g/content", "d/adv")})
                if self.step % t.log_every == 0:
                    rate = (self.step - tic_step) / max(time.perf_counter() - tic, 1e-9)
                    lrs = {"lr/g": self.opt_g.param_groups[0]["lr"]}
                    speed = {"speed/it_per_s": rate}
                    if self._critic_count:
                        speed["speed/critic_ms"] = 1000 * self._critic_time / self._critic_count
                        self._critic_time, self._critic_count = 0.0, 0
                    self._writer_log({**scalars, **lrs, **self.norm.stats(), **speed})
                    tic, tic_step = time.perf_counter(), self.step
                self._step_times.append(time.perf_counter() - step_tic)
                if self.step % self.opts.val.every == 0 and has_val:
                    # a validation whose cost is known and no longer fits is skipped: the step's state is saved
                    # (every rank joins any_rank; only rank 0 validates, so only it may know the cost)
                    late = budget is not None and budget.validation is not None and \
                        budget.left() < budget.validation + budget.save + budget.export
                    if budget is not None and any_rank(late, self.dist, self.device):
                        saved = self.save()
                        reason = "time_limit"
                        stop_for_time("(its validation skipped)", False)
                        break
                    if self.dist.is_main:
                        val_tic = time.perf_counter()
                        self._validate()
                        self._validation_s = max(self._validation_s or 0.0, time.perf_counter() - val_tic)
                    if budget is not None:
                        budget.validation = self._validation_s
                if self.step % self.opts.checkpoint.every == 0:
                    saved = self.save()
                    if budget is not None:
                        budget.save = max(budget.save, self._last_save_s)
                if any_rank(self._stop_signal is not None, self.dist, self.device):
                    saved = self.save()
                    reason = "signal"
                    if bar is not None:
                        bar.write(f"{self._stop_signal or 'stop'} received: checkpoint written to {saved}; "
                                  "run again with --resume to continue")
                    break
            if reason is None and self.step < t.steps:
                reason = "until"
            if reason != "signal" and (saved is None or saved != ckpt.checkpoint_path(self.ckpt_dir, self.step)):
                saved = self.save()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            if bar is not None:
                bar.close()
            if self._writer is not None:
                self._writer.flush()
        return TrainResult(self.step, reason is not None, saved, last, reason)

    def export_generator(self) -> nn.Module:
        """The generator to publish: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.G
