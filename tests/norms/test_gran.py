import copy

import pytest
import torch
from torch import nn

from restore.norms import GraN


def _leaky_critic() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.LeakyReLU(0.2),
                         nn.Linear(16, 1))


@pytest.mark.parametrize("K", [1.0, 0.5, 3.0])
def test_input_gradient_is_below_K_and_sign_is_kept(K):
    torch.manual_seed(0)
    f = _leaky_critic()
    with torch.no_grad():  # scale weights up so ||grad f|| is far from 1 (the bound must still hold)
        for p in f.parameters():
            p.mul_(3)
    D = GraN(K=K, eps=1e-4).apply(copy.deepcopy(f))
    x = torch.randn(32, 3, 8, 8, requires_grad=True)
    out = D(x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    norms = grad.flatten(1).norm(dim=1)
    assert (norms < K).all()
    assert norms.max() > 0.5 * K  # non-trivial: gradients are close to the bound, not vanishing
    fx = f(x)
    assert torch.equal(torch.sign(out), torch.sign(fx))
    # and D is exactly K f ||grad f|| / (||grad f||^2 + eps)
    (gf,) = torch.autograd.grad(fx.sum(), x)
    gn = gf.flatten(1).norm(dim=1, keepdim=True)
    assert torch.allclose(out, K * fx * gn / (gn**2 + 1e-4), rtol=1e-4, atol=1e-6)


def test_class_is_unchanged_and_critic_trains_through_the_gradient():
    torch.manual_seed(0)
    critic = _leaky_critic()
    cls = type(critic)
    GraN().apply(critic)
    assert type(critic) is cls
    critic(torch.randn(4, 3, 8, 8)).mean().backward()
    grads = [p.grad for p in critic.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_works_without_grad_and_scales_patch_maps_uniformly():
    torch.manual_seed(0)
    patch = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3, padding=1))
    raw = patch(x := torch.randn(2, 3, 6, 6)).detach()
    GraN().apply(patch)
    with torch.no_grad():
        out = patch(x)
    assert not out.requires_grad
    ratio = out / raw
    assert torch.allclose(ratio, ratio[:, :, :1, :1].expand_as(ratio), rtol=1e-4)


def test_double_application_is_refused():
    critic = GraN().apply(_leaky_critic())
    with pytest.raises(ValueError, match="already"):
        GraN().apply(critic)
