"""Tasks: build networks, datasets and losses from options; one critic/generator loss; validation.

Importing this package registers every task in :data:`restore.registry.TASKS` (``sr``, ``spade``, ``stargan``,
``attributes``); :func:`build_task` builds the one a recipe names.
"""

from __future__ import annotations

from typing import Any

from restore.engine.task import Task, missing_methods
from restore.registry import TASKS
from restore.tasks import attributes, spade, sr, stargan  # noqa: F401  (register their tasks)

__all__ = ["TASKS", "Task", "build_task", "missing_methods"]


def build_task(opts: Any) -> Task:
    """The task object for ``opts.task``; an unknown name is a ConfigError naming the file and the valid ones."""
    from restore.config import ConfigError

    if opts.task not in TASKS:
        raise ConfigError(f"{opts.source}: task '{opts.task}' has no training pipeline; valid: "
                          f"{', '.join(TASKS.names())}")
    return TASKS.get(opts.task)(opts)
