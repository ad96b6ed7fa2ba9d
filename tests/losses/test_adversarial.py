import math

import pytest
import torch

import restore.losses  # noqa: F401  (registers the adversarial losses)
from restore.registry import ADVERSARIAL

NAMES = ["hinge", "lsgan", "ns", "relativistic", "wgan"]
REAL = [2.0, -0.5]
FAKE = [0.5, -2.0]


def mean(xs):
    return sum(xs) / len(xs)


def softplus(x):
    return math.log1p(math.exp(x))


def bce(logit, target):
    """Binary cross-entropy of one logit, written from the sigmoid (independent of softplus)."""
    s = 1 / (1 + math.exp(-logit))
    return -(target * math.log(s) + (1 - target) * math.log(1 - s))


def by_hand(name):
    """(critic loss, generator loss) for REAL / FAKE, from the formulas in the papers."""
    r, f = REAL, FAKE
    if name == "hinge":
        return mean([max(0, 1 - x) for x in r]) + mean([max(0, 1 + x) for x in f]), -mean(f)
    if name == "ns":
        return mean([-math.log(1 / (1 + math.exp(-x))) for x in r]) + mean([softplus(x) for x in f]), \
            mean([softplus(-x) for x in f])
    if name == "wgan":
        return mean(f) - mean(r), -mean(f)
    if name == "lsgan":
        return mean([(x - 1) ** 2 for x in r]) + mean([x ** 2 for x in f]), mean([(x - 1) ** 2 for x in f])
    mr, mf = mean(r), mean(f)
    critic = 0.5 * mean([bce(x - mf, 1) for x in r]) + 0.5 * mean([bce(x - mr, 0) for x in f])
    generator = 0.5 * mean([bce(x - mf, 0) for x in r]) + 0.5 * mean([bce(x - mr, 1) for x in f])
    return critic, generator


def test_registered_names_and_which_needs_real():
    assert ADVERSARIAL.names() == NAMES
    assert [n for n in NAMES if ADVERSARIAL.build(n).generator_needs_real] == ["relativistic"]


@pytest.mark.parametrize("name", NAMES)
def test_losses_match_hand_computation(name):
    loss = ADVERSARIAL.build(name)
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    critic, generator = by_hand(name)
    assert loss.critic(real, fake).item() == pytest.approx(critic, abs=1e-6)
    assert loss.generator(fake, real).item() == pytest.approx(generator, abs=1e-6)


def test_hand_values_spelled_out():
    """A few of the numbers above written out, so a mistake in by_hand cannot hide a mistake in the losses."""
    real, fake = torch.tensor(REAL), torch.tensor(FAKE)
    assert ADVERSARIAL.build("hinge").critic(real, fake).item() == pytest.approx(0.75 + 0.75)
    assert ADVERSARIAL.build("hinge").generator(fake).item() == pytest.approx(0.75)
    assert ADVERSARIAL.build("wgan").critic(real, fake).item() == pytest.approx(-1.5)
    assert ADVERSARIAL.build("lsgan").critic(real, fake).item() == pytest.approx(1.625 + 2.125)
    assert ADVERSARIAL.build("lsgan").generator(fake).item() == pytest.approx(4.625)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_signs(name):
    """Critic loss falls as real scores rise and fake scores fall; generator loss falls as fake scores rise."""
    torch.manual_seed(0)
    loss = ADVERSARIAL.build(name)
    # inside the hinge margins (every term active) and between LSGAN's targets (fake > a=0, real < b=1), where
    # every loss is monotone in the scores
    real = (torch.rand(6, 1, 2, 2) - 0.5).requires_grad_()
    fake = (torch.rand(6, 1, 2, 2) * 0.45 + 0.05).requires_grad_()
    g_real, g_fake = torch.autograd.grad(loss.critic(real, fake), (real, fake))
    assert (g_real < 0).all() and (g_fake > 0).all()
    (g_gen,) = torch.autograd.grad(loss.generator(fake, real.detach()), (fake,))
    assert (g_gen < 0).all()
    with torch.no_grad():
        base = loss.critic(real, fake)
        assert loss.critic(real + 0.1, fake) < base and loss.critic(real, fake - 0.1) < base
        assert loss.generator(fake + 0.1, real) < loss.generator(fake, real)


@pytest.mark.parametrize("name", NAMES)
def test_multi_scale_is_the_mean_of_per_scale_losses_and_extras_pass(name):
    torch.manual_seed(0)
    loss = ADVERSARIAL.build(name)
    reals = [torch.randn(2, 1, 4, 4), torch.randn(2, 1, 2, 2), torch.randn(2, 1)]
    fakes = [torch.randn(2, 1, 4, 4), torch.randn(2, 1, 2, 2), torch.randn(2, 1)]
    want_c = sum(loss.critic(r, f) for r, f in zip(reals, fakes, strict=True)) / 3
    want_g = sum(loss.generator(f, r) for r, f in zip(reals, fakes, strict=True)) / 3
    assert torch.allclose(loss.critic(reals, fakes), want_c)
    assert torch.allclose(loss.generator(fakes, reals), want_g)
    extras = torch.randn(2, 5)  # e.g. class logits of a StarGAN critic
    assert torch.allclose(loss.critic((reals, extras), (fakes, extras)), want_c)
    assert torch.allclose(loss.generator((fakes, extras), (reals, extras)), want_g)


def test_score_maps_average_over_all_elements():
    real, fake = torch.randn(3, 1, 4, 5), torch.randn(3, 1, 4, 5)
    hinge = ADVERSARIAL.build("hinge")
    assert torch.allclose(hinge.critic(real, fake), hinge.critic(real.flatten(), fake.flatten()))


def test_relativistic_generator_does_not_backprop_into_real_scores():
    loss = ADVERSARIAL.build("relativistic")
    real = torch.randn(4, 1, requires_grad=True)
    fake = torch.randn(4, 1, requires_grad=True)
    g_real, g_fake = torch.autograd.grad(loss.generator(fake, real), (real, fake), allow_unused=True)
    assert g_real is None
    assert g_fake is not None and g_fake.abs().sum() > 0
    # the critic loss does differentiate through both means (RaGAN)
    g_real_c, _ = torch.autograd.grad(loss.critic(real, fake), (real, fake))
    assert g_real_c.abs().sum() > 0


def test_relativistic_generator_without_real_scores_says_what_to_pass():
    with pytest.raises(ValueError, match=r"needs the critic's scores of real images.*generator\(fake_scores, real"):
        ADVERSARIAL.build("relativistic").generator(torch.randn(2, 1))


def test_mismatched_scales_and_bad_outputs_are_clear_errors():
    hinge = ADVERSARIAL.build("hinge")
    with pytest.raises(ValueError, match="2 real score scales but 1 fake"):
        hinge.critic([torch.randn(2), torch.randn(2)], torch.randn(2))
    with pytest.raises(TypeError, match="fake_scores: a critic must return a Tensor"):
        hinge.generator({"scores": torch.randn(2)})


def test_half_precision_scores_give_float32_loss():
    loss = ADVERSARIAL.build("ns").critic(torch.randn(4, dtype=torch.float16), torch.randn(4, dtype=torch.float16))
    assert loss.dtype == torch.float32 and loss.dim() == 0
