"""The Real-ESRGAN U-Net critic: per-pixel scores at the input's size, the paper's wiring, every norm from outside."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from restore.archs.unet_critic import MIN_SIZE, UNetCritic
from restore.builders import build_critic
from restore.norms import build_norm
from restore.norms.base import input_gradients, per_sample
from restore.norms.san import sparsity_aware_constant
from restore.registry import CRITICS, OptionValueError

ROOT = Path(__file__).resolve().parents[2]


def images(n: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def convs(critic: nn.Module) -> list[nn.Conv2d]:
    return [m for m in critic.modules() if isinstance(m, nn.Conv2d)]


def test_registered_with_typed_options():
    assert CRITICS.get("unet") is UNetCritic
    params = CRITICS.parameters("unet")
    hints = typing.get_type_hints(UNetCritic.__init__)
    assert {"in_channels", "num_feat", "skip_connection", "padding_mode"} <= set(params) <= set(hints)
    assert params["num_feat"].default == 64 and params["skip_connection"].default is True
    assert set(UNetCritic.TINY) <= set(params)


def test_layout_matches_real_esrgan():
    """Channel widths, kernels, strides and biases of Real-ESRGAN's U-Net critic (10 convs, 4.38M parameters at F=64,
    the count basicsr's UNetDiscriminatorSN has too; checked against it below)."""
    critic = UNetCritic()
    layout = [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.bias is not None) for c in convs(critic)]
    assert layout == [(3, 64, 3, 1, True), (64, 128, 4, 2, False), (128, 256, 4, 2, False), (256, 512, 4, 2, False),
                      (512, 256, 3, 1, False), (256, 128, 3, 1, False), (128, 64, 3, 1, False),
                      (64, 64, 3, 1, False), (64, 64, 3, 1, False), (64, 1, 3, 1, True)]


def test_same_function_as_basicsr_unet_discriminator_without_its_sn():
    """Weights copied into basicsr's network (its SN removed) give the same scores: skips and upsampling as in the
    reference implementation, for sides divisible by 8 (where upsampling to the skip's size is bilinear x2)."""
    from restore.compat import import_basicsr

    arch = import_basicsr("archs.discriminator_arch")  # basicsr is a dependency (rrdb.py uses it)
    torch.manual_seed(0)
    ours = UNetCritic(num_feat=8)
    ref = arch.UNetDiscriminatorSN(3, num_feat=8)
    for module in ref.modules():
        if hasattr(module, "weight_orig"):
            torch.nn.utils.remove_spectral_norm(module)
    ref_convs = [getattr(ref, f"conv{i}") for i in range(10)]
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    with torch.no_grad():
        for mine, theirs in zip(convs(ours), ref_convs, strict=True):
            theirs.weight.copy_(mine.weight)
            if mine.bias is not None:
                theirs.bias.copy_(mine.bias)
    x = images(2, 64, 48)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [(64, 64), (32, 48), (8, 8), (9, 13), (37, 21)])
def test_one_score_per_input_pixel(size):
    critic = UNetCritic(**UNetCritic.TINY)
    out = critic(images(2, *size))
    assert out.shape == (2, 1, *size) and torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(7, 64), (64, 4)])
def test_too_small_inputs_name_the_requirement(size):
    with pytest.raises(ValueError, match=rf"at least {MIN_SIZE}x{MIN_SIZE} .*got {size[0]}x{size[1]}; use larger"):
        UNetCritic(**UNetCritic.TINY)(images(1, *size))


def test_wrong_channels_are_refused():
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\) images, got shape \(1, 1, 16, 16\)"):
        UNetCritic(**UNetCritic.TINY)(torch.zeros(1, 1, 16, 16))


@pytest.mark.parametrize(("key", "value", "message"), [("num_feat", 0, "num_feat must be >= 1, got 0"),
                                                       ("in_channels", -1, "in_channels must be >= 1, got -1"),
                                                       ("negative_slope", -0.1, "negative_slope must be >= 0"),
                                                       ("padding_mode", "wrap", "padding_mode must be one of")])
def test_bad_options_name_the_key(key, value, message):
    with pytest.raises(OptionValueError, match=message):
        UNetCritic(**{key: value})


@pytest.mark.parametrize("skip", [True, False])
def test_gradient_reaches_every_parameter_and_every_input_pixel(skip):
    critic = UNetCritic(num_feat=4, skip_connection=skip)
    x = images(2, 24, 40).requires_grad_(True)
    critic(x).square().mean().backward()
    for name, p in critic.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert (x.grad.abs().sum(1) > 0).all()  # every input pixel influences the scores


