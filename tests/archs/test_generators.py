import copy
import typing

import pytest
import torch
import torch.nn.functional as F

import restore.archs  # noqa: F401  (registers the generators)
from restore.archs.rrdb import RRDBNet
from restore.archs.srresnet import SRResNet
from restore.compat import import_basicsr
from restore.registry import GENERATORS, OptionValueError

NAMES = [n for n in GENERATORS.names() if getattr(GENERATORS.get(n), "TASK", "sr") == "sr"]  # SR upscalers


def conv_params(cin: int, cout: int, k: int = 3) -> int:
    return cin * cout * k * k + cout


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_every_generator_declares_tiny_kwargs_and_a_task():
    for name in GENERATORS.names():
        cls = GENERATORS.get(name)
        assert getattr(cls, "TASK", "sr") in ("sr", "spade", "stargan", "attributes"), name
        hints = typing.get_type_hints(cls.__init__)
        assert set(GENERATORS.parameters(name)) <= set(hints), name
        assert set(cls.TINY) <= set(GENERATORS.parameters(name)), name


def test_both_generators_are_registered():
    assert {"srresnet", "rrdbnet"} <= set(NAMES)
    assert GENERATORS.get("srresnet") is SRResNet and GENERATORS.get("rrdbnet") is RRDBNet


@pytest.mark.parametrize("name", NAMES)
def test_every_option_has_a_type_hint_and_tiny_kwargs_exist(name):
    cls = GENERATORS.get(name)
    hints = typing.get_type_hints(cls.__init__)
    params = GENERATORS.parameters(name)
    assert set(params) <= set(hints), f"{name}: options without type hints: {set(params) - set(hints)}"
    assert set(cls.TINY) <= set(params)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("name", NAMES)
def test_odd_sizes_give_scaled_output_and_gradients_flow(name, scale):
    torch.manual_seed(0)
    net = GENERATORS.build(name, **GENERATORS.get(name).TINY, scale=scale)
    assert net.scale == scale
    x = torch.rand(2, 3, 7, 9, requires_grad=True)
    y = net(x)
    assert y.shape == (2, 3, 7 * scale, 9 * scale)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"{name}: no gradient reaches {pname}"


@pytest.mark.parametrize("name", NAMES)
def test_batch_items_are_independent(name):
    """Generators must not mix samples (no batch norm): one image's output is the same alone or in a batch."""
    torch.manual_seed(0)
    net = GENERATORS.build(name, **GENERATORS.get(name).TINY)
    x = torch.rand(3, 3, 5, 6)
    with torch.no_grad():
        assert torch.allclose(net(x)[1:2], net(x[1:2]), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_input_channels_is_a_clear_error(name):
    net = GENERATORS.build(name, **GENERATORS.get(name).TINY)
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\) images, got shape \(1, 4, 8, 8\)"):
        net(torch.rand(1, 4, 8, 8))


@pytest.mark.parametrize("name", NAMES)
def test_unsupported_scale_names_the_option(name):
    with pytest.raises(OptionValueError, match="must be 2 or 4, got 3") as err:
        GENERATORS.build(name, **GENERATORS.get(name).TINY, scale=3)
    assert err.value.key == "scale"


# ----------------------------------------------------------------------------------------------- SRResNet
def test_srresnet_parameter_count_matches_table_8():
    # SAN paper, Table 8: conv 3->64; 16 ResBlocks of two 64->64 convs; two (conv 64->256, PS) stages; conv 64->64;
    # conv 64->3. The paper rounds the total to 1.5 M.
    by_hand = (conv_params(3, 64) + 16 * 2 * conv_params(64, 64) + 2 * conv_params(64, 256) + conv_params(64, 64)
               + conv_params(64, 3))
    assert by_hand == 1_517_571
    with torch.device("meta"):
        net = SRResNet()
        net2 = SRResNet(scale=2)
    assert count(net) == by_hand
    assert abs(count(net) - 1.5e6) <= 0.05 * 1.5e6
    assert count(net2) == by_hand - conv_params(64, 256)  # one x2 stage fewer


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_zero_residual_srresnet_is_exactly_the_interpolated_input(mode):
    torch.manual_seed(0)
    net = SRResNet(**SRResNet.TINY, skip=mode)
    with torch.no_grad():
        net.tail[-1].weight.zero_()
        net.tail[-1].bias.zero_()
        x = torch.rand(2, 3, 7, 9)
        ref = F.interpolate(x, scale_factor=4, mode=mode, align_corners=False)
        assert torch.equal(net(x), ref)


