"""The construction steps every task shares: the critic, the pretrained generator, data-derived kwargs.

Every task builds its critic and loads ``train.pretrained_generator`` through :func:`build_task_critic` and
:func:`init_pretrained_generator`, so their option errors carry the file prefix. The contract a task meets is
:class:`restore.engine.task.Task`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from restore.config import ConfigError
from restore.norms import CriticNorm


def default_description(opts: Any, generator: nn.Module) -> dict[str, Any]:
    """The generator description of a task whose generator is the recipe's block as written (SR)."""
    return {"type": opts.generator.name if opts.generator else type(generator).__name__,
            "kwargs": dict(opts.generator.kwargs) if opts.generator else {}, "extra": {}}


def check_derived(spec: Any, where: str, derived: Mapping[str, Any], src: str) -> None:
    """Options the data determines may be left out; an explicit conflicting value is an error naming both."""
    for key, value in derived.items():
        if key in spec.kwargs and spec.kwargs[key] != value:
            raise ConfigError(f"{spec.source or src}: {where}.{key} is {spec.kwargs[key]} but the data gives "
                              f"{value}; remove {where}.{key} (it is taken from the data)")


def build_task_critic(opts: Any, derived: Mapping[str, Any] | None = None) -> tuple[nn.Module, CriticNorm]:
    """The recipe's critic with its norm; ``derived``: kwargs the task takes from its data (checked against the
    recipe's by :func:`check_derived`). Errors are ConfigErrors naming the file and key."""
    from restore.builders import build_critic_from_spec

    derived = dict(derived or {})
    check_derived(opts.critic, "critic", derived, opts.source or "<options>")
    return build_critic_from_spec(opts.critic, derived)


def init_pretrained_generator(generator: nn.Module, opts: Any) -> None:
    """Load ``train.pretrained_generator`` (when set) into ``generator``: restore weights of its architecture, or a
    community file (an ESRGAN-family file into ``rrdbnet``: :func:`restore.engine.weights.load_state_into`); errors
    name the recipe, the key and the weights file."""
    path = opts.train.pretrained_generator
    if not path:
        return
    from restore.engine.weights import load_state_into

    try:
        load_state_into(generator, path)
    except (ValueError, FileNotFoundError) as err:
        prefix = f"{opts.source}: " if opts.source else ""
        raise ConfigError(f"{prefix}train.pretrained_generator: {err}") from None
