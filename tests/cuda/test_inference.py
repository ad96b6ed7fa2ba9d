"""SR inference on CUDA: fp16 (``restore infer --half``: fp16 windows under autocast, fp32 weights) against fp32,
CUDA fp32 against the CPU, and tiled against untiled, on the published Table 8 model and an RRDBNet.

Tolerances (outputs clipped to [0, 1]): fp16 vs fp32 max |diff| < 2e-2 (~5/255) and mean < 2e-3 (10 mantissa bits
through 16+ layers); CUDA vs CPU fp32 < 1e-4 (rounding only, TF32 off); tiled vs untiled where the overlap covers
the receptive field < 1e-5 (the same products, blended with weights summing to one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from restore.data.io import read_image
from restore.engine.weights import load_generator
from restore.inference.tiling import tiled_forward
from restore.inference.upscale import upscale_image
from tests.cuda.conftest import cuda_only
from tests.inference.test_tiling import small_sr_net

pytestmark = cuda_only

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "weights" / "sr_x4_psnr.safetensors"
IMAGE = ROOT / "weights" / "examples" / "sr_scene.png"


@pytest.fixture(scope="module")
def image():
    return read_image(IMAGE)


@pytest.fixture(scope="module")
def srresnet():
    return load_generator(MODEL, "cuda")[0]


def rrdbnet():
    from restore.archs.rrdb import RRDBNet

    torch.manual_seed(0)
    return RRDBNet(channels=32, num_blocks=2, growth_channels=16, scale=4).eval().cuda()


@pytest.mark.parametrize("which", ["srresnet", "rrdbnet"])
def test_fp16_inference_is_close_to_fp32(strict_fp32, image, srresnet, which):
    model = srresnet if which == "srresnet" else rrdbnet()
    full = upscale_image(model, image, 4, tile=None).rgb
    half = upscale_image(model, image, 4, tile=None, half=True).rgb
    diff = np.abs(half - full)
    assert diff.max() < 2e-2 and diff.mean() < 2e-3, (float(diff.max()), float(diff.mean()))
    assert diff.max() > 0, "half=True gave bit-identical output: fp16 did not run"


def test_cuda_fp32_matches_the_cpu(strict_fp32, image, srresnet):
    cpu_model = load_generator(MODEL, "cpu")[0]
    cuda_out = upscale_image(srresnet, image, 4, tile=None).rgb
    cpu_out = upscale_image(cpu_model, image, 4, tile=None, device="cpu").rgb
    assert np.abs(cuda_out - cpu_out).max() < 1e-4


def test_tiled_equals_untiled_on_cuda(strict_fp32):
    """small_sr_net's receptive field (<= 4 LR pixels) fits in the 8-pixel overlap: tiling must be exact."""
    net = small_sr_net(lr_convs=3).cuda()
    x = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(0))
    whole = tiled_forward(net, x, 4, tile=None)
    tiled = tiled_forward(net, x, 4, tile=24, overlap=8)
    assert tiled.shape == whole.shape == (1, 3, 280, 360)
    assert (tiled - whole).abs().max() < 1e-5
    with torch.no_grad():
        cpu = small_sr_net(lr_convs=3)(x)
    assert (whole - cpu).abs().max() < 1e-4


def test_tiled_fp16_is_close_to_untiled_on_the_published_model(image, srresnet):
    """The Table 8 generator sees ~35 LR pixels around each output, more than the 16-pixel overlap: tiles differ
    a little at their seams, in fp16 as in fp32 (the bound is the fp16 one plus a seam allowance)."""
    whole = upscale_image(srresnet, image, 4, tile=None, half=True).rgb
    tiled = upscale_image(srresnet, image, 4, tile=48, overlap=16, half=True).rgb
    diff = np.abs(tiled - whole)
    assert diff.max() < 5e-2 and diff.mean() < 2e-3, (float(diff.max()), float(diff.mean()))
