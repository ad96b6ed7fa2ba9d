from __future__ import annotations

import typing

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

import restore.archs  # noqa: F401  (registers the generators)
from restore.archs.spade import SPADE, ConvEncoder, SPADEGenerator, SPADEResBlock
from restore.registry import GENERATORS, OptionValueError

CITYSCAPES = {"label_channels": 36, "crop_size": 512, "aspect_ratio": 2.0, "num_upsampling_layers": "more"}
SMALL = {"ngf": 4, "spade_hidden": 8}
WIDE = {**SPADEGenerator.TINY, "aspect_ratio": 2.0}  # 32x64 (HxW): the cheapest size instance norm allows


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_params(cin: int, cout: int, k: int = 3, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def spade_params(c: int, labels: int, hidden: int) -> int:
    return conv_params(labels, hidden) + 2 * conv_params(hidden, c)


def block_params(fin: int, fout: int, labels: int, hidden: int) -> int:
    fmid = min(fin, fout)
    total = spade_params(fin, labels, hidden) + conv_params(fin, fmid) + spade_params(fmid, labels, hidden)
    total += conv_params(fmid, fout)
    if fin != fout:
        total += spade_params(fin, labels, hidden) + conv_params(fin, fout, 1, bias=False)
    return total


def generator_params(labels: int, ngf: int = 64, hidden: int = 128, most: bool = False) -> int:
    """By hand from the layout of the SPADE paper's Appendix A (label-map input, no VAE)."""
    nf = 16 * ngf
    chans = [nf, nf, nf, nf, 8 * ngf, 4 * ngf, 2 * ngf, ngf] + ([ngf // 2] if most else [])
    blocks = sum(block_params(a, b, labels, hidden) for a, b in zip(chans[:-1], chans[1:], strict=True))
    return conv_params(labels, nf) + blocks + conv_params(chans[-1], 3)


def one_hot(n: int, classes: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(classes, (n, h, w), generator=gen)
    return F.one_hot(idx, classes).permute(0, 3, 1, 2).float()


# ----------------------------------------------------------------------------------------------- registration
def test_registered_with_typed_options_and_tiny_kwargs():
    assert GENERATORS.get("spade") is SPADEGenerator
    assert SPADEGenerator.TASK == "spade"
    hints = typing.get_type_hints(SPADEGenerator.__init__)
    params = GENERATORS.parameters("spade")
    assert set(params) <= set(hints)
    assert typing.get_args(hints["num_upsampling_layers"]) == ("normal", "more", "most")
    assert typing.get_args(hints["param_free_norm"]) == ("instance", "batch")
    assert set(SPADEGenerator.TINY) <= set(params)


def test_tiny_generator_runs_and_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    net = GENERATORS.build("spade", **WIDE)
    seg = one_hot(2, 5, *net.sample_shape())
    out = net(seg)
    assert out.shape == (2, 3, 32, 64)
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# ----------------------------------------------------------------------------------------------- layout
def test_cityscapes_config_starts_at_8x4_and_outputs_512x256():
    torch.manual_seed(0)
    net = SPADEGenerator(**CITYSCAPES, **SMALL)
    assert (net.sw, net.sh) == (8, 4)
    assert net.sample_shape() == (256, 512)
    seen = {}

    def hook(module: nn.Module, args: tuple) -> None:
        seen["start"] = tuple(args[0].shape)

    net.head_0.register_forward_pre_hook(hook)
    with torch.no_grad():
        out = net(one_hot(1, 36, 256, 512))
    assert seen["start"] == (1, 16 * 4, 4, 8)
    assert out.shape == (1, 3, 256, 512)
    assert out.abs().max() <= 1 and torch.isfinite(out).all()


def test_256x256_normal_config():
    torch.manual_seed(0)
    net = SPADEGenerator(label_channels=184, **SMALL)
    assert (net.sh, net.sw) == (8, 8) and net.sample_shape() == (256, 256)
    with torch.no_grad():
        out = net(one_hot(1, 184, 256, 256))
    assert out.shape == (1, 3, 256, 256) and out.abs().max() <= 1


def test_most_adds_a_seventh_upsampling_and_a_half_width_block():
    torch.manual_seed(0)
    net = SPADEGenerator(label_channels=3, ngf=4, spade_hidden=4, crop_size=256, aspect_ratio=2.0,
                         num_upsampling_layers="most")
    assert (net.sw, net.sh) == (2, 1) and net.sample_shape() == (128, 256)
    assert net.up_4.conv_1.out_channels == 2 and net.conv_img.in_channels == 2
    with torch.no_grad():
        assert net(one_hot(1, 3, 128, 256)).shape == (1, 3, 128, 256)


def test_full_size_channel_schedule_and_parameter_count():
    with torch.device("meta"):  # SN adds no parameters (tested below) and is slow to set up on meta tensors
        city = SPADEGenerator(**CITYSCAPES, spectral_norm=False)
        coco = SPADEGenerator(label_channels=184, spectral_norm=False)
        most = SPADEGenerator(label_channels=184, crop_size=256, num_upsampling_layers="most", spectral_norm=False)
    assert (city.fc.in_channels, city.fc.out_channels) == (36, 1024)
    expected = {"head_0": (1024, 1024), "G_middle_0": (1024, 1024), "G_middle_1": (1024, 1024), "up_0": (1024, 512),
                "up_1": (512, 256), "up_2": (256, 128), "up_3": (128, 64)}
    for name, (fin, fout) in expected.items():
        block = getattr(city, name)
        assert (block.conv_0.in_channels, block.conv_1.out_channels) == (fin, fout), name
        assert block.conv_0.out_channels == min(fin, fout)
        assert block.learned_shortcut == (fin != fout)
        assert block.norm_0.mlp_shared[0].out_channels == 128
        assert block.norm_0.mlp_shared[0].in_channels == 36
    assert not hasattr(city, "up_4") and (city.conv_img.in_channels, city.conv_img.out_channels) == (64, 3)
    assert (most.up_4.conv_0.in_channels, most.up_4.conv_1.out_channels) == (64, 32)
    assert count(city) == generator_params(36) == 93_048_003
    assert count(coco) == generator_params(184) == 97_480_899
    assert count(most) == generator_params(184, most=True)


def test_spectral_norm_on_block_convs_only():
    net = SPADEGenerator(**SPADEGenerator.TINY)
    assert parametrize.is_parametrized(net.up_0.conv_0, "weight")
    assert parametrize.is_parametrized(net.up_0.conv_s, "weight")
    assert not parametrize.is_parametrized(net.up_0.norm_0.mlp_gamma, "weight")
    assert not parametrize.is_parametrized(net.fc, "weight") and not parametrize.is_parametrized(net.conv_img, "weight")
    plain = SPADEGenerator(**SPADEGenerator.TINY, spectral_norm=False)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert count(plain) == count(net)


def test_instance_norm_generator_does_not_mix_samples_and_batch_norm_option_builds():
    torch.manual_seed(0)
    net = SPADEGenerator(**WIDE).eval()
    seg = one_hot(2, 5, 32, 64)
    with torch.no_grad():
        assert torch.allclose(net(seg)[1:2], net(seg[1:2]), atol=1e-6)
        assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
        bn = SPADEGenerator(**WIDE, param_free_norm="batch")
        norms = [m for m in bn.modules() if isinstance(m, nn.BatchNorm2d)]
        assert norms and all(not m.affine for m in norms)
        assert bn(seg).shape == (2, 3, 32, 64)


# ----------------------------------------------------------------------------------------------- SPADE layer
@pytest.mark.parametrize("pfn", ["instance", "batch"])
def test_spade_with_zero_modulation_is_the_parameter_free_norm(pfn):
    torch.manual_seed(0)
    layer = SPADE(6, 4, hidden=8, param_free_norm=pfn)
    with torch.no_grad():
        for conv in (layer.mlp_gamma, layer.mlp_beta):
            conv.weight.zero_()
            conv.bias.zero_()
    x = torch.randn(2, 6, 8, 10) * 3 + 1
    out = layer(x, one_hot(2, 4, 4, 5))  # a smaller label map is resized to x's size
    if pfn == "instance":
        ref = F.instance_norm(x)
    else:
        ref = F.batch_norm(x, None, None, training=True)
    assert torch.allclose(out, ref, atol=1e-5)


def test_spade_with_a_constant_label_map_is_an_affine_function_of_the_normalised_input():
    torch.manual_seed(0)
    layer = SPADE(5, 3, hidden=8, kernel=1)  # 1x1 convs: a constant label map gives spatially constant gamma, beta
    for conv in (layer.mlp_shared[0], layer.mlp_gamma, layer.mlp_beta):
        nn.init.normal_(conv.weight)
    label = torch.zeros(1, 3, 1, 1)
    label[:, 1] = 1
    with torch.no_grad():
        hidden = layer.mlp_shared(label)
        gamma, beta = layer.mlp_gamma(hidden), layer.mlp_beta(hidden)  # (1, 5, 1, 1)
        for seed in (1, 2):
            x = torch.randn(1, 5, 6, 7, generator=torch.Generator().manual_seed(seed))
            out = layer(x, label.expand(1, 3, 6, 7))
            assert torch.allclose(out, F.instance_norm(x) * (1 + gamma) + beta, atol=1e-5)
    assert (gamma.abs() > 1e-3).all()  # the modulation is really active


def test_spade_needs_an_odd_kernel():
    with pytest.raises(OptionValueError, match="odd"):
        SPADE(4, 3, kernel=4)


# ----------------------------------------------------------------------------------------------- residual block
def test_learned_shortcut_exists_iff_channels_change():
    same = SPADEResBlock(8, 8, 3, hidden=4)
    assert not same.learned_shortcut and not hasattr(same, "conv_s") and not hasattr(same, "norm_s")
    down = SPADEResBlock(8, 4, 3, hidden=4)
    assert down.learned_shortcut and down.conv_s.kernel_size == (1, 1) and down.conv_s.bias is None
    assert down.conv_0.out_channels == 4 and down.conv_1.out_channels == 4
    up = SPADEResBlock(4, 8, 3, hidden=4)
    assert up.learned_shortcut and up.conv_0.out_channels == 4 and up.conv_1.out_channels == 8


def test_residual_block_paths():
    torch.manual_seed(0)
    x, label = torch.randn(2, 8, 6, 6), one_hot(2, 3, 6, 6)
    for fout in (8, 4):
        block = SPADEResBlock(8, fout, 3, hidden=4, spectral_norm=False)
        with torch.no_grad():
            block.conv_1.weight.zero_()
            block.conv_1.bias.zero_()
            out = block(x, label)
            expected = x if fout == 8 else block.conv_s(block.norm_s(x, label))  # shortcut has no activation
        assert torch.allclose(out, expected, atol=1e-6)


# ----------------------------------------------------------------------------------------------- VAE
def test_vae_encoder_shapes_and_reparameterization():
    torch.manual_seed(0)
    net = SPADEGenerator(**WIDE, use_vae=True, z_dim=16)
    assert isinstance(net.encoder, ConvEncoder)
    image = torch.rand(2, 3, 32, 48) * 2 - 1  # resized to 256x256 inside
    mu, logvar = net.encode(image)
    assert mu.shape == logvar.shape == (2, 16)
    assert net.encoder.fc_mu.in_features == 8 * 4 * 4 * 4
    z = net.reparameterize(mu, logvar)
    assert z.shape == (2, 16) and not torch.equal(z, net.reparameterize(mu, logvar))
    assert torch.allclose(net.reparameterize(mu, torch.full_like(logvar, -60.0)), mu)
    out = net(one_hot(2, 5, 32, 64), z)
    assert out.shape == (2, 3, 32, 64)
    out.mean().backward()
    assert net.encoder.layer1[0].parametrizations.weight.original.grad is not None  # trains through z


def test_vae_encoder_parameter_count():
    with torch.device("meta"):
        enc = ConvEncoder(64, 256)
    chans = [3, 64, 128, 256, 512, 512, 512]
    convs = sum(conv_params(a, b, bias=False) for a, b in zip(chans[:-1], chans[1:], strict=True))
    norms = 2 * sum(chans[1:])
    assert count(enc) == convs + norms + 2 * (512 * 16 * 256 + 256)


def test_vae_random_style_without_z_and_deterministic_with_z():
    torch.manual_seed(0)
    net = SPADEGenerator(**WIDE, use_vae=True, z_dim=8).eval()
    seg = one_hot(1, 5, 32, 64)
    z = torch.randn(1, 8)
    with torch.no_grad():
        assert not torch.allclose(net(seg), net(seg))
        assert torch.equal(net(seg, z), net(seg, z))
        with pytest.raises(ValueError, match=r"expects z of shape \(1, 8\), got \(1, 7\)"):
            net(seg, torch.randn(1, 7))


def test_without_vae_z_and_encode_are_errors():
    net = SPADEGenerator(**SPADEGenerator.TINY)
    assert not hasattr(net, "encoder")
    with pytest.raises(ValueError, match="use_vae=False"):
        net(one_hot(1, 5, 64, 64), torch.randn(1, 256))
    with pytest.raises(ValueError, match="use_vae=True"):
        net.encode(torch.rand(1, 3, 64, 64))


# ----------------------------------------------------------------------------------------------- errors
def test_wrong_label_map_size_names_expected_size_and_options():
    net = SPADEGenerator(**CITYSCAPES, **SMALL)
    msg = (r"expects 256x512 \(HxW\) label maps for crop_size=512, aspect_ratio=2.0, "
           r"num_upsampling_layers='more'; got 256x256")
    with pytest.raises(ValueError, match=msg):
        net(one_hot(1, 36, 256, 256))
    with pytest.raises(ValueError, match=r"expects \(N, 36, H, W\) label maps .* got shape \(1, 35, 256, 512\)"):
        net(torch.zeros(1, 35, 256, 512))
    with pytest.raises(ValueError, match="float"):
        net(torch.zeros(1, 36, 256, 512, dtype=torch.long))


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"crop_size": 100}, "crop_size"),
    ({"crop_size": 16}, "crop_size"),
    ({"aspect_ratio": 0.0}, "aspect_ratio"),
    ({"aspect_ratio": 10.0}, "aspect_ratio"),
    ({"num_upsampling_layers": "lots"}, "num_upsampling_layers"),
    ({"param_free_norm": "group"}, "param_free_norm"),
    ({"ngf": 0}, "ngf"),
    ({"crop_size": 128, "num_upsampling_layers": "most"}, "crop_size"),  # a 1x1 start: instance norm undefined
])
def test_bad_options_name_the_key(kwargs, key):
    with pytest.raises(OptionValueError) as err:
        SPADEGenerator(**{**SPADEGenerator.TINY, **kwargs})
    assert err.value.key == key
