"""StarGAN generator and critic (SAN paper Table 7): shapes, conditioning, per-image statistics, sizes, errors."""

from __future__ import annotations

import typing

import pytest
import torch
from torch import nn

import restore.archs  # noqa: F401  (registers the architectures)
from restore.archs.layers import Conv2d
from restore.archs.stargan import StarGANCritic, StarGANGenerator, tile_attributes
from restore.builders import build_critic
from restore.norms import build_norm
from restore.norms.base import scores_of
from restore.registry import CRITICS, GENERATORS, NORMS, OptionValueError


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_params(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def test_registered_with_type_hints_and_tiny_kwargs():
    assert GENERATORS.get("stargan") is StarGANGenerator and CRITICS.get("stargan_critic") is StarGANCritic
    assert StarGANGenerator.TASK == "stargan"
    for reg, name in ((GENERATORS, "stargan"), (CRITICS, "stargan_critic")):
        cls = reg.get(name)
        params = reg.parameters(name)
        assert set(params) <= set(typing.get_type_hints(cls.__init__))
        assert set(cls.TINY) <= set(params)
    assert typing.get_args(typing.get_type_hints(StarGANCritic.__init__)["kernel"]) == (3, 4)


# ----------------------------------------------------------------------------------------------- generator
def test_tile_attributes_makes_constant_planes():
    c = torch.tensor([[0.0, 1.0, 0.25], [1.0, 0.0, 0.5]])
    t = tile_attributes(c, 3, 5)
    assert t.shape == (2, 3, 3, 5)
    for n in range(2):
        for a in range(3):
            assert torch.equal(t[n, a], torch.full((3, 5), c[n, a].item()))
    with pytest.raises(ValueError, match=r"\(N, A\)"):
        tile_attributes(torch.zeros(2, 3, 1), 3, 5)


def test_generator_input_is_image_concatenated_with_tiled_attributes():
    torch.manual_seed(0)
    net = StarGANGenerator(num_attributes=3, **StarGANGenerator.TINY)
    seen: dict[str, torch.Tensor] = {}

    def keep_input(module: nn.Module, inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        seen["x"] = inp[0]

    net.main[0].register_forward_hook(keep_input)
    x, c = torch.rand(2, 3, 8, 12) * 2 - 1, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    net(x, c)
    assert seen["x"].shape == (2, 6, 8, 12)
    assert torch.equal(seen["x"][:, :3], x)
    assert torch.equal(seen["x"][:, 3:], c[:, :, None, None].expand(-1, -1, 8, 12))


def test_generator_shapes_range_and_conditioning_tiny():
    torch.manual_seed(0)
    net = StarGANGenerator(**StarGANGenerator.TINY)
    x, c = net.example_inputs(batch=3, size=16)
    y = net(x, c)
    assert y.shape == (3, 3, 16, 16) and y.min() >= -1 and y.max() <= 1
    y2 = net(x, 1 - c)
    assert not torch.allclose(y, y2)  # the attributes reach the output
    y.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_generator_parameter_count_and_shape_at_128():
    with torch.device("meta"):  # full width: count only (a 128x128 forward at ngf 64 costs seconds on CPU)
        full = StarGANGenerator()
    # Choi et al.: conv7 (3+5)->64; conv4 64->128->256; 6 ResBlocks (two conv3 256->256); deconv4 256->128->64;
    # conv7 64->3 (+ bias); IN affine: 2 * channels each.
    by_hand = (conv_params(8, 64, 7, False) + conv_params(64, 128, 4, False) + conv_params(128, 256, 4, False)
               + 12 * conv_params(256, 256, 3, False) + conv_params(256, 128, 4, False)
               + conv_params(128, 64, 4, False) + conv_params(64, 3, 7)
               + 2 * (64 + 128 + 256 + 12 * 256 + 128 + 64))
    assert count(full) == by_hand == 8_430_531  # StarGAN's 8.43 M
    torch.manual_seed(0)
    net = StarGANGenerator(ngf=4, num_res_blocks=6)
    with torch.no_grad():
        y = net(torch.rand(2, 3, 128, 128) * 2 - 1, torch.tensor([[1.0, 0, 0, 1, 1], [0, 1, 0, 0, 1]]))
    assert y.shape == (2, 3, 128, 128) and y.abs().max() <= 1


def test_generator_eval_equals_train_and_samples_are_independent():
    """InstanceNorm without running statistics: eval() changes nothing and no sample depends on the batch."""
    torch.manual_seed(0)
    net = StarGANGenerator(**StarGANGenerator.TINY)
    assert all(not m.track_running_stats and m.affine for m in net.modules() if isinstance(m, nn.InstanceNorm2d))
    x, c = net.example_inputs(batch=3, size=12)
    with torch.no_grad():
        train_out = net.train()(x, c)
        net(x * 3 + 1, c)  # a different batch in train mode must leave no trace
        eval_out = net.eval()(x, c)
        alone = net(x[1:2], c[1:2])
    assert torch.equal(train_out, eval_out)
    assert torch.allclose(alone, eval_out[1:2], atol=1e-6)
    assert not list(net.buffers())


def test_generator_with_zeroed_last_conv_outputs_tanh_of_its_bias():
    net = StarGANGenerator(**StarGANGenerator.TINY)
    last = net.main[-2]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.5, -0.25, 0.0]))
        y = net(*net.example_inputs(batch=2, size=8))
    assert torch.allclose(y, torch.tensor([0.5, -0.25, 0.0]).tanh()[None, :, None, None].expand(2, 3, 8, 8))


