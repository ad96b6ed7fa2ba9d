"""Critic normalization strategies, built from an option block ``{type: none|san|sn|bsn|gp|r1|gran, ...}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from restore.norms import gran, penalties, san, spectral  # noqa: F401  (registers the methods)
from restore.norms.base import CriticNorm, NoNorm
from restore.norms.gran import GraN
from restore.norms.penalties import GP, R1
from restore.norms.san import SAN
from restore.norms.spectral import BSN, SN
from restore.registry import NORMS


def build_norm(spec: Mapping[str, Any] | str | Any = None) -> CriticNorm:
    """Build a :class:`CriticNorm` from ``{type: name, **options}``, a bare name, or a parsed ``NormSpec``.

    Unknown types and options raise errors that list the valid ones; bad values name the option.
    """
    if spec is None:
        return NoNorm()
    if hasattr(spec, "build") and hasattr(spec, "name"):  # restore.config.NormSpec: already validated
        return spec.build()
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"a critic norm is given as {{type: name, ...}} with name in {', '.join(NORMS.names())}; "
                         f"got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    try:
        return NORMS.build_checked(str(spec["type"]), kwargs)
    except KeyError as err:
        raise ValueError(err.args[0]) from None


__all__ = ["BSN", "GP", "SAN", "SN", "CriticNorm", "GraN", "NoNorm", "R1", "build_norm"]
