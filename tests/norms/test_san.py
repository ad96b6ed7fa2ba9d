import math

import pytest
import torch
from torch import nn

from restore.builders import build_critic
from restore.norms import SAN, build_norm
from restore.norms.san import compensation_factor, harmonic, sparsity_aware_constant, top_singular_value
from tests.norms.brute import siso_gains


@pytest.mark.parametrize(
    "m,n,k,size",
    [(4, 3, 3, (8, 8)), (3, 2, 4, (12, 20)), (2, 2, 7, (16, 9)), (3, 3, 3, (32, 32)), (2, 3, 4, (8, 31)),
     (2, 2, 7, (5, 6))],  # the last: kernel larger than the input (taps wrap around)
)
def test_constant_matches_brute_force_power_iteration(m, n, k, size):
    torch.manual_seed(m * 100 + k)
    w = torch.randn(m, n, k, k)
    brute = siso_gains(w, size).max()
    exact = sparsity_aware_constant(w, size)
    assert exact.dtype == torch.float32
    assert abs(float(exact) - float(brute)) / float(brute) <= 1e-4


def test_constant_with_dilation_matches_dilated_kernel():
    torch.manual_seed(1)
    w = torch.randn(2, 2, 3, 3)
    dilated = torch.zeros(2, 2, 5, 5)
    dilated[:, :, ::2, ::2] = w
    brute = siso_gains(dilated, (10, 12)).max()
    assert sparsity_aware_constant(w, (10, 12), dilation=2) == pytest.approx(float(brute), rel=1e-4)


@pytest.mark.parametrize("k,size", [(3, (16, 16)), (4, (12, 10)), (3, (9, 14))])
def test_stride2_gain_is_bounded_by_stride1_constant(k, size):
    torch.manual_seed(k)
    w = torch.randn(3, 2, k, k)
    strided = siso_gains(w, size, stride=2)
    bound = sparsity_aware_constant(w, size)
    assert float(strided.max()) <= float(bound) * (1 + 1e-6)
    assert float(strided.max()) > 0.3 * float(bound)  # the test exercises a non-trivial operator


def test_compensation_factor_published_values():
    assert compensation_factor(64 * 64, 0.25) == pytest.approx(1.1846, abs=5e-5)
    assert compensation_factor(64 * 64, 1.0) == 1.0
    assert harmonic(4) == pytest.approx(1 + 1 / 2 + 1 / 3 + 1 / 4)
    assert harmonic(2_000_000) == pytest.approx(math.fsum(1 / j for j in range(1, 2_000_001)), rel=1e-12)
    with pytest.raises(ValueError, match="ratio"):
        compensation_factor(10, 0.0)


def _ranked_weight(m: int, n: int) -> torch.Tensor:
    """1x1-tap kernels whose |DFT| is flat and equal to 1..m*n, so the sampled max reveals the subset."""
    w = torch.zeros(m, n, 3, 3)
    w[:, :, 1, 1] = torch.randperm(m * n).float().reshape(m, n) + 1
    return w


def test_subset_sampling_is_uniform_and_never_exceeds_exact():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular", bias=False)
    with torch.no_grad():
        conv.weight.copy_(_ranked_weight(8, 8))
    exact = float(sparsity_aware_constant(conv.weight, (8, 8)))
    assert exact == pytest.approx(64)
    norm = SAN(ratio=0.25)
    norm.apply(conv)
    conv(torch.zeros(1, 8, 8, 8))
    param = conv.parametrizations.weight[0]
    assert param.gain == pytest.approx(compensation_factor(64, 0.25))
    hits, trials = 0, 400
    for _ in range(trials):
        norm.step()
        sigma = float(param.sigma)
        assert sigma <= exact + 1e-4  # a subset max never exceeds the full max, so g * sigma <= g * exact
        hits += sigma == pytest.approx(exact)
    # P(the largest kernel is in a uniform 16-of-64 subset) = 0.25
    assert abs(hits / trials - 0.25) < 4 * math.sqrt(0.25 * 0.75 / trials)


