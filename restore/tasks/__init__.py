"""Tasks: build networks, datasets and losses from options; one critic/generator loss; validation."""

from __future__ import annotations

from typing import Any


def build_task(opts: Any) -> Any:
    """The task object for ``opts.task`` (imports lazily so each task's dependencies load only when used)."""
    if opts.task == "sr":
        from restore.tasks.sr import SRTask

        return SRTask(opts)
    if opts.task == "spade":
        from restore.tasks.spade import SPADETask

        return SPADETask(opts)
    if opts.task == "stargan":
        from restore.tasks.stargan import StarGANTask

        return StarGANTask(opts)
    if opts.task == "attributes":
        from restore.tasks.attributes import AttributeClassifierTask

        return AttributeClassifierTask(opts)
    raise NotImplementedError(f"{opts.source}: task '{opts.task}' has no training pipeline")
