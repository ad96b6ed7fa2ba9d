from __future__ import annotations

import typing

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import restore.archs.layers as layers
from restore.archs.layers import Conv2d
from restore.archs.patch_critic import MultiScalePatchCritic
from restore.builders import build_critic
from restore.norms import build_norm
from restore.norms.base import input_gradients, per_sample
from restore.registry import CRITICS, NORMS, OptionValueError

SMALL = {"ndf": 4, "max_channels": 32, "label_channels": 3}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def inputs(n: int, h: int, w: int, labels: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.rand(n, 3, h, w, generator=gen) * 2 - 1
    label = F.one_hot(torch.randint(labels, (n, h, w), generator=gen), labels).permute(0, 3, 1, 2).float()
    return image, label


def convs(critic: nn.Module) -> list[nn.Conv2d]:
    return [m for m in critic.modules() if isinstance(m, nn.Conv2d)]


# ----------------------------------------------------------------------------------------------- registration
def test_registered_with_typed_options_and_tiny_kwargs():
    assert CRITICS.get("multiscale_patch") is MultiScalePatchCritic
    hints = typing.get_type_hints(MultiScalePatchCritic.__init__)
    params = CRITICS.parameters("multiscale_patch")
    assert set(params) <= set(hints)
    assert typing.get_args(hints["padding_mode"]) == ("zeros", "reflect", "replicate", "circular")
    assert set(MultiScalePatchCritic.TINY) <= set(params)


def test_example_inputs_are_an_image_and_a_one_hot_label_map():
    critic = MultiScalePatchCritic(**MultiScalePatchCritic.TINY)
    image, label = critic.example_inputs(batch=3)
    assert image.shape == (3, 3, 32, 32) and label.shape == (3, 3, 32, 32)
    assert image.min() >= -1 and image.max() <= 1
    assert torch.equal(label.sum(1), torch.ones(3, 32, 32)) and set(label.unique().tolist()) == {0.0, 1.0}
    scores, feats = critic(image, label)
    assert len(scores) == len(feats) == 2


# ----------------------------------------------------------------------------------------------- layout
def test_default_channel_schedule_strides_and_norms():
    with torch.device("meta"):
        critic = MultiScalePatchCritic()
    assert len(critic.scales) == 2
    for scale in critic.scales:
        first = [block[0] for block in scale.blocks]
        assert [c.out_channels for c in first] == [64, 128, 256, 512]
        assert first[0].in_channels == 35 + 3
        assert [c.stride for c in first] == [(2, 2), (2, 2), (2, 2), (1, 1)]
        assert all(c.kernel_size == (4, 4) and c.padding == (2, 2) for c in [*first, scale.head])
        assert [isinstance(block[1], nn.InstanceNorm2d) for block in scale.blocks] == [False, True, True, True]
        assert all(not block[1].affine for block in scale.blocks[1:])
        assert [c.bias is not None for c in first] == [True, False, False, False]  # no bias before instance norm
        assert (scale.head.in_channels, scale.head.out_channels, scale.head.stride) == (512, 1, (1, 1))
    per_scale = (38 * 64 * 16 + 64) + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + (512 * 16 + 1)
    assert count(critic) == 2 * per_scale == 5_599_362
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())


def test_channels_are_capped_and_instance_norm_can_be_dropped():
    critic = MultiScalePatchCritic(ndf=8, n_layers=6, max_channels=32, instance_norm=False)
    first = [block[0] for block in critic.scales[0].blocks]
    assert [c.out_channels for c in first] == [8, 16, 32, 32, 32, 32]
    assert [c.stride[0] for c in first] == [2, 2, 2, 2, 2, 1]
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in critic.modules())
    assert all(c.bias is not None for c in first)