def test_generator_errors_are_clear():
    net = StarGANGenerator(**StarGANGenerator.TINY)
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"target attributes of shape \(2, 5\) \(num_attributes=5\), got \(2, 4\)"):
        net(x, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"got \(1, 5\)"):
        net(x, torch.zeros(1, 5))
    with pytest.raises(ValueError, match="multiples of 4.*got 8x10"):
        net(torch.rand(2, 3, 8, 10), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\) images"):
        net(torch.rand(2, 4, 8, 8), torch.zeros(2, 5))
    with pytest.raises(OptionValueError, match="num_attributes must be an integer >= 1, got 0"):
        StarGANGenerator(num_attributes=0)


# ----------------------------------------------------------------------------------------------- critic
def by_hand_critic(kernel: int, layers: int = 6, ndf: int = 64, attrs: int = 5, size: int = 128) -> int:
    chans = [3] + [min(ndf * 2 ** i, 2048) for i in range(layers)]
    main = sum(conv_params(a, b, kernel) for a, b in zip(chans[:-1], chans[1:], strict=True))
    s = size // 2 ** layers
    return main + conv_params(chans[-1], 1, 3, False) + conv_params(chans[-1], attrs, s, False)


@pytest.mark.parametrize("kernel", [3, 4])
def test_critic_parameter_count_and_shapes_at_128(kernel):
    with torch.device("meta"):
        full = StarGANCritic(kernel=kernel)
    n = count(full)
    assert n == by_hand_critic(kernel)
    if kernel == 3:
        assert n == 25_206_400  # SAN paper, Table 7: "only 25M"
    else:
        assert n == 44_762_048  # original StarGAN: "44M"
    torch.manual_seed(0)
    critic = StarGANCritic(kernel=kernel, ndf=4)  # 128x128, six stride-2 layers, narrow
    with torch.no_grad():
        scores, logits = critic(*critic.example_inputs(batch=2))
    assert scores.shape == (2, 1, 2, 2) and logits.shape == (2, 5)
    assert critic.classify.kernel_size == (2, 2)


def test_critic_tiny_and_channel_cap():
    critic = StarGANCritic(**StarGANCritic.TINY, num_attributes=3, max_channels=8)
    scores, logits = critic(*critic.example_inputs(batch=2))
    assert scores.shape == (2, 1, 4, 4) and logits.shape == (2, 3)
    assert [m.out_channels for m in critic.main if isinstance(m, nn.Conv2d)] == [4, 8, 8]
    assert critic.classify.kernel_size == (4, 4) and critic.classify.bias is None and critic.score.bias is None


@pytest.mark.parametrize("kernel", [3, 4])
def test_critic_padding_mode_is_honoured_everywhere(kernel):
    critic = StarGANCritic(**StarGANCritic.TINY, kernel=kernel, padding_mode="circular")
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    assert all(isinstance(m, Conv2d) and m.padding_mode == "circular" for m in convs)
    assert all(m.padding == (1, 1) for m in list(critic.main) + [critic.score] if isinstance(m, nn.Conv2d))


def test_critic_errors_are_clear():
    with pytest.raises(OptionValueError, match=r"image_size must be divisible by 2\*\*num_layers = 64"):
        StarGANCritic(image_size=96)
    with pytest.raises(OptionValueError, match="kernel must be 3"):
        StarGANCritic(kernel=5)
    critic = StarGANCritic(**StarGANCritic.TINY)
    with pytest.raises(ValueError, match="built for 32x32 inputs"):
        critic(torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize("norm_name", NORMS.names())
def test_critic_with_every_norm(norm_name):
    """Tuple output (scores, logits): norms act on the scores; both heads keep their shapes and get gradients."""
    kwargs = dict(StarGANCritic.TINY)
    torch.manual_seed(0)
    critic, norm = build_critic("stargan_critic", kwargs, build_norm(norm_name))
    assert type(critic) is StarGANCritic
    (x,) = critic.example_inputs(batch=3)
    scores, logits = critic(x)
    assert scores.shape == (3, 1, 4, 4) and logits.shape == (3, 5)
    fake = torch.rand_like(x) * 2 - 1
    (s_real,), (s_fake,) = scores_of(critic(x)), scores_of(critic(fake))
    loss = torch.relu(1 - s_real).mean() + torch.relu(1 + s_fake).mean() + critic(x)[1].square().mean()
    pen = norm.penalty(critic, x, fake)
    assert pen.dim() == 0 and torch.isfinite(pen)
    (loss + pen).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters() if p.requires_grad)
    norm.step()
    assert all(torch.isfinite(t).all() for t in critic(x))
