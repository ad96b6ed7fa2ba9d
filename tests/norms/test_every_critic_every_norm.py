"""Registry-driven: every registered critic x every registered norm builds, runs forward/backward, keeps its class
and output shape, and its penalty and step hooks work."""

import pytest
import torch

from restore.builders import build_critic
from restore.norms import build_norm
from restore.registry import CRITICS, NORMS


@pytest.mark.parametrize("arch", CRITICS.names())
@pytest.mark.parametrize("norm_name", NORMS.names())
def test_critic_with_norm(arch, norm_name):
    kwargs = dict(CRITICS.get(arch).TINY)
    torch.manual_seed(0)
    plain, _ = build_critic(arch, kwargs, build_norm("none"))
    torch.manual_seed(0)
    critic, norm = build_critic(arch, kwargs, build_norm(norm_name))
    assert type(critic) is type(plain)
    (x,) = critic.example_inputs(batch=3)
    out = critic(x)
    assert out.shape == plain(x).shape
    real, fake = x, torch.rand_like(x) * 2 - 1
    loss = torch.relu(1 - critic(real)).mean() + torch.relu(1 + critic(fake)).mean()
    pen = norm.penalty(critic, real, fake)
    assert pen.dim() == 0 and torch.isfinite(pen)
    (loss + pen).backward()
    grads = [p.grad for p in critic.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    norm.step()
    assert torch.isfinite(critic(x)).all()
