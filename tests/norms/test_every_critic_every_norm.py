"""Registry-driven: every registered critic x every registered norm builds, runs forward/backward, keeps its class
and output shape, and its penalty and step hooks work."""

import pytest
import torch

from restore.builders import build_critic
from restore.norms import build_norm
from restore.norms.base import scores_of
from restore.registry import CRITICS, NORMS


def extras(output) -> list[torch.Tensor]:
    """Tensors a critic returns beside its scores (classification logits, features), flattened."""
    if not isinstance(output, tuple):
        return []
    flat, todo = [], list(output[1:])
    while todo:
        item = todo.pop()
        if isinstance(item, torch.Tensor):
            flat.append(item)
        else:
            todo.extend(item)
    return flat


@pytest.mark.parametrize("arch", CRITICS.names())
@pytest.mark.parametrize("norm_name", NORMS.names())
def test_critic_with_norm(arch, norm_name):
    """Single-input and conditional critics (extra inputs after the image), plain, multi-scale or tuple outputs."""
    kwargs = dict(CRITICS.get(arch).TINY)
    padding = getattr(NORMS.get(norm_name), "padding_mode", None)  # SAN's builder sets circular padding
    torch.manual_seed(0)
    plain, _ = build_critic(arch, {**kwargs, "padding_mode": padding} if padding else kwargs, build_norm("none"))
    torch.manual_seed(0)
    critic, norm = build_critic(arch, kwargs, build_norm(norm_name))
    assert type(critic) is type(plain)
    x, *cond = critic.example_inputs(batch=3)
    shapes = [s.shape for s in scores_of(critic(x, *cond))]
    assert shapes == [s.shape for s in scores_of(plain(x, *cond))]

    def scores(images):
        return scores_of(critic(images, *cond))

    real, fake = x, torch.rand_like(x) * 2 - 1
    loss = sum(torch.relu(1 - s).mean() for s in scores(real)) + sum(torch.relu(1 + s).mean() for s in scores(fake))
    pen = norm.penalty(lambda images: critic(images, *cond), real, fake)
    assert pen.dim() == 0 and torch.isfinite(pen)
    loss = loss + sum(t.float().square().mean() for t in extras(critic(real, *cond)))  # e.g. attribute heads
    (loss + pen).backward()
    grads = [p.grad for p in critic.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    norm.step()
    assert all(torch.isfinite(s).all() for s in scores(x))
