"""Speed options on the CPU (bf16 autocast, channels_last, fused / foreach Adam): one training step matches the
fp32 eager step within stated tolerances, resume stays bit-identical, and unsupported choices are refused."""

import pytest
import torch

from restore.config import ConfigError
from restore.engine.trainer import Trainer, adam_options
from tests.engine.toy import ToyTask, toy_options

LR = 1e-3  # toy_options' lr_g and lr_d


def run(tmp_path, steps=1, norm="san", **train):
    opts = toy_options(tmp_path, norm=norm, steps=steps, **train)
    torch.manual_seed(0)
    trainer = Trainer(opts, ToyTask(opts), tmp_path / "run", torch.device("cpu"), progress=False)
    start = {k: v.detach().clone() for k, v in params(trainer).items()}
    trainer.fit()
    return trainer, start


def params(trainer):
    return {**{f"g.{k}": p for k, p in trainer.G.named_parameters()},
            **{f"d.{k}": p for k, p in trainer.D.named_parameters()}}


def grads_seen(trainer):
    """Adam's first moment after step 1 is exactly (1 - beta1) * gradient: the gradients each mode computed."""
    out = {}
    for prefix, opt in (("g", trainer.opt_g), ("d", trainer.opt_d)):
        names = [k for k in params(trainer) if k.startswith(prefix + ".")]
        for name, p in zip(names, opt.param_groups[0]["params"], strict=True):
            out[name] = opt.state[p]["exp_avg"] / (1 - opt.param_groups[0]["betas"][0])
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The fp32 eager single-tensor-Adam step every mode is compared with (steps=1 and steps=3)."""
    one, start = run(tmp_path_factory.mktemp("ref1"))
    three, _ = run(tmp_path_factory.mktemp("ref3"), steps=3)
    return {"start": start, "one": one, "three": three}


def test_defaults_keep_the_cpu_behaviour(tmp_path):
    opts = toy_options(tmp_path)
    t = opts.train
    assert (t.amp, t.channels_last, t.compile, t.tf32, t.optimizer_impl) == ("none", "auto", "none", None, "auto")
    trainer = Trainer(opts, ToyTask(opts), tmp_path / "run", torch.device("cpu"), progress=False)
    assert trainer.amp_dtype is None and not trainer.channels_last
    assert adam_options("auto", torch.device("cpu")) == {"fused": False, "foreach": False}  # torch's CPU default
    assert adam_options("auto", torch.device("cuda")) == {"fused": True, "foreach": False}
    group = trainer.opt_g.param_groups[0]
    assert not group["fused"] and not group["foreach"]


def test_fp16_on_the_cpu_is_refused_naming_the_option(tmp_path):
    opts = toy_options(tmp_path, amp="fp16")
    with pytest.raises(ConfigError, match=r"^toy: train.amp is 'fp16', which needs CUDA .* use amp: bf16"):
        Trainer(opts, ToyTask(opts), tmp_path / "run", torch.device("cpu"), progress=False)


def test_bad_speed_option_values_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"train.compile must be one of 'none', 'generator', 'critic', 'all'"):
        toy_options(tmp_path, compile="yes")
    with pytest.raises(ConfigError, match=r"train.optimizer_impl must be one of 'auto', 'fused'"):
        toy_options(tmp_path, optimizer_impl="apex")
    with pytest.raises(ConfigError, match=r"train.channels_last must be true or false, got 'yes' or must be one of "
                                          r"'auto'"):
        toy_options(tmp_path, channels_last="yes")


@pytest.mark.parametrize("impl", ["fused", "foreach", "single"])
def test_adam_implementations_match_the_single_tensor_step(tmp_path, reference, impl):
    """fused / foreach Adam compute the same formula with other kernels: only float32 rounding differs. Weights are
    O(0.1-1), so one ulp is <= 1.2e-7; after 3 steps (the moments mix 3 gradients) 1e-6 absolute is a few ulps,
    while a wrong update would be off by ~lr = 1e-3 per step."""
    trainer, _ = run(tmp_path, steps=3, optimizer_impl=impl)
    group = trainer.opt_g.param_groups[0]
    assert bool(group["fused"]) == (impl == "fused") and bool(group["foreach"]) == (impl == "foreach")
    ref = params(reference["three"])
    for k, p in params(trainer).items():
        torch.testing.assert_close(p, ref[k], rtol=0, atol=1e-6, msg=k)


def test_channels_last_runs_on_the_cpu_and_matches(tmp_path, reference):
    """channels_last: true applies on the CPU (NHWC oneDNN kernels: another summation order, float32 rounding
    only). The gradients must agree to 1e-4 relative (fp32 rounding through a handful of layers). The first Adam
    step moves each weight by ~lr * g / |g|, so the weights agree to a few ulps (1e-6) wherever |g| is clear of
    the rounding noise (> 1e-4 of the layer's largest); elsewhere the update's sign is noise and may flip."""
    trainer, _ = run(tmp_path, channels_last=True)
    assert trainer.channels_last
    conv = next(m for m in trainer.G.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    ref_g, got_g = grads_seen(reference["one"]), grads_seen(trainer)
    for k in ref_g:
        torch.testing.assert_close(got_g[k], ref_g[k], rtol=1e-4, atol=1e-6, msg=k)
    ref = params(reference["one"])
    for k, p in params(trainer).items():
        clear = ref_g[k].abs() > 1e-4 * ref_g[k].abs().max()
        torch.testing.assert_close(p.contiguous()[clear], ref[k][clear], rtol=0, atol=1e-6, msg=k)
        assert (p - ref[k]).abs().max() <= 2 * LR + 1e-6, k


def test_bf16_autocast_runs_on_the_cpu_and_matches_within_bf16_precision(tmp_path, reference):
    """bf16 keeps 8 mantissa bits (unit roundoff 2^-9 ~ 2e-3). Convolution inputs and weights are rounded to bf16
    (products accumulate in fp32); the first generator layer's gradient passes the critic's 8 convs and the
    generator's 2, forward and back, each adding ~2^-8 relative error: ~10 * 4e-3 = 4e-2. Cancellation amplifies it:
    the critic's gradient is the difference of its real and fake terms, which nearly cancel at the start (the toy
    generator begins at the upsampled input; observed 0.14 over D's whole gradient, 0.06 over G's), and a bias
    gradient is a sum over every pixel (observed 0.28 on the critic's first bias). So G's and D's gradient vectors
    must agree to 0.25 in relative L2 norm and single tensors to 0.5 (a wrong dtype path or a dropped term is
    O(1)). One Adam step moves each weight by ~lr * sign(gradient): updates must have the fp32 step's sign for
    >= 90 % of the weights whose fp32 gradient is clear of zero (|g| > 5 % of the tensor's largest; a wrong
    update would agree on ~50 %), and no weight may move more than lr."""
    trainer, _ = run(tmp_path, amp="bf16")
    assert trainer.amp_dtype is torch.bfloat16
    ref_g, got_g = grads_seen(reference["one"]), grads_seen(trainer)
    differs = False
    for net in ("g.", "d."):
        keys = [k for k in ref_g if k.startswith(net)]
        a = torch.cat([ref_g[k].flatten() for k in keys])
        b = torch.cat([got_g[k].flatten() for k in keys])
        assert (b - a).norm() / a.norm() < 0.25, (net, float((b - a).norm() / a.norm()))
    for k in ref_g:
        rel = (got_g[k] - ref_g[k]).norm() / ref_g[k].norm().clamp_min(1e-12)
        assert rel < 0.5, (k, float(rel))
        differs |= not torch.equal(got_g[k], ref_g[k])
    assert differs  # autocast really ran in bf16 (fp32 would give identical gradients)
    start, ref = reference["start"], params(reference["one"])
    agree = total = 0
    for k, p in params(trainer).items():
        step, ref_step = p.detach() - start[k], ref[k].detach() - start[k]
        assert step.abs().max() <= LR * 1.001, k
        clear = ref_g[k].abs() > 0.05 * ref_g[k].abs().max()
        agree += int((torch.sign(step[clear]) == torch.sign(ref_step[clear])).sum())
        total += int(clear.sum())
    assert agree / total >= 0.9, agree / total  # the critic's near-cancelling gradients flip a few signs


@pytest.mark.parametrize("train", [{"amp": "bf16"}, {"channels_last": True}, {"optimizer_impl": "fused"},
                                   {"optimizer_impl": "foreach"}],
                         ids=["bf16", "channels_last", "fused", "foreach"])
@pytest.mark.parametrize("norm", ["san", "gp"])
def test_resume_is_bit_identical_with_speed_options(tmp_path, train, norm):
    straight, _ = run(tmp_path / "a", steps=6, norm=norm, **train)
    opts = toy_options(tmp_path / "b", norm=norm, steps=6, **train)
    torch.manual_seed(0)
    first = Trainer(opts, ToyTask(opts), tmp_path / "b" / "run", torch.device("cpu"), progress=False)
    assert first.fit(stop_at=3).stopped_early
    torch.manual_seed(0)
    second = Trainer(opts, ToyTask(opts), tmp_path / "b" / "run", torch.device("cpu"), progress=False)
    assert second.resume() is not None and second.step == 3
    second.fit()
    a, b = params(straight), params(second)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for e, f in zip(straight.ema.module.state_dict().values(), second.ema.module.state_dict().values(), strict=True):
        assert torch.equal(e, f)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("train", [{"amp": "bf16"}, {"amp": "fp16"}, {"channels_last": True}, {"tf32": True},
                                   {"optimizer_impl": "fused"}], ids=["bf16", "fp16", "channels_last", "tf32", "fused"])
def test_cuda_speed_options_train_and_stay_close_to_fp32(tmp_path, train):
    """On CUDA: each option trains 3 steps to finite losses and weights within 2 lr-sized steps of fp32 eager
    (reduced precision may flip the sign of an update of size ~lr, never move a weight further)."""

    def cuda_run(path, **kw):
        opts = toy_options(path, steps=3, norm="san", **kw)
        torch.manual_seed(0)
        trainer = Trainer(opts, ToyTask(opts), path / "run", torch.device("cuda"), progress=False)
        result = trainer.fit()
        return trainer, result

    ref, _ = cuda_run(tmp_path / "ref", tf32=False)
    got, result = cuda_run(tmp_path / "mode", **train)
    assert all(torch.isfinite(torch.tensor(v)) for v in result.last_scalars.values())
    a, b = params(ref), params(got)
    for k in a:
        assert (a[k] - b[k]).abs().max() <= 6 * LR, k
