"""SAN (restore/norms/san.py) on CUDA: the sparsity-aware constants, and a SAN-normalised critic's forward pass,
match the CPU. The constants are max |DFT| values computed in fp32 by cuFFT vs pocketfft: relative 1e-5 (a few
ulps after ~log2(32*32) butterfly stages); the critic's scores with TF32 off: 1e-4."""

from __future__ import annotations

import pytest
import torch

from restore.builders import build_critic
from restore.norms.san import SAN, sparsity_aware_constant, sparsity_aware_constant_fft
from tests.cuda.conftest import cuda_only

pytestmark = cuda_only


@pytest.mark.parametrize(("shape", "size", "dilation"), [((64, 64, 3, 3), (32, 32), 1), ((32, 16, 3, 3), (17, 40), 2),
                                                         ((8, 3, 5, 5), (128, 128), 1)])
def test_constant_on_cuda_matches_the_cpu(shape, size, dilation):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    cpu = sparsity_aware_constant(w, size, dilation=dilation)
    cuda = sparsity_aware_constant(w.cuda(), size, dilation=dilation)
    assert cuda.device.type == "cuda" and cuda.dtype == torch.float32
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-5, atol=0)
    if dilation == 1:
        torch.testing.assert_close(sparsity_aware_constant_fft(w.cuda(), size).cpu(), cpu, rtol=1e-5, atol=0)


def test_subset_constant_uses_the_same_kernels_on_cuda():
    w = torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(1))
    subset = torch.randperm(64 * 32, generator=torch.Generator().manual_seed(2))[:500]
    cpu = sparsity_aware_constant(w, (24, 24), kernels=subset)
    cuda = sparsity_aware_constant(w.cuda(), (24, 24), kernels=subset)
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-5, atol=0)


@pytest.mark.parametrize("ratio", [1.0, 0.25])
def test_san_critic_on_cuda_matches_the_cpu(strict_fp32, ratio):
    def make():  # two builds from one seed (a deepcopy would keep hooks bound to the original's norm)
        torch.manual_seed(0)
        return build_critic("vgg_critic", {"image_size": 32, "width": 8, "dense": 16}, SAN(ratio=ratio))[0]

    critic, gpu_critic = make(), make().cuda()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    with torch.no_grad():
        cpu_out, cuda_out = critic(x), gpu_critic(x.cuda())
    sig_cpu = [float(m.parametrizations.weight[0].sigma) for m in critic.modules() if hasattr(m, "parametrizations")]
    sig_gpu = [float(m.parametrizations.weight[0].sigma) for m in gpu_critic.modules()
               if hasattr(m, "parametrizations")]
    assert len(sig_cpu) == len(sig_gpu) > 0
    torch.testing.assert_close(torch.tensor(sig_gpu), torch.tensor(sig_cpu), rtol=1e-5, atol=0)
    torch.testing.assert_close(cuda_out.cpu(), cpu_out, rtol=1e-4, atol=1e-5)