def test_skip_connection_false_changes_the_output_but_not_the_parameters():
    torch.manual_seed(0)
    with_skips = UNetCritic(num_feat=4)
    without = UNetCritic(num_feat=4, skip_connection=False)
    without.load_state_dict(with_skips.state_dict())  # same weights: only the wiring differs
    x = images(2, 32, 32)
    a, b = with_skips(x), without(x)
    assert a.shape == b.shape and not torch.allclose(a, b, atol=1e-4)


def test_scores_are_local_per_pixel():
    """A per-pixel critic: changing one corner of the image changes the far corner's score less than its own."""
    critic = UNetCritic(num_feat=4)
    x = images(1, 64, 64)
    y = x.clone()
    y[..., :8, :8] = -y[..., :8, :8]
    diff = (critic(x) - critic(y)).abs()[0, 0]
    assert diff[:8, :8].mean() > 10 * diff[-8:, -8:].mean()


def test_san_normalises_every_conv_at_the_size_it_sees():
    """SAN: circular padding on every conv, and each decoder conv's constant is for the upsampled (skip) size."""
    critic, norm = build_critic("unet", {"num_feat": 4}, build_norm("san"))
    assert all(c.padding_mode == "circular" for c in convs(critic))
    critic(images(2, 40, 24))
    sizes = [tuple(p.size.tolist()) for _, _, p in norm._layers]
    assert sizes == [(40, 24), (40, 24), (20, 12), (10, 6), (10, 6), (20, 12), (40, 24), (40, 24), (40, 24),
                     (40, 24)]
    for _, module, param in norm._layers:  # each constant is Lemma 1's, computed directly at that size
        expected = sparsity_aware_constant(module.parametrizations.weight.original, tuple(param.size.tolist()))
        torch.testing.assert_close(param.sigma, expected)


def test_items_are_scored_the_same_alone_or_in_a_batch():
    """No layer mixes samples, so GP, R1 and GraN get per-sample gradients."""
    critic = UNetCritic(**UNetCritic.TINY)
    x = images(3, 16, 24)
    torch.testing.assert_close(critic(x)[1:2], critic(x[1:2]), rtol=1e-5, atol=1e-6)


def test_gran_bounds_the_input_gradient():
    """Bilinear upsampling and skip additions are linear, so the U-Net is piecewise linear and GraN's bound holds:
    ||grad_x D|| = K g^2 / (g^2 + eps) <= K for D the per-sample mean of the score map."""
    torch.manual_seed(0)
    critic, _ = build_critic("unet", UNetCritic.TINY, build_norm({"type": "gran", "K": 1.0, "eps": 1e-10}))
    x = images(2, 16, 16).requires_grad_(True)
    sq = input_gradients(per_sample(critic(x)), [x], create_graph=False)
    assert (sq.sqrt() <= 1 + 1e-4).all() and (sq.sqrt() > 0.9).all()


def test_conflicting_padding_for_san_is_refused():
    with pytest.raises(ValueError, match="critic.padding_mode is 'zeros', but critic norm 'san' needs 'circular'"):
        build_critic("unet", {"padding_mode": "zeros"}, build_norm("san"))


def test_trains_in_the_sr_smoke_recipe(shared, tmp_path, monkeypatch, capsys):
    """End to end: `restore check` shows the critic, and 2 SR training steps with a per-pixel critic (SAN) run."""
    from restore.cli import main

    recipe = yaml.safe_load((ROOT / "options" / "train" / "sr" / "x4_smoke.yml").read_text())
    data = shared / "data"
    recipe["critic"] = {"arch": "unet", "num_feat": 4, "norm": {"type": "san"}}
    recipe["data"]["train"]["roots"] = [str(data / "sr-train" / "sun_hays80")]
    recipe["data"]["val"]["root"] = str(data / "sr-bench" / "Set5")
    recipe["losses"]["perceptual"]["weights"] = str(shared / "weights" / "vgg16_imagenet_features.pth")
    recipe.update(path={"root": str(tmp_path)}, train={**recipe["train"], "steps": 2},
                  val={"every": 2, "max_images": 1, "samples": 1}, checkpoint={"every": 2, "keep": 1})
    path = tmp_path / "unet.yml"
    path.write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)
    assert main(["check", "-opt", str(path)]) == 0
    assert "# critic: UNetCritic," in capsys.readouterr().out
    assert main(["train", "-opt", str(path), "--no-progress"]) == 0
    assert (tmp_path / "x4_smoke" / "x4_smoke.safetensors").is_file()


def test_restore_norms_lists_it_with_its_options(capsys):
    from restore.cli import main

    assert main(["norms"]) == 0
    out = capsys.readouterr().out
    assert "  unet  The U-Net critic of Real-ESRGAN" in out
    assert "options: in_channels=3, num_feat=64, skip_connection=True, negative_slope=0.2, padding_mode='zeros'" in out
