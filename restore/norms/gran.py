"""GraN: piecewise gradient normalization (Bhaskara et al., GraN-GAN, WACV 2022).

The critic f becomes, per sample,

    D(x) = K * f(x) * ||grad_x f(x)|| / (||grad_x f(x)||^2 + eps)

so that for piecewise-linear critics (ReLU/LeakyReLU) ||grad_x D|| = K ||grad f||^2 / (||grad f||^2 + eps) < K almost
everywhere, and D keeps the sign of f. The gradient is taken with create_graph, so the critic trains through it.
eps is not stated in the material we have; it is an option (default 1e-4) and should be reported with results.

Patch critics: f is the per-sample mean of the score map and the whole map is scaled by the same factor.
Multi-scale critics: each scale is normalised on its own. Conditional critics: the gradient is taken w.r.t. every
floating-point tensor argument together (so ||grad_image D|| < K still holds).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn

from restore.norms.base import (
    CriticNorm,
    check_positive,
    input_gradients,
    per_sample,
    refuse_batchnorm,
    replace_scores,
    scores_of,
)
from restore.registry import NORMS


def gran_scale(score: Tensor, grad_sq: Tensor, K: float, eps: float) -> Tensor:
    """Multiply a score map (N, ...) by K * ||grad|| / (||grad||^2 + eps), per sample."""
    factor = K * grad_sq.clamp_min(0).sqrt() / (grad_sq + eps)
    return score * factor.reshape((-1,) + (1,) * (score.dim() - 1)).to(score.dtype)


@NORMS.register("gran")
class GraN(CriticNorm):
    """Gradient normalization of the critic's output (wraps ``forward``; the critic's class is unchanged)."""

    name = "gran"

    def __init__(self, K: float = 1.0, eps: float = 1e-4):
        check_positive("K", K)
        check_positive("eps", eps)
        self.K = float(K)
        self.eps = float(eps)

    def apply(self, critic: nn.Module) -> nn.Module:
        refuse_batchnorm(critic, "GraN")
        if getattr(critic, "_gran_wrapped", False):
            raise ValueError("GraN is already applied to this critic")
        inner = critic.forward
        critic.forward = functools.partial(self._forward, inner)  # instance attribute: class stays the same
        critic._gran_wrapped = True
        return critic

    def _forward(self, inner: Any, *args: Any, **kwargs: Any) -> Any:
        outer_grad = torch.is_grad_enabled()
        with torch.enable_grad():
            args = tuple(a.detach().requires_grad_(True) if _needs_leaf(a) else a for a in args)
            inputs = [a for a in args if isinstance(a, Tensor) and a.is_floating_point()]
            if not inputs:
                raise TypeError("GraN needs at least one floating-point tensor input to differentiate")
            output = inner(*args, **kwargs)
            scaled = []
            for score in scores_of(output):
                grad_sq = input_gradients(per_sample(score), inputs, create_graph=outer_grad)
                scaled.append(gran_scale(score, grad_sq, self.K, self.eps))
        result = replace_scores(output, scaled)
        if not outer_grad:
            result = _detach(result)
        return result


def _needs_leaf(a: Any) -> bool:
    return isinstance(a, Tensor) and a.is_floating_point() and not a.requires_grad


def _detach(output: Any) -> Any:
    if isinstance(output, Tensor):
        return output.detach()
    if isinstance(output, (list, tuple)):
        return type(output)(_detach(o) for o in output)
    return output
