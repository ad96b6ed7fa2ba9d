"""train.compile on the CPU (inductor): refused norms say why at build time; a compiled step matches eager.

Compiling is slow on a 2-core CPU (~1 min per model), so the models are the toy ones and one compiled run per norm
is shared by the assertions. The support matrix found on torch 2.14 is in docs/speed.md."""

import pytest
import torch

from restore.config import ConfigError
from restore.engine.trainer import COMPILE_REFUSED, Trainer
from tests.engine.toy import ToyTask, toy_options


def trained(path, norm, steps=2, **train):
    opts = toy_options(path, norm=norm, steps=steps, **train)
    torch.manual_seed(0)
    trainer = Trainer(opts, ToyTask(opts), path / "run", torch.device("cpu"), progress=False)
    result = trainer.fit()
    return trainer, result


@pytest.mark.parametrize("norm", sorted(COMPILE_REFUSED))
@pytest.mark.parametrize("target", ["critic", "all"])
def test_norms_that_cannot_compile_are_refused_at_build_time(tmp_path, norm, target):
    opts = toy_options(tmp_path, norm=norm, compile=target)
    name = {"gran": "double backward", "bsn": "in place"}[norm]
    with pytest.raises(ConfigError, match=rf"^toy: train.compile: '{target}' compiles the critic, which critic norm "
                                          rf"'{norm}' cannot use: .*{name}.*Use compile: generator"):
        Trainer(opts, ToyTask(opts), tmp_path / "run", torch.device("cpu"), progress=False)


@pytest.mark.parametrize("norm", ["san", "gp"])
def test_compiled_generator_and_critic_match_the_eager_steps(tmp_path, norm):
    """Two steps (generator + critic compiled; GP's penalty through the eager critic). Inductor fuses and reorders
    float32 arithmetic, so gradients differ by rounding (~1e-6 relative); the first Adam step moves each weight by
    ~lr * sign(g), which such rounding flips only where |g| is ~0, so weights must agree to 1e-5 (lr = 1e-3:
    a real error is 100x larger) except at most 1 % of them, which may differ by up to 2 lr per step."""
    eager, _ = trained(tmp_path / "eager", norm)
    compiled, result = trained(tmp_path / "compiled", norm, compile="all")
    assert type(compiled.D_train).__name__ == "OptimizedModule" and type(compiled.G_train).__name__ == \
        "OptimizedModule"
    assert all(torch.isfinite(torch.tensor(v)) for v in result.last_scalars.values())
    a = {**dict(eager.G.named_parameters()), **{f"d.{k}": v for k, v in eager.D.named_parameters()}}
    b = {**dict(compiled.G.named_parameters()), **{f"d.{k}": v for k, v in compiled.D.named_parameters()}}
    assert a.keys() == b.keys()  # state dicts keep their names (no _orig_mod prefix)
    for k in a:
        diff = (a[k] - b[k]).abs()
        assert (diff > 1e-5).float().mean() <= 0.01 and diff.max() <= 4e-3 + 1e-6, (k, float(diff.max()))
    if norm == "san":
        assert eager.norm.stats() == pytest.approx(compiled.norm.stats(), rel=1e-5)
