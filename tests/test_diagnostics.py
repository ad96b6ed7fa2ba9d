import pytest
import torch
import torch.nn.functional as F
from torch import nn

from restore.norms.san import sparsity_aware_constant
from restore.study.measures import (
    channel_sparsity,
    circular_conv_spectral_norm,
    finite_difference_lipschitz,
    input_gradient_norms,
    reshaped_spectral_norm,
)


def dense_circular_conv(weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The convolution as a dense matrix, column by column from basis inputs (torch's own circular conv)."""
    n = weight.shape[1]
    h, w = size
    k = weight.shape[2]
    basis = torch.eye(n * h * w, dtype=torch.float64).reshape(-1, n, h, w)
    pad = (k - 1) // 2
    out = F.conv2d(F.pad(basis, (pad, k - 1 - pad, pad, k - 1 - pad), mode="circular"), weight.double())
    return out.reshape(n * h * w, -1).T


@pytest.mark.parametrize("m,n,k,size", [(3, 2, 3, (6, 5)), (4, 3, 4, (5, 7)), (2, 2, 3, (8, 8))])
def test_true_spectral_norm_matches_dense_matrix(m, n, k, size):
    torch.manual_seed(k)
    weight = torch.randn(m, n, k, k)
    dense = torch.linalg.matrix_norm(dense_circular_conv(weight, size), ord=2)
    assert float(circular_conv_spectral_norm(weight, size)) == pytest.approx(float(dense), rel=1e-5)


def test_san_constant_is_below_the_true_norm_and_sn_estimate_is_the_reshape():
    torch.manual_seed(0)
    weight = torch.randn(8, 6, 3, 3)
    true = circular_conv_spectral_norm(weight, 16)
    assert float(sparsity_aware_constant(weight, 16)) <= float(true) * (1 + 1e-6)  # 1-sparse inputs are a subset
    assert float(reshaped_spectral_norm(weight)) == pytest.approx(
        float(torch.linalg.svdvals(weight.reshape(8, -1))[0]), rel=1e-6)


def test_channel_sparsity_on_a_hand_made_map():
    f = torch.zeros(2, 4, 3, 3)
    f[0, 1] = 1.0  # norm 3
    f[1, 2, 0, 0] = -2.0  # norm 2
    norms, zero = channel_sparsity(f)
    assert norms[0].tolist() == [0, 3, 0, 0] and norms[1].tolist() == [0, 0, 2, 0]
    assert zero == pytest.approx(6 / 8)
    with pytest.raises(ValueError, match="expected"):
        channel_sparsity(torch.zeros(2, 3))


def test_gradient_norms_and_finite_differences_of_a_linear_critic():
    torch.manual_seed(0)
    lin = nn.Linear(12, 1)
    x = torch.randn(5, 12)
    g = input_gradient_norms(lin, x)
    assert torch.allclose(g, lin.weight.norm().expand(5), rtol=1e-5)
    fd = finite_difference_lipschitz(lin, x, deltas=(0.01, 1.0))
    assert torch.allclose(fd, lin.weight.norm().detach().expand(2, 5), rtol=1e-3)
