"""Adversarial losses: small stateless objects registered in ``restore.registry.ADVERSARIAL``.

Each one turns critic outputs into the critic's loss (``critic(real, fake)``, minimised by the critic) and the
generator's loss (``generator(fake, real=None)``, minimised by the generator). Scores follow the critic output
convention of :mod:`restore.norms.base` (a Tensor, a list of Tensors one per scale, or a tuple ``(scores, *extras)``);
every score element is a raw logit (no sigmoid applied), the loss is the mean over its elements, and for
multi-scale critics the mean of the per-scale losses. Losses are computed in float32 (scores from autocast may be
half precision).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from restore.norms.base import scores_of
from restore.registry import ADVERSARIAL


class AdversarialLoss:
    """Base class: subclasses define the per-scale ``_critic`` / ``_generator`` on single score tensors."""

    name: ClassVar[str] = ""
    #: True when the generator loss also needs the critic's scores of real images (relativistic losses).
    generator_needs_real: ClassVar[bool] = False

    def critic(self, real_scores: Any, fake_scores: Any) -> Tensor:
        """Critic loss, a 0-dim float32 tensor; real and fake outputs must have the same number of scales."""
        reals, fakes = self._scales(real_scores, "real_scores"), self._scales(fake_scores, "fake_scores")
        if len(reals) != len(fakes):
            raise ValueError(f"{self.name} loss: the critic returned {len(reals)} real score scales but "
                             f"{len(fakes)} fake ones; both must come from the same critic")
        losses = [self._critic(r, f) for r, f in zip(reals, fakes, strict=True)]
        return sum(losses[1:], losses[0]) / len(losses)

    def generator(self, fake_scores: Any, real_scores: Any = None) -> Tensor:
        """Generator loss, a 0-dim float32 tensor. ``real_scores`` is used (and required) only by relativistic
        losses, and never back-propagated into."""
        fakes = self._scales(fake_scores, "fake_scores")
        if not self.generator_needs_real:
            losses = [self._generator(f, None) for f in fakes]
        else:
            if real_scores is None:
                raise ValueError(f"the {self.name} generator loss needs the critic's scores of real images: "
                                 "call generator(fake_scores, real_scores)")
            reals = self._scales(real_scores, "real_scores")
            if len(reals) != len(fakes):
                raise ValueError(f"{self.name} loss: {len(reals)} real score scales but {len(fakes)} fake ones")
            losses = [self._generator(f, r.detach()) for f, r in zip(fakes, reals, strict=True)]
        return sum(losses[1:], losses[0]) / len(losses)

    @staticmethod
    def _scales(output: Any, what: str) -> list[Tensor]:
        try:
            return [s.float() for s in scores_of(output)]
        except TypeError as err:
            raise TypeError(f"{what}: {err}") from None

    def _critic(self, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def _generator(self, fake: Tensor, real: Tensor | None) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@ADVERSARIAL.register("hinge")
class HingeLoss(AdversarialLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018, SN-GAN; the SAN paper's choice).

    critic = E[relu(1 - D(r))] + E[relu(1 + D(f))]; generator = -E[D(f)].
    """

    name = "hinge"

    def _critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def _generator(self, fake: Tensor, real: Tensor | None) -> Tensor:
        return -fake.mean()


@ADVERSARIAL.register("ns")
class NonSaturatingLoss(AdversarialLoss):
    """Non-saturating GAN loss (Goodfellow et al. 2014), i.e. binary cross-entropy on logits.

    critic = E[softplus(-D(r))] + E[softplus(D(f))]; generator = E[softplus(-D(f))] (= -E[log sigmoid D(f)]).
    """

    name = "ns"

    def _critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.softplus(-real).mean() + F.softplus(fake).mean()

    def _generator(self, fake: Tensor, real: Tensor | None) -> Tensor:
        return F.softplus(-fake).mean()


@ADVERSARIAL.register("wgan")
class WassersteinLoss(AdversarialLoss):
    """Wasserstein loss (Arjovsky et al. 2017); needs a Lipschitz critic (GP, SN, SAN...).

    critic = E[D(f)] - E[D(r)]; generator = -E[D(f)].
    """

    name = "wgan"

    def _critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return fake.mean() - real.mean()

    def _generator(self, fake: Tensor, real: Tensor | None) -> Tensor:
        return -fake.mean()


@ADVERSARIAL.register("lsgan")
class LeastSquaresLoss(AdversarialLoss):
    """Least-squares GAN (Mao et al. 2017) with targets a=0 (fake), b=1 (real), c=1 (generator's goal).

    critic = E[(D(r) - 1)^2] + E[D(f)^2]; generator = E[(D(f) - 1)^2]. Mao et al. write a 1/2 in front of every
    term; we leave it out (as basicsr's ``lsgan`` does) so loss weights carry over from ESRGAN-style recipes; it only
    rescales the loss, i.e. halves the effective weight.
    """

    name = "lsgan"

    def _critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return (real - 1).pow(2).mean() + fake.pow(2).mean()

    def _generator(self, fake: Tensor, real: Tensor | None) -> Tensor:
        return (fake - 1).pow(2).mean()


@ADVERSARIAL.register("relativistic")
class RelativisticAverageLoss(AdversarialLoss):
    """Relativistic average GAN (Jolicoeur-Martineau 2018) as used by ESRGAN (Wang et al. 2018, Eq. 1-2).

    With BCE(x, t) the mean binary cross-entropy of logits x against target t and E the mean over the batch (and
    score map): critic = 0.5 BCE(D(r) - E[D(f)], 1) + 0.5 BCE(D(f) - E[D(r)], 0);
    generator = 0.5 BCE(D(r) - E[D(f)], 0) + 0.5 BCE(D(f) - E[D(r)], 1), with D(r) detached in the generator loss.
    The critic loss is differentiated through both means, as in the RaGAN paper (basicsr detaches the opposite mean
    only because it back-propagates the real and fake halves separately).
    """

    name = "relativistic"
    generator_needs_real = True

    def _critic(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * (F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean())

    def _generator(self, fake: Tensor, real: Tensor | None) -> Tensor:
        assert real is not None  # checked in generator()
        return 0.5 * (F.softplus(real - fake.mean()).mean() + F.softplus(-(fake - real.mean())).mean())
