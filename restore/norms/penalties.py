"""Gradient penalties: WGAN-GP (Gulrajani et al. 2017) and R1 (Mescheder et al. 2018)."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from restore.norms.base import (
    Critic,
    CriticNorm,
    check_positive,
    input_gradients,
    per_sample,
    refuse_batchnorm,
    scores_of,
)
from restore.registry import NORMS, OptionValueError


def _check_reduce(reduce: str) -> None:
    if reduce not in ("mean", "sum"):
        raise OptionValueError("reduce", f"must be 'mean' or 'sum', got {reduce!r}")


def _grad_norms_sq(critic: Critic, x: Tensor, reduce: str) -> list[Tensor]:
    """Per-sample ||grad_x s(x)||^2 for each score tensor s of critic(x) (one per scale)."""
    return [input_gradients(per_sample(s, reduce), [x], create_graph=True) for s in scores_of(critic(x))]


@NORMS.register("gp")
class GP(CriticNorm):
    """WGAN-GP: weight * E[(||grad D(x_hat)||_2 - center)^2], x_hat = real + a (fake - real), a ~ U[0, 1] per sample.

    For patch or multi-scale critics, D is the per-sample mean (``reduce: mean``) or sum (``reduce: sum``, what the
    original StarGAN code differentiates) of each score map, and the penalties of the scales are added.
    """

    name = "gp"

    def __init__(self, weight: float = 10.0, center: float = 1.0, reduce: Literal["mean", "sum"] = "mean"):
        check_positive("weight", weight, strict=False)
        check_positive("center", center, strict=False)
        _check_reduce(reduce)
        self.weight = float(weight)
        self.center = float(center)
        self.reduce = reduce

    def apply(self, critic: nn.Module) -> nn.Module:
        refuse_batchnorm(critic, "GP")
        return critic

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        real, fake = real.detach(), fake.detach()
        alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
        x_hat = (real + alpha * (fake - real)).requires_grad_(True)
        total = real.new_zeros(())
        for sq in _grad_norms_sq(critic, x_hat, self.reduce):
            total = total + ((sq + 1e-12).sqrt() - self.center).pow(2).mean()
        return self.weight * total


@NORMS.register("r1")
class R1(CriticNorm):
    """R1: (gamma / 2) * E ||grad D(real)||^2.

    every: lazy regularization interval k (StyleGAN2): the penalty is applied on one critic step in k, multiplied
    by k so its average strength is unchanged; 1 = every step.
    """

    name = "r1"

    def __init__(self, gamma: float = 10.0, every: int = 1, reduce: Literal["mean", "sum"] = "mean"):
        check_positive("gamma", gamma, strict=False)
        if every < 1:
            raise OptionValueError("every", f"must be >= 1, got {every}")
        _check_reduce(reduce)
        self.gamma = float(gamma)
        self.every = int(every)
        self.reduce = reduce
        self._steps = 0

    def apply(self, critic: nn.Module) -> nn.Module:
        refuse_batchnorm(critic, "R1")
        return critic

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        if self._steps % self.every != 0:
            return real.new_zeros(())
        x = real.detach().requires_grad_(True)
        total = real.new_zeros(())
        for sq in _grad_norms_sq(critic, x, self.reduce):
            total = total + sq.mean()
        return (self.gamma / 2) * self.every * total

    def step(self) -> None:
        self._steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self._steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._steps = int(state.get("steps", 0))
