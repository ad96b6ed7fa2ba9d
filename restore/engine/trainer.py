"""The GAN training loop shared by every task: critic step(s), then a generator step.

The task supplies the networks, datasets and losses (``restore.tasks.base.Task``); the engine owns optimisation,
mixed precision, EMA, distribution, logging, validation scheduling, checkpoints and exact resume. Only the engine
writes logs (TensorBoard + ``metrics.jsonl``); losses and norms report named scalars.

Distribution: the generator is wrapped in torch's DistributedDataParallel. The critic is not: GP, R1 and GraN
differentiate input gradients (``autograd.grad(create_graph=True)``), which DDP documents as unsupported, so the
critic's gradients are all-reduced explicitly after ``backward()`` (the same averaging DDP performs).
"""

from __future__ import annotations

import copy
import json
import math
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from restore.config import Options, to_dict
from restore.engine import checkpoint as ckpt
from restore.engine.distributed import DistInfo, any_rank
from restore.engine.sampler import EpochIndexed, StepBatchSampler


class TrainingDiverged(RuntimeError):
    """A loss became NaN/inf; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    step: int
    stopped_early: bool
    checkpoint: Path | None
    last_scalars: dict[str, float]


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


def generator_description(opts: Options, task: Any, generator: nn.Module) -> dict[str, Any]:
    """{"type", "kwargs", "extra"} of the generator: tasks that derive kwargs from the data (SPADE's label
    channels) or carry what inference needs (palettes, attribute names) provide ``describe_generator()``."""
    describe = getattr(task, "describe_generator", None)
    if describe is not None:
        return describe()
    return {"type": opts.generator.name if opts.generator else type(generator).__name__,
            "kwargs": dict(opts.generator.kwargs) if opts.generator else {}, "extra": {}}


def _ignore_stop_signals(_worker_id: int) -> None:
    """Data workers leave SIGTERM/SIGINT to the main process. ``pkill -f``, Ctrl-C and SLURM's scancel signal the
    whole process group; a worker that died of it would crash the main process before it could write its pause
    checkpoint. The main process shuts the workers down itself (and they exit when it is gone)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Trainer:
    """Runs ``task`` for ``opts.train.steps`` steps in ``run_dir`` (checkpoints/, tb/, samples/, metrics.jsonl)."""

    def __init__(self, opts: Options, task: Any, run_dir: str | Path, device: torch.device,
                 dist_info: DistInfo | None = None, progress: bool = True):
        self.opts, self.task, self.device = opts, task, device
        self.dist = dist_info or DistInfo()
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.progress = progress and self.dist.is_main
        t = opts.train
        cuda = device.type == "cuda"
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t.amp) if cuda else None
        fmt = torch.channels_last if (cuda and t.channels_last) else torch.contiguous_format

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
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr_g, betas=t.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d, betas=t.betas) if self.D is not None else None
        self.sched_g = make_scheduler(self.opt_g, t)
        self.sched_d = make_scheduler(self.opt_d, t) if self.opt_d is not None else None
        self.ema = EMA(self.G, t.ema) if t.ema else None
        scaler_on = self.amp_dtype is torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=scaler_on)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=scaler_on)
        self.step = 0
        self._critic_time, self._critic_count = 0.0, 0
        self._stop_signal: str | None = None
        self._writer = None

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
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.G.load_state_dict(state["generator"]["state"])
        if self.D is not None:
            if state.get("critic") is None:
                raise ValueError("the checkpoint has no critic, but this run trains one (different recipe?)")
            self.D.load_state_dict(state["critic"])
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

    def save(self) -> Path:
        """Write a checkpoint (rank 0; every rank must call it because RNG states are gathered)."""
        state = self.state_dict()
        path = ckpt.checkpoint_path(self.ckpt_dir, self.step)
        if self.dist.is_main:
            ckpt.save_atomic(state, path)
            ckpt.prune(self.ckpt_dir, self.opts.checkpoint.keep)
        return path

    def resume(self, path: str | Path | None = None) -> Path | None:
        """Load ``path`` or the newest checkpoint of the run folder; None when there is none."""
        path = Path(path) if path else ckpt.latest_checkpoint(self.ckpt_dir)
        if path is None:
            return None
        self.load_state_dict(ckpt.load(path, map_location=self.device))
        return path

    # ------------------------------------------------------------------------------------------ steps
    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast("cuda", dtype=self.amp_dtype)

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
            loss, scalars = self.task.critic_loss(self.D, batch, fake.detach())
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
                loss, scalars = self.task.generator_loss(self.D, batch, fake)
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

            self._writer = SummaryWriter(str(self.run_dir / "tb"))
        for k, v in scalars.items():
            self._writer.add_scalar(k, v, self.step)
        for k, img in (images or {}).items():
            self._writer.add_image(k, img.clamp(0, 1), self.step)
        with (self.run_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps({"step": self.step, **scalars}) + "\n")

    def _validate(self) -> dict[str, float]:
        model = self.ema.module if self.ema is not None else self.G
        was_training = model.training
        model.eval()
        try:
            metrics, grid = self.task.validate(model, self.device)
        finally:
            model.train(was_training)
        images = {}
        if grid is not None:
            images["val/samples"] = grid
            from torchvision.utils import save_image

            (self.run_dir / "samples").mkdir(parents=True, exist_ok=True)
            save_image(grid, self.run_dir / "samples" / f"step_{self.step:08d}.png")
        scalars = {f"val/{k}": v for k, v in metrics.items()}
        self._writer_log(scalars, images)
        return scalars

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signal.Signals(signum).name

    def _record_hardware(self) -> None:
        """One line per training chunk in hardware.jsonl: a model card must name where the steps ran, not where
        ``restore publish`` happens to run (chunks may run on different machines)."""
        import json

        from restore.cards import hardware

        row = {"step": self.step, **hardware(self.device), "processes": self.dist.world_size}
        with open(self.run_dir / "hardware.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")

    def fit(self, stop_at: int | None = None) -> TrainResult:
        """Train from ``self.step`` to ``opts.train.steps`` (or pause at ``stop_at``: training in chunks, e.g. on a
        time-limited GPU); checkpoints every N steps, on SIGINT/SIGTERM and at the end. Raises
        :class:`TrainingDiverged` on a non-finite loss (the last good checkpoint stays)."""
        t = self.opts.train
        end = t.steps if stop_at is None else min(t.steps, stop_at)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            import yaml

            (self.run_dir / "options.yml").write_text(yaml.safe_dump(to_dict(self.opts), sort_keys=False))
            self._record_hardware()
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
        stopped = False
        tic, tic_step = time.perf_counter(), self.step
        try:
            self.G_train.train()
            if self.D is not None:
                self.D.train()
            while self.step < end:
                scalars: dict[str, float] = {}
                fake = batch = None
                for k in range(t.critic_steps if self.D is not None else 1):
                    batch = self.task.to_device(next(data), self.device)
                    last_batch = k == (t.critic_steps if self.D is not None else 1) - 1
                    with torch.set_grad_enabled(last_batch), self._autocast():
                        fake = self.task.generate(self.G_train, batch)
                    if self.D is not None:
                        scalars.update(self.critic_step(batch, fake))
                scalars.update(self.generator_step(batch, fake))
                self.sched_g.step()
                if self.sched_d is not None:
                    self.sched_d.step()
                self.step += 1
                bad = [k for k, v in scalars.items() if not math.isfinite(v)]
                if any_rank(bool(bad), self.dist, self.device):
                    good = ckpt.latest_checkpoint(self.ckpt_dir)
                    raise TrainingDiverged(
                        f"non-finite loss at step {self.step} ({', '.join(bad) or 'on another rank'}); stopping. "
                        f"Last good checkpoint: {good or 'none yet'}. Lower the learning rates, check the data, "
                        "or use a stronger critic norm.")
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
                if self.step % self.opts.val.every == 0 and self.dist.is_main and self.task.has_validation():
                    self._validate()
                if self.step % self.opts.checkpoint.every == 0:
                    saved = self.save()
                if any_rank(self._stop_signal is not None, self.dist, self.device):
                    saved = self.save()
                    stopped = True
                    if bar is not None:
                        bar.write(f"{self._stop_signal or 'stop'} received: checkpoint written to {saved}; "
                                  "run again with --resume to continue")
                    break
            if not stopped and (saved is None or saved != ckpt.checkpoint_path(self.ckpt_dir, self.step)):
                saved = self.save()
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            if bar is not None:
                bar.close()
            if self._writer is not None:
                self._writer.flush()
        return TrainResult(self.step, stopped or self.step < t.steps, saved, last)

    def export_generator(self) -> nn.Module:
        """The generator to publish: the EMA copy when EMA is on."""
        return self.ema.module if self.ema is not None else self.G
