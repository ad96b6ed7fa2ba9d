"""Spectral normalization (Miyato et al. 2018) and bidirectional spectral normalization (Lin et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize

from restore.norms.base import CriticNorm, check_positive, weighted_layers
from restore.registry import NORMS, OptionValueError


def _check_iterations(n: int) -> None:
    if n < 1:
        raise OptionValueError("n_power_iterations", f"must be >= 1, got {n}")


@NORMS.register("sn")
class SN(CriticNorm):
    """SN: torch's ``spectral_norm`` parametrization on every Conv2d and Linear layer.

    W is divided by the top singular value of W reshaped to (out, in*k*k), estimated by power iteration with a
    persistent vector, one iteration per training-mode forward (as torch and the SN paper do).
    """

    name = "sn"

    def __init__(self, n_power_iterations: int = 1, eps: float = 1e-12):
        _check_iterations(n_power_iterations)
        check_positive("eps", eps)
        self.n_power_iterations = int(n_power_iterations)
        self.eps = float(eps)

    def apply(self, critic: nn.Module) -> nn.Module:
        for _, module in weighted_layers(critic, (nn.Conv2d, nn.Linear), "SN"):
            parametrizations.spectral_norm(module, n_power_iterations=self.n_power_iterations, eps=self.eps)
        return critic


class BSNWeight(nn.Module):
    """W -> c * W / ((sigma_1 + sigma_2) / 2), sigma_1 = ||W as (out, in*k*k)||_2, sigma_2 = ||W as (in, out*k*k)||_2.

    Each sigma is estimated by power iteration with persistent vectors (updated in training-mode forwards, like SN);
    the gradient flows through W with the vectors held fixed, as in SN.
    """

    def __init__(self, weight: Tensor, n_power_iterations: int, scale: float, eps: float):
        super().__init__()
        self.n_power_iterations = n_power_iterations
        self.scale = scale
        self.eps = eps
        out_ch, in_ch = weight.shape[0], weight.shape[1]
        w1, w2 = self._matrices(weight)
        self.register_buffer("u1", F.normalize(weight.new_empty(out_ch).normal_(), dim=0, eps=eps))
        self.register_buffer("v1", F.normalize(weight.new_empty(w1.shape[1]).normal_(), dim=0, eps=eps))
        self.register_buffer("u2", F.normalize(weight.new_empty(in_ch).normal_(), dim=0, eps=eps))
        self.register_buffer("v2", F.normalize(weight.new_empty(w2.shape[1]).normal_(), dim=0, eps=eps))
        self._power_iteration(weight.detach(), 15)

    @staticmethod
    def _matrices(weight: Tensor) -> tuple[Tensor, Tensor]:
        return weight.reshape(weight.shape[0], -1), weight.transpose(0, 1).reshape(weight.shape[1], -1)

    @torch.no_grad()
    def _power_iteration(self, weight: Tensor, iterations: int) -> None:
        w1, w2 = self._matrices(weight)
        for _ in range(iterations):
            for w, u, v in ((w1, self.u1, self.v1), (w2, self.u2, self.v2)):
                v.copy_(F.normalize(w.T @ u, dim=0, eps=self.eps))
                u.copy_(F.normalize(w @ v, dim=0, eps=self.eps))

    def sigmas(self, weight: Tensor) -> tuple[Tensor, Tensor]:
        w1, w2 = self._matrices(weight)
        return self.u1 @ w1 @ self.v1, self.u2 @ w2 @ self.v2

    def forward(self, weight: Tensor) -> Tensor:
        if self.training:
            self._power_iteration(weight.detach(), self.n_power_iterations)
        # clone: the buffers change in place on the next training forward while autograd may still need them
        w1, w2 = self._matrices(weight)
        s1 = self.u1.clone() @ w1 @ self.v1.clone()
        s2 = self.u2.clone() @ w2 @ self.v2.clone()
        return weight * (2.0 * self.scale / (s1 + s2))


@NORMS.register("bsn")
class BSN(CriticNorm):
    """Bidirectional spectral normalization (Lin et al. 2020): the mean of the two reshaped spectral norms.

    scale: the constant c of scaled BSN (1 = plain BSN). For Linear layers both reshapes have the same norm, so
    BSN equals SN times c there.
    """

    name = "bsn"

    def __init__(self, n_power_iterations: int = 1, scale: float = 1.0, eps: float = 1e-12):
        _check_iterations(n_power_iterations)
        check_positive("scale", scale)
        check_positive("eps", eps)
        self.n_power_iterations = int(n_power_iterations)
        self.scale = float(scale)
        self.eps = float(eps)

    def apply(self, critic: nn.Module) -> nn.Module:
        for _, module in weighted_layers(critic, (nn.Conv2d, nn.Linear), "BSN"):
            param = BSNWeight(module.weight.detach(), self.n_power_iterations, self.scale, self.eps)
            parametrize.register_parametrization(module, "weight", param)
        return critic
