"""Binarization-aware training primitives (BEExformer, arXiv 2412.05225).

Forward: sign with sign(0) = +1 (never torch.sign, which gives 0).
Backward: the derivative of the second-order (piecewise quadratic) approximation of sign

    g(x) = -1          x < -1             g'(x) = 0
           2x + x^2    -1 <= x < 0                2 + 2x
           2x - x^2    0 <= x < 1                 2 - 2x
           1           x >= 1                     0

i.e. g'(x) = max(0, 2 - 2|x|). Unlike the straight-through estimator (g' = 1 on
|x| <= 1) it weighs the gradient by how close x is to the switching point.
"""
from __future__ import annotations

import torch
from torch import nn


def sign_pm1(x: torch.Tensor) -> torch.Tensor:
    """+1 where x >= 0 (and for -0.0), -1 where x < 0: the project's sign convention."""
    return torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    """g(x), the piecewise quadratic approximation itself (for tests and plots)."""
    xc = x.clamp(-1.0, 1.0)
    return torch.where(xc < 0, 2 * xc + xc * xc, 2 * xc - xc * xc)


class SignSecondOrder(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign_pm1(x)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        return grad_out * torch.clamp(2.0 - 2.0 * x.abs(), min=0.0)


def binarize(x: torch.Tensor) -> torch.Tensor:
    return SignSecondOrder.apply(x)


class BinaryLinear(nn.Module):
    """y = alpha * (sign(x) . sign(W)^T) + b, alpha = mean|W| per output channel.

    Shapes: x (..., in) -> y (..., out); W (out, in); alpha, b (out,).
    The input must already be +-1 (the caller binarizes it, so it can be shared);
    the product of +-1 float matrices is an exact integer: the C computes it as
    in - 2 * popcount(x XOR w). With binary=False this is a plain nn.Linear (the
    full-precision twin).
    """

    def __init__(self, n_in: int, n_out: int, binary: bool = True):
        super().__init__()
        self.binary = binary
        self.weight = nn.Parameter(torch.empty(n_out, n_in).uniform_(-1, 1) * (n_in ** -0.5))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def alpha(self) -> torch.Tensor:
        return self.weight.abs().mean(dim=1)

    def forward(self, xb: torch.Tensor) -> torch.Tensor:
        if not self.binary:
            return nn.functional.linear(xb, self.weight, self.bias)
        wb = binarize(self.weight)
        return (xb @ wb.t()) * self.alpha() + self.bias

    @torch.no_grad()
    def clip_(self):
        """Keep latent weights in [-1, 1], where g' is non-zero."""
        if self.binary:
            self.weight.clamp_(-1.0, 1.0)
