import pytest
import torch
import torch.nn.functional as F

from restore.archs.layers import Conv2d, circular_pad, conv


@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 2, 1, 0), (3, 1, 2, 2), (0, 0, 0, 0)])
def test_circular_pad_matches_torch_forward_and_backward(pads):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    ours = circular_pad(x, pads)
    ref = F.pad(x, pads, mode="circular")
    assert torch.equal(ours, ref)
    g = torch.randn_like(ref)
    (ga,) = torch.autograd.grad(ours, x, g)
    (gb,) = torch.autograd.grad(ref, x, g)
    assert torch.allclose(ga, gb)
    assert torch.autograd.gradcheck(lambda t: circular_pad(t, pads), (x,))
    assert torch.autograd.gradgradcheck(lambda t: circular_pad(t, pads), (x,))


def test_conv_helper_honours_padding_mode_and_matches_torch_conv():
    torch.manual_seed(0)
    for mode in ("zeros", "circular", "reflect"):
        ours = conv(3, 4, 3, stride=2, padding_mode=mode)
        ref = torch.nn.Conv2d(3, 4, 3, stride=2, padding=1, padding_mode=mode)
        ref.load_state_dict(ours.state_dict())
        x = torch.randn(2, 3, 9, 8)
        assert ours.padding_mode == mode and isinstance(ours, torch.nn.Conv2d) and isinstance(ours, Conv2d)
        assert torch.allclose(ours(x), ref(x), atol=1e-6)


def test_double_backward_through_circular_conv():
    """GP and GraN differentiate input gradients: the fast pad must support it."""
    torch.manual_seed(0)
    c = conv(2, 3, 3, padding_mode="circular").double()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: torch.tanh(c(t)), (x,))