def test_srresnet_without_skip_outputs_only_the_network():
    net = SRResNet(**SRResNet.TINY, skip="none")
    with torch.no_grad():
        net.tail[-1].weight.zero_()
        net.tail[-1].bias.fill_(0.25)
        assert torch.equal(net(torch.rand(1, 3, 5, 5)), torch.full((1, 3, 20, 20), 0.25))


def test_fresh_srresnet_starts_close_to_bicubic():
    """The scaled-down residual init: a fresh net is the bicubic upsampling plus a small residual."""
    torch.manual_seed(0)
    net = SRResNet(channels=32, num_blocks=4)
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        diff = net(x) - F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    assert 0 < diff.abs().mean() < 0.02


def test_srresnet_residual_blocks_have_no_batch_norm_and_state_dict_keys_are_stable():
    net = SRResNet(channels=4, num_blocks=2, scale=4)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    convs = ["head.0", "body.0.conv1", "body.0.conv2", "body.1.conv1", "body.1.conv2", "upsample.0", "upsample.3",
             "tail.0", "tail.2"]
    assert list(net.state_dict()) == [f"{c}.{p}" for c in convs for p in ("weight", "bias")]


def test_srresnet_skip_needs_matching_channels():
    with pytest.raises(OptionValueError, match=r"in_channels \(1\) must equal out_channels \(3\)"):
        SRResNet(in_channels=1, out_channels=3, **SRResNet.TINY)
    net = SRResNet(in_channels=1, out_channels=3, skip="none", **SRResNet.TINY)
    assert net(torch.rand(1, 1, 3, 4)).shape == (1, 3, 12, 16)


# ----------------------------------------------------------------------------------------------- RRDBNet
def test_rrdbnet_parameter_count_is_esrgans():
    dense = [conv_params(64 + 32 * i, 32) for i in range(4)] + [conv_params(64 + 4 * 32, 64)]  # 5 convs per RDB
    by_hand = conv_params(3, 64) + 23 * 3 * sum(dense) + 4 * conv_params(64, 64) + conv_params(64, 3)
    assert by_hand == 16_697_987
    with torch.device("meta"):
        net = RRDBNet()
    assert count(net) == by_hand
    assert round(count(net) / 1e6, 1) == 16.7  # ESRGAN / SAN paper: 16.7 M


@pytest.mark.parametrize("scale", [2, 4])
def test_rrdbnet_is_basicsr_rrdbnet_with_the_same_keys_and_outputs(scale):
    """Same state dict keys as basicsr (ESRGAN weights load unchanged) and the same function on even sizes."""
    ref_cls = import_basicsr("archs.rrdbnet_arch").RRDBNet
    ref = ref_cls(num_in_ch=3, num_out_ch=3, scale=scale, num_feat=4, num_block=1, num_grow_ch=2)
    ours = RRDBNet(**RRDBNet.TINY, scale=scale)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict())
    x = torch.rand(1, 3, 6, 8)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


def test_rrdbnet_x2_odd_input_is_padded_and_cropped():
    torch.manual_seed(0)
    net = RRDBNet(**RRDBNet.TINY, scale=2)
    x = torch.rand(1, 3, 7, 9)
    with torch.no_grad():
        y = net(x)
        padded = net(F.pad(x, (0, 1, 0, 1), mode="replicate"))
    assert y.shape == (1, 3, 14, 18)
    assert torch.equal(y, padded[..., :14, :18])


def test_rrdbnet_deepcopy_is_independent():
    """EMA copies the generator: the copy must own its parameters and still run basicsr's forward on them."""
    net = RRDBNet(**RRDBNet.TINY)
    ema = copy.deepcopy(net)
    x = torch.rand(1, 3, 4, 5)
    with torch.no_grad():
        assert torch.equal(ema(x), net(x))
        ema.conv_last.bias.add_(1.0)
        assert torch.allclose(ema(x), net(x) + 1.0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_safetensors_round_trip_rebuilds_the_same_generator(name, tmp_path):
    from restore.engine.weights import load_generator, save_generator

    torch.manual_seed(0)
    kwargs = dict(GENERATORS.get(name).TINY)
    net = GENERATORS.build(name, **kwargs).eval()
    path = save_generator(net, tmp_path / "g.safetensors", arch=name, kwargs=kwargs, task="sr")
    loaded, desc = load_generator(path)
    x = torch.rand(1, 3, 5, 4)
    assert desc["arch"] == name and type(loaded) is type(net)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
