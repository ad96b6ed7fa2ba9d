"""Tiled inference must match a single pass for models whose receptive field fits in the context margin."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restore.inference.tiling import axis_tiles, axis_weights, tiled_forward

TOL = 1.0 / 255.0


def small_sr_net(lr_convs: int = 3, feats: int = 12, scale: int = 4, seed: int = 0) -> nn.Module:
    """Conv-LeakyReLU stack + PixelShuffle + one HR conv, random weights scaled so outputs are O(1).

    Receptive-field radius: ``lr_convs`` LR pixels plus one HR pixel (< 1 LR pixel), so <= lr_convs + 1 LR pixels.
    """
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    cin = 3
    for _ in range(lr_convs):
        layers += [nn.Conv2d(cin, feats, 3, padding=1), nn.LeakyReLU(0.2)]
        cin = feats
    layers += [nn.Conv2d(cin, 3 * scale * scale, 1), nn.PixelShuffle(scale), nn.Conv2d(3, 3, 3, padding=1)]
    net = nn.Sequential(*layers)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return net.eval()


class Recorder(nn.Module):
    """Wraps a model and records the spatial size of every input it gets."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: Tensor) -> Tensor:
        self.sizes.append((x.shape[2], x.shape[3]))
        return self.model(x)


def nearest4(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=4, mode="nearest")


@pytest.fixture(scope="module")
def image() -> Tensor:
    torch.manual_seed(1)
    return torch.rand(1, 3, 45, 70)


@pytest.mark.parametrize(
    ("overlap", "lr_convs", "tiles"),
    [(8, 3, [24, 29, 33, 50]), (16, 7, [40, 43, 64])],
)
def test_tiled_matches_untiled(image: Tensor, overlap: int, lr_convs: int, tiles: list[int]) -> None:
    net = small_sr_net(lr_convs=lr_convs)
    with torch.no_grad():
        ref = net(image)
    assert ref.std() > 0.1 and ref.abs().max() < 10  # outputs are O(1), so 1/255 is a meaningful tolerance
    for tile in tiles:
        rec = Recorder(net)
        out = tiled_forward(rec, image, 4, tile=tile, overlap=overlap)
        assert out.shape == ref.shape and out.dtype == torch.float32 and out.device.type == "cpu"
        assert len(rec.sizes) > 1, f"tile {tile} should split a 45x70 image"
        assert all(h <= tile and w <= tile for h, w in rec.sizes)
        err = (out - ref).abs().max().item()
        assert err < TOL, f"tile {tile} overlap {overlap}: max |tiled - untiled| = {err}"


def test_seams_without_context_are_detected(image: Tensor) -> None:
    """With no context margin the same net leaves seams well above 1/255: the comparison above can fail."""
    net = small_sr_net(lr_convs=3)
    with torch.no_grad():
        ref = net(image)
    out = tiled_forward(net, image, 4, tile=16, overlap=0)
    assert (out - ref).abs().max().item() > 10 * TOL


def test_single_pass_when_tile_covers_image(image: Tensor) -> None:
    net = small_sr_net()
    for tile in (None, 70, 512):
        rec = Recorder(net)
        out = tiled_forward(rec, image, 4, tile=tile, overlap=16)
        assert rec.sizes == [(45, 70)]
        torch.testing.assert_close(out, net(image).detach(), rtol=0, atol=1e-6)


def test_tiles_only_along_the_long_axis() -> None:
    x = torch.rand(1, 3, 20, 90)
    rec = Recorder(nn.Upsample(scale_factor=4, mode="nearest"))
    out = tiled_forward(rec, x, 4, tile=32, overlap=4)
    assert {h for h, _ in rec.sizes} == {20} and all(w == 32 for _, w in rec.sizes)
    torch.testing.assert_close(out, nearest4(x), rtol=0, atol=1e-6)


def test_constant_image_stays_constant() -> None:
    x = torch.full((1, 3, 33, 47), 0.37)
    out = tiled_forward(nearest4, x, 4, tile=24, overlap=8)
    assert (out - 0.37).abs().max().item() < 1e-6


