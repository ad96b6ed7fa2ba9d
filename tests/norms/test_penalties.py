import pytest
import torch
from torch import nn

from restore.builders import build_critic
from restore.norms import GP, R1, build_norm


class Linear(nn.Module):
    """D(x) = <w, x> + b: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1, keepdim=True) + 0.5


class HalfSquare(nn.Module):
    """D(x) = ||x||^2 / 2: its input gradient is x."""

    def forward(self, x):
        return 0.5 * x.flatten(1).pow(2).sum(1)


def test_gp_on_linear_critic_is_hand_computed():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4)
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    value = GP(weight=10).penalty(Linear(w), real, fake)
    assert float(value) == pytest.approx(10 * (float(w.norm()) - 1) ** 2, rel=1e-5)


def test_gp_on_half_square_at_the_data_is_hand_computed():
    real = torch.tensor([[3.0, 4.0], [0.0, 0.5]])  # norms 5 and 0.5
    value = GP(weight=2).penalty(HalfSquare(), real, real.clone())
    assert float(value) == pytest.approx(2 * ((5 - 1) ** 2 + (0.5 - 1) ** 2) / 2, rel=1e-5)


def test_gp_interpolates_between_real_and_fake():
    real, fake = torch.zeros(2000, 1), torch.ones(2000, 1)
    # grad of x^2/2 at x_hat = alpha; E[(alpha - 1)^2] = 1/3 for alpha ~ U[0, 1]
    value = GP(weight=1).penalty(HalfSquare(), real, fake)
    assert float(value) == pytest.approx(1 / 3, abs=0.03)


def test_r1_is_hand_computed_and_lazy():
    real = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    r1 = R1(gamma=4, every=3)
    assert float(r1.penalty(HalfSquare(), real, real)) == pytest.approx(4 / 2 * 3 * (25 + 1) / 2)
    r1.step()
    assert float(r1.penalty(HalfSquare(), real, real)) == 0.0
    r1.step()
    r1.step()
    assert float(r1.penalty(HalfSquare(), real, real)) > 0
    assert r1.state_dict() == {"steps": 3}


def test_penalties_backpropagate_into_the_critic():
    torch.manual_seed(0)
    critic = Linear(torch.randn(2, 3, 3))
    GP().penalty(critic, torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)).backward()
    assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def test_patch_and_multiscale_outputs_reduce_per_sample():
    w = torch.randn(1, 2, 2)

    class Patch(nn.Module):
        def forward(self, x):  # (N, 1, 2, 2) map with the same linear function at every patch
            return (x * w).sum((1, 2, 3), keepdim=True).expand(-1, 1, 2, 2)

    class TwoScales(Patch):
        def forward(self, x):
            s = super().forward(x)
            return ([s, 2 * s], "features")

    real = torch.randn(3, 1, 2, 2)
    g = float(w.norm())
    assert float(GP(weight=1, reduce="mean").penalty(Patch(), real, real)) == pytest.approx((g - 1) ** 2, rel=1e-5)
    assert float(GP(weight=1, reduce="sum").penalty(Patch(), real, real)) == pytest.approx((4 * g - 1) ** 2, rel=1e-5)
    expected = (g - 1) ** 2 + (2 * g - 1) ** 2
    assert float(GP(weight=1).penalty(TwoScales(), real, real)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("name", ["none", "san", "sn", "bsn", "gran"])
def test_weight_norms_add_no_penalty(name):
    critic, norm = build_critic("standard_cnn", {"width": 4, "image_size": 16}, build_norm(name))
    x = torch.randn(2, 3, 16, 16)
    assert float(norm.penalty(critic, x, x)) == 0.0


def test_penalties_refuse_batchnorm_critics():
    critic = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    for name in ("gp", "r1", "gran"):
        with pytest.raises(ValueError, match="BatchNorm2d.*per-sample"):
            build_norm(name).apply(critic)
