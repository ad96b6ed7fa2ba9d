"""One engine training step on CUDA (the engine's toy task, SAN critic): AMP fp16 / bf16, channels_last and
torch.compile against the strict-fp32 CUDA step, and strict fp32 on CUDA against the CPU.

What is compared: the gradients each mode computed (Adam's first moment after step 1 is (1 - beta1) x gradient,
tests/engine/test_speed_options.py's ``grads_seen``), per tensor, in relative L2 norm. Tolerances:
- CUDA fp32 vs CPU fp32, channels_last, compile: 1e-4 (fp32 rounding through ~6 layers forward and back, in another
  summation order; a wrong kernel is off by O(1));
- fp16 autocast: 2e-2 (10 mantissa bits, unit roundoff 4.9e-4, accumulated over the layers and the GradScaler's
  unscale);
- bf16 autocast: 5e-2 (8 mantissa bits, unit roundoff 2e-3; the bound the CPU bf16 test uses).
"""

from __future__ import annotations

import pytest
import torch

from restore.engine.trainer import Trainer
from tests.cuda.conftest import cuda_only, rel_l2
from tests.engine.test_speed_options import grads_seen, params
from tests.engine.toy import ToyTask, toy_options

pytestmark = cuda_only


def train_once(path, device: str, norm: str = "san", **train) -> Trainer:
    opts = toy_options(path, norm=norm, steps=1, **train)
    torch.manual_seed(0)
    trainer = Trainer(opts, ToyTask(opts), path / "run", torch.device(device), progress=False)
    result = trainer.fit()
    assert all(torch.isfinite(torch.tensor(v)) for v in result.last_scalars.values()), result.last_scalars
    return trainer


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The strict-fp32 (tf32: false) CUDA step every mode is compared with."""
    return train_once(tmp_path_factory.mktemp("ref"), "cuda", tf32=False)


def assert_grads_close(got: Trainer, ref: Trainer, tol: float) -> None:
    g, r = grads_seen(got), grads_seen(ref)
    assert g.keys() == r.keys()
    worst = max(((rel_l2(g[k], r[k]), k) for k in r), key=lambda t: t[0])
    assert worst[0] < tol, f"gradient of {worst[1]} differs by {worst[0]:.3g} (relative L2), tolerance {tol:g}"


def test_cuda_fp32_step_matches_the_cpu(tmp_path, reference):
    cpu = train_once(tmp_path, "cpu")
    assert_grads_close(reference, cpu, 1e-4)
    for k, p in params(reference).items():
        torch.testing.assert_close(p.detach().cpu(), params(cpu)[k].detach(), rtol=0, atol=1e-6, msg=k)


@pytest.mark.parametrize(("amp", "tol"), [("fp16", 2e-2), ("bf16", 5e-2)])
def test_amp_step_matches_fp32_within_its_precision(tmp_path, reference, amp, tol):
    got = train_once(tmp_path, "cuda", amp=amp, tf32=False)
    expected = {"fp16": torch.float16, "bf16": torch.bfloat16}[amp]
    assert got.amp_dtype is expected
    if amp == "fp16":
        assert got.scaler_g.is_enabled() and got.scaler_d.is_enabled()
        assert got.opt_g.state, "the GradScaler skipped step 1 (inf/NaN gradients at the initial scale)"
    assert_grads_close(got, reference, tol)
    assert any(not torch.equal(a, b) for a, b in zip(grads_seen(got).values(), grads_seen(reference).values(),
                                                     strict=True)), "autocast changed nothing: it did not run"


def test_channels_last_step_matches(tmp_path, reference):
    got = train_once(tmp_path, "cuda", channels_last=True, tf32=False)
    conv = next(m for m in got.G.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert_grads_close(got, reference, 1e-4)


@pytest.mark.parametrize("target", ["generator", "all"])
def test_torch_compile_step_matches_eager(tmp_path, reference, target):
    """Inductor fuses the pointwise ops around cuDNN's convolutions: fp32 rounding differences only."""
    got = train_once(tmp_path, "cuda", compile=target, tf32=False)
    assert_grads_close(got, reference, 1e-4)