def test_blend_is_a_smooth_crossfade_across_core_boundaries() -> None:
    """A model that paints each window with its call index shows the blending weights directly."""
    calls = {"n": 0}

    def painter(x: Tensor) -> Tensor:
        calls["n"] += 1
        return torch.full((1, 1, 4 * x.shape[2], 4 * x.shape[3]), float(calls["n"] - 1))

    w, tile, overlap = 100, 40, 8
    tiles = axis_tiles(w, tile, overlap)
    out = tiled_forward(painter, torch.zeros(1, 3, 10, w), 4, tile=tile, overlap=overlap)[0, 0, 0]
    band = 4 * overlap // 2  # HR pixels of crossfade on each side of a boundary
    for i, (_, _, c0, c1) in enumerate(tiles):
        lo = 4 * c0 + (band if i > 0 else 0)
        hi = 4 * c1 - (band if i < len(tiles) - 1 else 0)
        assert torch.all(out[lo:hi] == i), f"core of tile {i} is not purely its own output"
    for i, (_, _, _, c1) in enumerate(tiles[:-1]):
        b = 4 * c1
        ramp = out[b - band:b + band]
        assert torch.all(ramp[1:] >= ramp[:-1]) and ramp[0] >= i and ramp[-1] <= i + 1
        assert abs((ramp[band - 1] + ramp[band]).item() / 2 - (i + 0.5)) < 1e-3  # half and half at the boundary
        assert (ramp[1:] - ramp[:-1]).max() < 0.1  # smooth: no step larger than 10% of the jump


def test_axis_layout_and_weights() -> None:
    for n, tile, overlap in [(100, 40, 8), (37, 16, 4), (257, 64, 16), (65, 48, 16), (41, 40, 0)]:
        tiles = axis_tiles(n, tile, overlap)
        assert tiles[0][0] == 0 and tiles[-1][1] == n and tiles[0][2] == 0 and tiles[-1][3] == n
        for (w0, w1, c0, c1), nxt in zip(tiles, tiles[1:] + [None], strict=True):
            assert w1 - w0 == tile and w0 <= c0 < c1 <= w1
            if nxt is not None:
                assert nxt[2] == c1  # cores are contiguous
                assert w1 - c1 >= overlap and nxt[2] - nxt[0] >= overlap  # context on both sides of a boundary
        total = torch.zeros(4 * n)
        for (w0, w1, _, _), wt in zip(tiles, axis_weights(tiles, 4, overlap), strict=True):
            assert wt.shape == (4 * (w1 - w0),) and wt.min() >= 0 and wt.max() <= 1
            total[4 * w0:4 * w1] += wt
        assert (total - 1).abs().max() < 1e-6


def test_progress_reports_every_window(image: Tensor) -> None:
    seen: list[tuple[int, int]] = []
    tiled_forward(nearest4, image, 4, tile=24, overlap=4, progress=lambda d, t: seen.append((d, t)))
    total = len(axis_tiles(45, 24, 4)) * len(axis_tiles(70, 24, 4))
    assert seen == [(i + 1, total) for i in range(total)]


def test_reduced_precision_runs_under_autocast(image: Tensor) -> None:
    """dtype works with fp32 weights (autocast); bfloat16 on CPU stands in for float16 on CUDA."""
    net = small_sr_net()
    ref = net(image).detach()
    out = tiled_forward(net, image, 4, tile=24, overlap=8, device="cpu", dtype=torch.bfloat16)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max().item() < 0.1
    assert (out - ref).abs().mean().item() < 0.02


def test_output_is_a_copy_free_hwc_view(image: Tensor) -> None:
    out = tiled_forward(nearest4, image, 4, tile=32, overlap=4)
    assert out[0].permute(1, 2, 0).is_contiguous()


def test_runs_in_inference_mode() -> None:
    flags: list[bool] = []

    def spy(x: Tensor) -> Tensor:
        flags.append(torch.is_inference_mode_enabled())
        return nearest4(x)

    tiled_forward(spy, torch.rand(1, 3, 8, 8), 4)
    assert flags == [True]


@pytest.mark.parametrize(
    ("kwargs", "shape", "match"),
    [
        ({}, (3, 20, 20), r"4-D \(N, C, H, W\).*\(3, 20, 20\)"),
        ({"tile": 4}, (1, 3, 20, 20), r"tile must be .*>= 8.*got 4"),
        ({"overlap": -1}, (1, 3, 20, 20), r"overlap must be .*got -1"),
        ({"tile": 24, "overlap": 16}, (1, 3, 20, 20), r"tile 24 is too small for overlap 16.*overlap \+ 8 = 40"),
        ({"scale": 0}, (1, 3, 20, 20), r"scale must be a positive integer, got 0"),
    ],
)
def test_bad_arguments_name_the_value(kwargs: dict, shape: tuple[int, ...], match: str) -> None:
    args = {"scale": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        tiled_forward(nearest4, torch.rand(shape), **args)


def test_integer_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="float tensor.*torch.uint8"):
        tiled_forward(nearest4, torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 4)


def test_wrong_model_scale_names_both_sizes() -> None:
    def x2(x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")

    with pytest.raises(ValueError, match=r"model output is 40x60 for a 20x30 input.*expected 80x120.*scale 4"):
        tiled_forward(x2, torch.rand(1, 3, 20, 30), 4)
