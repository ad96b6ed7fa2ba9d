import pytest
import torch
from torch import nn

from restore.norms import BSN, SN


def _train_forwards(module: nn.Module, x: torch.Tensor, times: int) -> None:
    module.train()
    for _ in range(times):
        module(x)


def test_sn_constant_matches_dense_svd():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, padding=1)
    original = conv.weight.detach().clone()
    SN().apply(conv)
    _train_forwards(conv, torch.randn(1, 6, 8, 8), 200)
    sigma_est = (original / conv.weight.detach()).mean()
    sigma = torch.linalg.svdvals(original.reshape(5, -1))[0]
    assert float(sigma_est) == pytest.approx(float(sigma), rel=1e-4)


def test_bsn_constants_match_dense_svd_of_both_reshapes():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, padding=1)
    original = conv.weight.detach().clone()
    BSN(scale=1.5).apply(conv)
    _train_forwards(conv, torch.randn(1, 6, 8, 8), 200)
    param = conv.parametrizations.weight[0]
    s1, s2 = param.sigmas(original)
    ref1 = torch.linalg.svdvals(original.reshape(5, -1))[0]
    ref2 = torch.linalg.svdvals(original.transpose(0, 1).reshape(6, -1))[0]
    assert float(s1) == pytest.approx(float(ref1), rel=1e-4)
    assert float(s2) == pytest.approx(float(ref2), rel=1e-4)
    assert abs(float(ref1) - float(ref2)) > 1e-3  # the two reshapes really differ, so the test tells them apart
    expected = original * 1.5 / ((ref1 + ref2) / 2)
    assert torch.allclose(conv.weight.detach(), expected, rtol=1e-4, atol=1e-6)


def test_bsn_on_linear_equals_sn_times_scale():
    torch.manual_seed(0)
    lin = nn.Linear(30, 9)
    original = lin.weight.detach().clone()
    BSN(scale=2.0).apply(lin)
    _train_forwards(lin, torch.randn(2, 30), 100)
    sigma = torch.linalg.svdvals(original)[0]
    assert torch.allclose(lin.weight.detach(), 2.0 * original / sigma, rtol=1e-4, atol=1e-6)


def test_eval_mode_freezes_power_iteration():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    BSN().apply(conv)
    conv.eval()
    param = conv.parametrizations.weight[0]
    before = param.u1.clone()
    conv(torch.randn(1, 3, 8, 8))
    assert torch.equal(param.u1, before)


def test_gradients_flow_through_normalised_weights():
    for norm in (SN(), BSN()):
        torch.manual_seed(0)
        conv = nn.Conv2d(3, 4, 3, padding=1)
        norm.apply(conv)
        conv(torch.randn(2, 3, 8, 8)).square().mean().backward()
        grad = conv.parametrizations.weight.original.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
