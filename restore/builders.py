"""Builders: turn validated option specs into modules. The only place that joins archs and norms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

import restore.archs  # noqa: F401  (fills the CRITICS registry)
from restore.norms import CriticNorm, build_norm
from restore.registry import CRITICS


def build_critic(arch: str, kwargs: Mapping[str, Any] | None = None, norm: CriticNorm | None = None,
                 where: str = "critic") -> tuple[nn.Module, CriticNorm]:
    """Build critic ``arch`` with ``kwargs`` and apply ``norm`` to it.

    When the norm needs a padding mode (SAN: circular), it is set here; an explicit conflicting ``padding_mode``
    or an architecture that takes none is an error naming the key.
    """
    kwargs = dict(kwargs or {})
    norm = norm if norm is not None else build_norm(None)
    if norm.padding_mode is not None:
        params = CRITICS.parameters(arch)
        if "padding_mode" not in params:
            raise ValueError(f"{where}.arch: critic '{arch}' takes no padding_mode, but critic norm "
                             f"'{norm.name}' needs padding_mode={norm.padding_mode!r}")
        chosen = kwargs.get("padding_mode", norm.padding_mode)
        if chosen != norm.padding_mode:
            raise ValueError(f"{where}.padding_mode is {chosen!r}, but critic norm '{norm.name}' needs "
                             f"{norm.padding_mode!r} (leave padding_mode out and it is set for you)")
        kwargs["padding_mode"] = norm.padding_mode
    critic = CRITICS.build(arch, **kwargs)
    return norm.apply(critic), norm


def build_critic_from_spec(spec: Any, derived: Mapping[str, Any] | None = None) -> tuple[nn.Module, CriticNorm]:
    """From a validated :class:`restore.config.CriticSpec` (errors carry its file and key path). ``derived``:
    kwargs the task fixes from its data (label channels, attribute count, image size), added to the recipe's."""
    from restore.config import ConfigError

    norm = spec.norm.build()
    try:
        return build_critic(spec.name, {**spec.kwargs, **(derived or {})}, norm, where=spec.where or "critic")
    except ValueError as err:
        prefix = f"{spec.source}: " if spec.source else ""
        raise ConfigError(f"{prefix}{err}") from None