def test_subset_is_identical_across_instances_with_same_seed():
    """DDP: every rank derives the same subset, so every rank computes the same constant."""
    sigmas = []
    for _ in range(2):
        torch.manual_seed(3)
        conv = nn.Conv2d(16, 16, 3, padding=1, padding_mode="circular")
        norm = SAN(ratio=0.1, seed=7)
        norm.apply(conv)
        conv(torch.zeros(1, 16, 8, 8))
        run = []
        for _ in range(5):
            norm.step()
            run.append(float(conv.parametrizations.weight[0].sigma))
        sigmas.append(run)
    assert sigmas[0] == sigmas[1]
    assert len(set(sigmas[0])) > 1  # the subset really is resampled at each refresh


def test_ratio_one_is_exact_and_deterministic():
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 6, 3, padding=1, padding_mode="circular")
    norm = SAN()
    norm.apply(conv)
    conv(torch.zeros(1, 5, 11, 13))
    param = conv.parametrizations.weight[0]
    first = param.sigma.clone()
    norm.step()
    assert torch.equal(param.sigma, first)
    expected = sparsity_aware_constant(conv.parametrizations.weight.original, (11, 13))
    assert float(first) == pytest.approx(float(expected), rel=1e-6)
    assert param.gain == 1.0


@pytest.mark.parametrize("k,stride,size", [(3, 1, (12, 12)), (4, 2, (16, 12)), (7, 1, (10, 9)), (3, 2, (9, 9))])
def test_normalised_layer_bounds_every_one_sparse_input(k, stride, size):
    torch.manual_seed(k + stride)
    n, m = 4, 5
    conv = nn.Conv2d(n, m, k, stride=stride, padding=(k - 1) // 2, padding_mode="circular", bias=False)
    SAN(gain=1.0).apply(conv)
    worst = 0.0
    for j in range(n):
        x = torch.zeros(64, n, *size)
        x[:, j] = torch.randn(64, *size)
        # plus every pure Fourier mode (cos and sin) on channel j: these include the maximising input
        fy, fx = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1] // 2 + 1), indexing="ij")
        yy, xx = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
        phase = 2 * math.pi * (fy.reshape(-1, 1, 1) * yy / size[0] + fx.reshape(-1, 1, 1) * xx / size[1])
        modes = torch.cat([torch.cos(phase), torch.sin(phase)])
        modes = modes[modes.flatten(1).norm(dim=1) > 1e-6]
        xm = torch.zeros(modes.shape[0], n, *size)
        xm[:, j] = modes
        for batch in (x, xm):
            batch[:, j] /= batch[:, j].flatten(1).norm(dim=1)[:, None, None]
            with torch.no_grad():
                out = conv(batch)
            worst = max(worst, float(out.flatten(2).norm(dim=2).max()))
    assert worst <= 1 + 1e-5
    if stride == 1:
        assert worst >= 1 - 1e-4  # the bound is tight: some 1-sparse input reaches it


def test_linear_layers_use_top_singular_value():
    torch.manual_seed(0)
    lin = nn.Linear(40, 7)
    SAN().apply(lin)
    sigma = float(lin.parametrizations.weight[0].sigma)
    original = lin.parametrizations.weight.original.detach()
    assert sigma == pytest.approx(float(torch.linalg.svdvals(original)[0]), rel=1e-5)
    assert float(torch.linalg.svdvals(lin.weight.detach())[0]) == pytest.approx(1.0, rel=1e-5)
    assert float(top_singular_value(torch.randn(300, 3) * 2)) > 0


def test_every_controls_refresh_and_buffers_are_fp32_without_grad():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    norm = SAN(every=3)
    norm.apply(conv)
    conv(torch.zeros(1, 3, 8, 8))
    param = conv.parametrizations.weight[0]
    assert param.sigma.dtype == torch.float32 and not param.sigma.requires_grad
    before = param.sigma.clone()
    with torch.no_grad():
        conv.parametrizations.weight.original.mul_(2)
    norm.step()
    norm.step()
    assert torch.equal(param.sigma, before)
    norm.step()
    assert float(param.sigma) == pytest.approx(2 * float(before), rel=1e-6)


