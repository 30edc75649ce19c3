"""Binarization-aware training primitives and the binary layer's deploy equivalence."""
import numpy as np
import pytest
import torch

from beexgen.core import artifact
from beexgen.train.binarize import BinaryLinear, approx_sign, binarize, sign_pm1


def test_sign_convention_zero_is_plus_one():
    x = torch.tensor([-2.0, -1e-30, -0.0, 0.0, 1e-30, 3.0])
    assert sign_pm1(x).tolist() == [-1, -1, 1, 1, 1, 1]


@pytest.mark.parametrize("x0", [-1.5, -0.9, -0.5, -0.1, 0.1, 0.3, 0.75, 0.99, 1.2])
def test_second_order_gradient_matches_finite_differences(x0):
    """The backward of sign is d/dx of g(x), the piecewise quadratic approximation."""
    x = torch.tensor([x0], dtype=torch.float64, requires_grad=True)
    binarize(x).sum().backward()
    h = 1e-6
    fd = (approx_sign(torch.tensor([x0 + h], dtype=torch.float64))
          - approx_sign(torch.tensor([x0 - h], dtype=torch.float64))) / (2 * h)
    assert x.grad.item() == pytest.approx(fd.item(), abs=1e-6)


def test_approximation_is_continuous_and_saturates():
    x = torch.linspace(-2, 2, 4001, dtype=torch.float64)
    g = approx_sign(x)
    assert g[0] == -1 and g[-1] == 1
    assert (g.diff().abs() < 1e-2).all()


@pytest.mark.parametrize("n_in,n_out", [(1, 3), (31, 5), (32, 32), (33, 7), (63, 4), (64, 64), (65, 9)])
def test_binary_layer_equals_pm1_float_product_and_xnor_popcount(n_in, n_out):
    torch.manual_seed(n_in * 100 + n_out)
    lin = BinaryLinear(n_in, n_out)
    with torch.no_grad():
        lin.bias.normal_()
    xb = sign_pm1(torch.randn(20, n_in))
    y = lin(xb).detach()
    w = sign_pm1(lin.weight.detach())
    exact = (xb.double() @ w.double().t())  # +-1 products in float64: exact integers
    assert torch.equal((xb @ w.t()).double(), exact)
    # XNOR-popcount on the packed bits gives the same integers
    xp = artifact.pack_signs(xb.numpy())
    wp = artifact.pack_signs(lin.weight.detach().numpy())
    pop = np.vectorize(lambda v: bin(int(v)).count("1"))
    dots = np.array([[n_in - 2 * pop(xp[i] ^ wp[o]).sum() for o in range(n_out)] for i in range(len(xp))])
    assert np.array_equal(dots, exact.numpy().astype(np.int64))
    alpha = lin.weight.detach().abs().mean(1)
    assert torch.equal(y, exact.float() * alpha + lin.bias.detach())