@pytest.mark.parametrize(("padding_mode", "size", "expected_scores", "expected_feats"), [
    ("zeros", (256, 256), [(35, 35), (19, 19)],
     [[(129, 129), (65, 65), (33, 33), (34, 34)], [(65, 65), (33, 33), (17, 17), (18, 18)]]),
    ("zeros", (128, 256), [(19, 35), (11, 19)],
     [[(65, 129), (33, 65), (17, 33), (18, 34)], [(33, 65), (17, 33), (9, 17), (10, 18)]]),
    ("circular", (256, 256), [(30, 30), (14, 14)],
     [[(128, 128), (64, 64), (32, 32), (31, 31)], [(64, 64), (32, 32), (16, 16), (15, 15)]]),
    ("circular", (128, 256), [(14, 30), (6, 14)],
     [[(64, 128), (32, 64), (16, 32), (15, 31)], [(32, 64), (16, 32), (8, 16), (7, 15)]]),
])
def test_score_and_feature_shapes(padding_mode, size, expected_scores, expected_feats):
    torch.manual_seed(0)
    critic = MultiScalePatchCritic(**SMALL, padding_mode=padding_mode)
    image, label = inputs(2, *size)
    with torch.no_grad():
        scores, feats = critic(image, label)
    assert [tuple(s.shape) for s in scores] == [(2, 1, *hw) for hw in expected_scores]
    assert critic.score_sizes(*size) == expected_scores
    chans = [4, 8, 16, 32]
    assert [[tuple(f.shape) for f in fs] for fs in feats] == [
        [(2, c, *hw) for c, hw in zip(chans, scale, strict=True)] for scale in expected_feats]


def test_features_are_the_block_outputs_and_the_head_gives_the_score():
    torch.manual_seed(0)
    critic = MultiScalePatchCritic(**SMALL)
    image, label = inputs(1, 64, 64)
    with torch.no_grad():
        scores, feats = critic(image, label)
        for scale, score, fs in zip(critic.scales, scores, feats, strict=True):
            assert torch.equal(scale.head(fs[-1]), score)
            assert (fs[0] < 0).any() and torch.equal(scale.blocks[1](fs[0]), fs[1])


def test_scale_inputs_are_label_then_image_average_pooled():
    torch.manual_seed(0)
    critic = MultiScalePatchCritic(**SMALL, num_D=3)
    image, label = inputs(2, 64, 48)
    x = torch.cat([label, image], 1)
    with torch.no_grad():
        scores, _ = critic(image, label)
        for i, scale in enumerate(critic.scales):
            assert torch.allclose(scale(x)[0], scores[i], atol=1e-6)
            x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
        for scale in critic.scales:  # cut the image channels (the last 3 inputs): scores ignore the image
            scale.blocks[0][0].weight[:, 3:].zero_()
        other = torch.rand_like(image) * 2 - 1
        assert all(torch.equal(a, b) for a, b in zip(critic(image, label)[0], critic(other, label)[0], strict=True))


def test_items_are_scored_the_same_alone_or_in_a_batch():
    torch.manual_seed(0)
    critic = MultiScalePatchCritic(**SMALL)
    image, label = inputs(3, 64, 64)
    with torch.no_grad():
        batch, _ = critic(image, label)
        alone, _ = critic(image[1:2], label[1:2])
    assert all(torch.allclose(b[1:2], a, atol=1e-6) for b, a in zip(batch, alone, strict=True))


# ----------------------------------------------------------------------------------------------- padding
def test_every_conv_pads_with_the_requested_mode():
    for mode, pad in (("zeros", 2), ("circular", 1), ("reflect", 1)):
        critic = MultiScalePatchCritic(**SMALL, padding_mode=mode)
        assert all(isinstance(c, Conv2d) and c.padding_mode == mode and c.padding == (pad, pad) for c in convs(critic))


def test_san_critic_uses_circular_padding_forward_and_backward(monkeypatch):
    calls = []
    real_pad = layers.circular_pad

    def spy(x, pads):
        calls.append(pads)
        return real_pad(x, pads)

    monkeypatch.setattr(layers, "circular_pad", spy)
    torch.manual_seed(0)
    critic, norm = build_critic("multiscale_patch", SMALL, build_norm("san"))
    assert norm.name == "san" and critic.padding_mode == "circular"
    assert all(c.padding_mode == "circular" and c.padding == (1, 1) for c in convs(critic))
    image, label = inputs(2, 64, 64)
    scores, _ = critic(image, label)
    assert calls == [(1, 1, 1, 1)] * len(convs(critic))  # every conv went through the circular pad
    sum(s.mean() for s in scores).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in critic.parameters())
    sigmas = norm.stats()
    assert len(sigmas) == len(convs(critic)) and all(v > 0 for v in sigmas.values())
    norm.step()
    with pytest.raises(ValueError, match="padding_mode"):
        build_critic("multiscale_patch", {**SMALL, "padding_mode": "zeros"}, build_norm("san"))


