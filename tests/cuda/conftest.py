"""CUDA-only tests (``pytest -m cuda tests/cuda``): every module here is marked ``cuda`` and skips, with a reason,
where torch sees no CUDA device, so they are collected (and skipped) on CPU machines and CI. scripts/gpu/run.sh
runs them on a lent GPU machine."""

from __future__ import annotations

import pytest
import torch

NO_CUDA = "CUDA test: torch sees no CUDA device here (they run on a GPU machine, e.g. via scripts/gpu/run.sh)"
cuda_only = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA)]


@pytest.fixture()
def strict_fp32():
    """True fp32 on CUDA for the test (TF32 off for matmuls and cuDNN convolutions), restored afterwards:
    cuDNN convolutions default to TF32 (10 mantissa bits), which would blur every fp32-vs-fp32 comparison."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| in float64, both on the CPU."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))
