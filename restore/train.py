"""``train()``: the one way to start a training run, for the CLI, ``restore ablate``, the benchmarks and users' code.

    from restore.train import train
    result = train("options/train/sr/x4_smoke.yml", overrides=["train.steps=10"], device="cpu")
    result.weights  # runs/sr_x4_smoke/sr_x4_smoke.safetensors

A run lives in its run folder (:mod:`restore.engine.runs`): calling ``train`` again on the same recipe resumes
from the newest checkpoint, bit-identically, until ``train.steps``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from restore.config import load_options, parse_duration


@dataclass(frozen=True)
class RunResult:
    """What a call of :func:`train` left behind."""

    run_dir: Path
    #: the exported generator (``<run>/<name>.safetensors``); None when the run paused without exporting
    weights: Path | None
    #: the last step trained (equal to ``train.steps`` when the run finished)
    step: int
    checkpoint: Path | None
    #: None when the run finished; else "time_limit", "signal" or "until"
    stop_reason: str | None
    resumed_from: Path | None

    @property
    def finished(self) -> bool:
        return self.stop_reason is None


def train(recipe: str | Path, overrides: Sequence[str] = (), device: str = "auto", resume: str | Path | None = None,
          until: int | None = None, time_limit: float | str | None = None, progress: bool = True,
          started: float | None = None, say: Callable[[str], None] | None = print) -> RunResult:
    """Train ``recipe`` (a YAML option file) with ``overrides`` (``key.path=value`` strings, as ``--set``).

    - ``resume``: None resumes from the run folder's newest checkpoint when there is one (else starts fresh);
      ``"auto"`` resumes from the newest one; a path resumes from that checkpoint.
    - ``until``: pause at that step with a checkpoint (training in chunks).
    - ``time_limit``: seconds or a duration (``"8m"``); overrides ``train.time_limit``. It counts from ``started``
      (a ``time.monotonic()`` value; default: now), so that the CLI can count its own start-up as well.
    - ``say``: where the few lines for the user go (resumed from, done, paused); None is quiet. Only rank 0 says
      anything under DDP (``torchrun``), which :func:`train` picks up from the environment.

    Raises :class:`restore.config.ConfigError` for a bad recipe, :class:`restore.engine.trainer.TrainingDiverged`
    when a loss stops being finite (the last good checkpoint stays), ValueError for a device that is not there.
    """
    import torch

    from restore.engine import distributed
    from restore.engine.checkpoint import latest_checkpoint
    from restore.engine.runs import RunFolder
    from restore.engine.trainer import Trainer
    from restore.tasks import build_task

    started = started if started is not None else time.monotonic()
    opts = load_options(recipe, overrides)
    if isinstance(time_limit, str):
        time_limit = parse_duration(time_limit)
    limit = time_limit if time_limit is not None else opts.train.time_limit
    info, dev = distributed.init_from_env(device)
    quiet = say is None or not info.is_main

    def tell(text: str) -> None:
        if not quiet:
            say(text)

    run = RunFolder.of(opts)
    fresh = not run.root.exists()  # a run that fails before its first checkpoint leaves no folder behind
    failed = False
    try:
        torch.manual_seed(opts.seed)  # same on every rank: identical initial weights (rank 0 is broadcast anyway)
        random.seed(opts.seed)
        task = build_task(opts)
        torch.manual_seed(opts.seed + info.rank)  # per-rank stream for penalties' random draws
        trainer = Trainer(opts, task, run.root, dev, info, progress=progress)
        resumed = None
        if resume is not None or latest_checkpoint(run.checkpoints) is not None:
            resumed = trainer.resume(resume if resume not in (None, "auto") else None)
            if resumed is not None:
                tell(f"resumed from {resumed} at step {trainer.step}")
        result = trainer.fit(stop_at=until, time_limit=limit, started=started)
        weights = None
        if info.is_main:
            if result.stop_reason == "time_limit":
                weights = trainer.export_weights()
                tell(f"time limit reached at step {result.step} of {opts.train.steps} after "
                     f"{time.monotonic() - started:.1f}s (limit {limit:.1f}s); checkpoint {result.checkpoint}; "
                     f"generator {weights} (the same command continues from the checkpoint)")
            elif result.stopped_early:
                tell(f"paused at step {result.step}; checkpoint {result.checkpoint} "
                     "(the same command continues from there)")
            else:
                weights = trainer.export_weights()
                tell(f"done: step {result.step}; checkpoint {result.checkpoint}; generator {weights}")
        return RunResult(run.root, weights, result.step, result.checkpoint, result.stop_reason, resumed)
    except BaseException:
        failed = True
        if fresh and info.is_main and latest_checkpoint(run.checkpoints) is None and run.root.is_dir():
            import shutil

            shutil.rmtree(run.root, ignore_errors=True)
        raise
    finally:
        distributed.cleanup(synchronise=not failed)
