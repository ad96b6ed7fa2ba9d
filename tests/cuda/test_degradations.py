"""Real-ESRGAN's degradations on CUDA: the per-item noise generators, DiffJPEG and the kernels run on the device.

Same seeds give the same LR twice; an item alone equals itself in a batch up to the cuDNN convolutions' summation
order (whose algorithm may depend on the batch size), so that comparison allows a few 8-bit levels on a few pixels;
with every noise and JPEG stage off (only resizes and filters, no random images) CUDA agrees with the CPU up to
fp32 rounding and the final 8-bit rounding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restore.data.degradations import degrade_images
from tests.cuda.conftest import cuda_only

pytestmark = cuda_only


def _images(b: int = 4, size: int = 128) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return F.avg_pool2d(torch.rand(b, 3, size + 8, size + 8, generator=g), 9, stride=1).clamp(0, 1)


def test_degrade_images_on_cuda_is_deterministic_per_seed(strict_fp32) -> None:
    hr = _images().cuda()
    a = degrade_images(hr, 4, [0, 1, 2, 3])
    assert a.device.type == "cuda" and a.shape == (4, 3, 32, 32)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, degrade_images(hr, 4, [0, 1, 2, 3]))
    alone = degrade_images(hr[2:3], 4, [2])
    diff = (alone - a[2:3]).abs()
    assert float(diff.max()) <= 3 / 255 + 1e-6 and float((diff > 0).float().mean()) < 0.01


def test_without_noise_and_jpeg_cuda_matches_the_cpu(strict_fp32) -> None:
    spec = {"type": "realesrgan", "gaussian_noise_prob": 1.0, "gaussian_noise_prob2": 1.0, "noise_range": [0, 0],
            "noise_range2": [0, 0], "jpeg_prob": 0.0, "jpeg_prob2": 0.0}
    hr = _images()
    cpu = degrade_images(hr, 4, [0, 1, 2, 3], spec)
    gpu = degrade_images(hr.cuda(), 4, [0, 1, 2, 3], spec).cpu()
    diff = (cpu - gpu).abs()
    assert float(diff.max()) <= 1 / 255 + 1e-6 and float((diff > 0).float().mean()) < 0.01