@pytest.mark.parametrize("norm_name", NORMS.names())
def test_every_norm_trains_the_two_input_critic(norm_name):
    torch.manual_seed(0)
    critic, norm = build_critic("multiscale_patch", MultiScalePatchCritic.TINY, build_norm(norm_name))
    assert type(critic) is MultiScalePatchCritic
    real, label = critic.example_inputs(batch=2)
    fake = torch.rand_like(real) * 2 - 1
    real_scores, real_feats = critic(real, label)
    fake_scores, _ = critic(fake, label)
    assert len(real_scores) == 2 and len(real_feats) == 2 and len(real_feats[0]) == 3
    loss = sum(torch.relu(1 - r).mean() + torch.relu(1 + f).mean()
               for r, f in zip(real_scores, fake_scores, strict=True))
    pen = norm.penalty(lambda im: critic(im, label), real, fake)
    assert pen.dim() == 0 and torch.isfinite(pen)
    if norm_name in ("gp", "r1"):
        assert pen > 0
    (loss + pen).backward()
    grads = [p.grad for p in critic.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    norm.step()
    with torch.no_grad():
        assert all(torch.isfinite(s).all() for s in critic(real, label)[0])


def test_gran_bounds_the_gradient_of_each_scale_over_image_and_label():
    """GraN's bound holds for piecewise-linear critics: without instance norm (which is not) this one is."""
    torch.manual_seed(0)
    kwargs = {**MultiScalePatchCritic.TINY, "instance_norm": False}
    critic, _ = build_critic("multiscale_patch", kwargs, build_norm({"type": "gran", "K": 1.0, "eps": 1e-10}))
    image, label = critic.example_inputs(batch=2)
    image.requires_grad_(True)
    label.requires_grad_(True)
    scores, feats = critic(image, label)
    assert len(feats) == 2  # the features pass through GraN untouched
    for score in scores:
        sq = input_gradients(per_sample(score), [image, label], create_graph=False)
        assert (sq.sqrt() <= 1 + 1e-4).all() and (sq.sqrt() > 0.9).all()  # = K g^2 / (g^2 + eps) ~ K


# ----------------------------------------------------------------------------------------------- errors
def test_wrong_inputs_are_clear_errors():
    critic = MultiScalePatchCritic(**SMALL)
    image, label = inputs(2, 32, 32)
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\) images, got shape \(2, 4, 32, 32\)"):
        critic(torch.rand(2, 4, 32, 32), label)
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\) label maps .* got shape \(2, 5, 32, 32\)"):
        critic(image, torch.rand(2, 5, 32, 32))
    with pytest.raises(ValueError, match="same batch size and height x width"):
        critic(image, label[:, :, :16])
    with pytest.raises(ValueError, match="same batch size and height x width"):
        critic(image, label[:1])
    with pytest.raises(ValueError, match="float"):
        critic(image, label.long())


def test_too_small_inputs_name_the_score_sizes():
    critic = MultiScalePatchCritic(**SMALL, padding_mode="circular")
    with pytest.raises(ValueError, match=r"16x16 inputs are too small for 2 scales"):
        critic(*inputs(1, 16, 16))
    zeros = MultiScalePatchCritic(**SMALL)
    with torch.no_grad():
        assert zeros(*inputs(1, 16, 16))[0][1].shape == (1, 1, 4, 4)  # zero padding 2 never runs out


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"num_D": 0}, "num_D"), ({"ndf": 0}, "ndf"), ({"n_layers": 0}, "n_layers"),
    ({"negative_slope": -0.1}, "negative_slope"), ({"padding_mode": "wrap"}, "padding_mode"),
])
def test_bad_options_name_the_key(kwargs, key):
    with pytest.raises(OptionValueError) as err:
        MultiScalePatchCritic(**kwargs)
    assert err.value.key == key
