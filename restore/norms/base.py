"""The ``CriticNorm`` strategy (DESIGN.md, "Critic normalization: one strategy, three hooks") and shared helpers.

Critic output convention, used by the penalties and GraN (and by every critic in restore.archs):
  * a Tensor ``(N, ...)``: the real/fake score (a scalar per sample or a patch map);
  * a list of Tensors: one score map per scale (multi-scale critics, each scale an independent critic);
  * a tuple ``(scores, *extras)``: ``scores`` is either of the above; extras (class logits, intermediate features)
    pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

from restore.registry import NORMS, OptionValueError

Critic = Callable[..., Any]


class CriticNorm:
    """A critic normalization: re-parametrise weights (``apply``), add a loss (``penalty``), refresh (``step``).

    Tasks call the three hooks and never branch on the method's name.
    """

    name: ClassVar[str] = "none"
    #: padding every conv of the critic must use (SAN: "circular"); None leaves the architecture's choice.
    padding_mode: ClassVar[str | None] = None

    def apply(self, critic: nn.Module) -> nn.Module:
        """Normalise ``critic`` in place and return it (same object, same class)."""
        return critic

    def penalty(self, critic: Critic, real: Tensor, fake: Tensor) -> Tensor:
        """Extra critic loss for one critic step (a 0-dim tensor; zero for weight normalizations)."""
        return real.new_zeros(())

    def step(self) -> None:
        """Call once after every critic optimizer step."""

    def stats(self) -> dict[str, float]:
        """Named scalars for logging (the engine writes them; the norm never logs)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Counters that are not module buffers (for exact resume)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({opts})"


@NORMS.register("none")
class NoNorm(CriticNorm):
    """No normalization (vanilla critic)."""

    name = "none"


# ----------------------------------------------------------------------------------------------- helpers
def check_positive(key: str, value: float, strict: bool = True) -> None:
    if (value <= 0) if strict else (value < 0):
        raise OptionValueError(key, f"must be {'>' if strict else '>='} 0, got {value}")


def weighted_layers(critic: nn.Module, kinds: tuple[type, ...], method: str) -> list[tuple[str, nn.Module]]:
    """Layers a weight normalization acts on; refuses conv types it does not support and double application."""
    unsupported = (nn.Conv1d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    layers = []
    for name, module in critic.named_modules():
        if isinstance(module, kinds):
            if parametrize.is_parametrized(module, "weight"):
                raise ValueError(f"critic layer '{name}' is already re-parametrised "
                                 f"({type(module).__name__}); apply only one critic norm ({method})")
            layers.append((name, module))
        elif isinstance(module, unsupported):
            raise ValueError(f"critic layer '{name}' is a {type(module).__name__}, which {method} does not support "
                             "(Conv2d and Linear only)")
    if not layers:
        raise ValueError(f"{method}: the critic has no Conv2d or Linear layer to normalise")
    return layers


def refuse_batchnorm(critic: nn.Module, method: str) -> None:
    """GP, R1 and GraN need per-sample gradients: a critic that mixes samples (BatchNorm) breaks them."""
    for name, module in critic.named_modules():
        if isinstance(module, _BatchNorm):
            raise ValueError(f"critic layer '{name}' is {type(module).__name__}, which mixes samples in a batch; "
                             f"{method} needs per-sample gradients (use no norm layer, or LayerNorm/InstanceNorm)")


def scores_of(output: Any) -> list[Tensor]:
    """The adversarial score tensor(s) of a critic output (see the module docstring)."""
    if isinstance(output, tuple):
        output = output[0]
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, list) and output and all(isinstance(t, Tensor) for t in output):
        return list(output)
    raise TypeError("a critic must return a Tensor, a list of Tensors (one per scale) or a tuple (scores, *extras); "
                    f"got {type(output).__name__}")


def replace_scores(output: Any, scores: list[Tensor]) -> Any:
    """``output`` with its score tensor(s) replaced, extras kept."""
    if isinstance(output, tuple):
        return (replace_scores(output[0], scores), *output[1:])
    if isinstance(output, Tensor):
        return scores[0]
    return list(scores)


def per_sample(score: Tensor, reduce: str = "mean") -> Tensor:
    """Reduce a score map ``(N, ...)`` to one value per sample ``(N,)``."""
    flat = score.reshape(score.shape[0], -1)
    return flat.mean(1) if reduce == "mean" else flat.sum(1)


def input_gradients(scores: Tensor, inputs: list[Tensor], create_graph: bool) -> Tensor:
    """Per-sample squared norm ``(N,)`` of d scores.sum() / d inputs, over all input tensors together."""
    grads = torch.autograd.grad(scores.sum(), inputs, create_graph=create_graph, allow_unused=True)
    total = scores.new_zeros(scores.shape[0])
    for g in grads:
        if g is not None:
            total = total + g.reshape(g.shape[0], -1).pow(2).sum(1)
    return total