def test_size_change_recomputes_constant():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    SAN().apply(conv)
    conv(torch.zeros(1, 3, 8, 8))
    param = conv.parametrizations.weight[0]
    conv(torch.zeros(1, 3, 20, 20))
    assert param.size.tolist() == [20, 20]
    expected = sparsity_aware_constant(conv.parametrizations.weight.original, (20, 20))
    assert float(param.sigma) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("ratio", [1.0, 0.25])
def test_state_dict_round_trip_restores_constants_and_outputs(ratio):
    """With ratio < 1 a re-computation would draw a new subset: equal outputs prove the stored sigma is used."""
    spec = {"type": "san", "every": 2, "ratio": ratio}
    torch.manual_seed(0)
    critic, norm = build_critic("standard_cnn", {"width": 4, "image_size": 16}, build_norm(spec))
    x = torch.randn(3, 3, 16, 16)
    critic(x)
    with torch.no_grad():
        for p in critic.parameters():
            p.add_(0.01)
    norm.step()
    norm.step()
    state, norm_state = critic.state_dict(), norm.state_dict()
    assert any(k.endswith("sigma") for k in state)
    torch.manual_seed(1)
    other, other_norm = build_critic("standard_cnn", {"width": 4, "image_size": 16}, build_norm(spec))
    other(x)  # a forward before loading (sizes seen) must not keep stale state either
    other.load_state_dict(state)
    other_norm.load_state_dict(norm_state)
    assert torch.equal(other(x), critic(x))
    assert other_norm.state_dict() == {"steps": 2}
    for _ in range(2):  # and the next refreshes draw the same subsets as the original run would
        norm.step()
        other_norm.step()
    assert torch.equal(other(x), critic(x))


def test_non_circular_padding_is_an_error_naming_the_layer():
    critic = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))
    with pytest.raises(ValueError, match=r"critic layer '0'.*pads with 'zeros'.*circular"):
        SAN().apply(critic)
    over = nn.Conv2d(3, 4, 1, padding=1, padding_mode="circular")
    with pytest.raises(ValueError, match="exceeds"):
        SAN().apply(over)
    valid = nn.Conv2d(3, 4, 3, padding=0)  # a cropped circular conv: the constant still bounds it
    SAN().apply(valid)


def test_builder_sets_circular_padding_and_refuses_conflicts():
    critic, _ = build_critic("vgg_critic", {"width": 4, "image_size": 32, "dense": 8}, SAN())
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.padding_mode == "circular" for c in convs)
    with pytest.raises(ValueError, match=r"critic.padding_mode is 'zeros'.*'san' needs 'circular'"):
        build_critic("vgg_critic", {"width": 4, "image_size": 32, "padding_mode": "zeros"}, SAN())


def test_applying_two_norms_is_refused():
    critic, _ = build_critic("standard_cnn", {"width": 4, "image_size": 16}, SAN())
    with pytest.raises(ValueError, match="already re-parametrised"):
        build_norm("sn").apply(critic)


def test_option_errors_name_the_option():
    with pytest.raises(ValueError, match=r"ratio must be in \(0, 1\], got 1.5"):
        build_norm({"type": "san", "ratio": 1.5})
    with pytest.raises(ValueError, match="did you mean 'every'"):
        build_norm({"type": "san", "evry": 2})
    with pytest.raises(ValueError, match="unknown critic norm 'sam'.*did you mean 'san'"):
        build_norm({"type": "sam"})


@pytest.mark.parametrize("shape,size", [((8, 5, 3, 3), (17, 32)), ((4, 4, 4, 4), (9, 9)), ((3, 2, 7, 7), (6, 11)),
                                        ((2, 2, 1, 1), (5, 5))])
def test_separable_dft_matches_2d_fft(shape, size):
    from restore.norms.san import sparsity_aware_constant_fft

    torch.manual_seed(0)
    w = torch.randn(*shape)
    assert float(sparsity_aware_constant(w, size)) == pytest.approx(float(sparsity_aware_constant_fft(w, size)),
                                                                    rel=1e-5)
