"""PyTorch mirror of the C float routines (firmware_templates/bx_math.h).

Each function performs the same IEEE float32 operations, in the same order, as its C
twin, so that the deploy-mode forward and the generated C agree bit for bit. Rules:
only elementwise +, -, *, / (correctly rounded in torch), sqrt (see sqrt_rn), floor, comparisons and bit casts; reductions are
written as explicit sequential loops (`seq_sum`), never torch.sum / mean / matmul on
float data. Constants come from `beexgen.core.numerics` as float32 0-dim tensors.
See beexgen/core/numerics.py for the algorithms.
"""
from __future__ import annotations

import torch

from beexgen.core import numerics as nx

F32 = torch.float32


def _c(x) -> torch.Tensor:
    return torch.tensor(float(x), dtype=F32)


EXP_LO, EXP_HI, LOG2E = _c(nx.EXP_LO), _c(nx.EXP_HI), _c(nx.LOG2E)
LN2_HI, LN2_LO, SQRTHF = _c(nx.LN2_HI), _c(nx.LN2_LO), _c(nx.SQRTHF)
HALF, ONE, LN_EPS = _c(nx.HALF), _c(nx.ONE), _c(nx.LN_EPS)
EXP_POLY = [_c(c) for c in nx.EXP_POLY]
SIG_SHIFT, SIG_FIX, SIG_QLIM, SIG_FRAC = _c(nx.SIG_SHIFT), _c(nx.SIG_FIX), _c(nx.SIG_QLIM), _c(nx.SIG_FRAC)
SIG_T = torch.from_numpy(nx.SIG_TD[0::2].copy())
SIG_D = torch.from_numpy(nx.SIG_TD[1::2].copy())
LOG_POLY = [_c(c) for c in nx.LOG_POLY]


def bx_exp(x: torch.Tensor) -> torch.Tensor:
    x = torch.minimum(torch.maximum(x, EXP_LO), EXP_HI)
    kf = torch.floor(x * LOG2E + HALF)
    r = x - kf * LN2_HI
    r = r - kf * LN2_LO
    p = EXP_POLY[0]
    for c in EXP_POLY[1:]:
        p = p * r + c
    er = (p * (r * r) + r) + ONE
    two_k = ((kf.to(torch.int32) + 127) << 23).view(F32)
    return er * two_k


def bx_log(x: torch.Tensor) -> torch.Tensor:
    """Natural log of positive normal floats."""
    bits = x.contiguous().view(torch.int32)
    e = ((bits >> 23) & 0xFF) - 126
    m = ((bits & 0x7FFFFF) | 0x3F000000).view(F32)  # m in [0.5, 1)
    small = m < SQRTHF
    e = torch.where(small, e - 1, e)
    f = torch.where(small, (m + m) - ONE, m - ONE)
    ef = e.to(F32)
    z = f * f
    y = LOG_POLY[0]
    for c in LOG_POLY[1:]:
        y = y * f + c
    y = (y * f) * z
    y = y + ef * LN2_LO
    y = y - HALF * z
    out = f + y
    return out + ef * LN2_HI


def bx_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """The table sigmoid of beexgen/core/numerics.py: u = (x + SHIFT) * FIX, q = u clamped
    to [0, QMAX] and truncated (NaN -> 0), T[q >> 16] + ((q & 0xFFFF) * 2^-16) * D[q >> 16]."""
    u = (x + SIG_SHIFT) * SIG_FIX
    pos = u > 0                                         # False for NaN
    inside = pos & (u < SIG_QLIM)
    q = torch.where(inside, u, torch.zeros((), dtype=F32)).to(torch.int32)
    q = torch.where(inside, q, torch.where(pos, torch.tensor(nx.SIG_QMAX, dtype=torch.int32),
                                           torch.tensor(0, dtype=torch.int32)))
    i = (q >> nx.SIG_FRAC_BITS).long()
    f = (q & ((1 << nx.SIG_FRAC_BITS) - 1)).to(F32) * SIG_FRAC
    return SIG_T[i] + f * SIG_D[i]


def exp_table(tau: torch.Tensor, dh: int) -> torch.Tensor:
    """(dh + 1,) softmax weights by count distance c: exp(-(|tau| * (float)(2c)))
    (beexgen/core/numerics.py; the C's bx_exp_table)."""
    a = torch.abs(tau.to(F32))
    c2 = torch.arange(0, 2 * dh + 1, 2, dtype=F32)
    return bx_exp(-(a * c2))


def softmax_weights(s: torch.Tensor, valid: torch.Tensor, tau: torch.Tensor, dh: int) -> torch.Tensor:
    """Attention weights before normalisation (the C's bx_attend): s (..., n) the exact
    integer scores dot(q, k_j) as floats, valid (..., n) the keys that exist (broadcast).
    e_j = exp_table(tau)[c_j], c_j = (best - s_j) / 2 with best the max of s (min when
    tau < 0) over valid keys; 0 at invalid keys."""
    if bool(tau < 0):
        best = torch.where(valid, s, torch.tensor(float("inf"), dtype=F32)).min(dim=-1).values
        c = (s - best[..., None]) / 2
    else:
        best = torch.where(valid, s, torch.tensor(float("-inf"), dtype=F32)).max(dim=-1).values
        c = (best[..., None] - s) / 2
    idx = torch.where(valid, c, torch.zeros((), dtype=F32)).clamp(0, dh).long()
    return torch.where(valid, exp_table(tau, dh)[idx], torch.tensor(0.0, dtype=F32))


def attend_one(s: torch.Tensor, v: torch.Tensor, tau, dh: int) -> torch.Tensor:
    """The C's bx_attend for one query: s (n,) integer scores as floats, v (n, dh) -> o (dh,)."""
    e = softmax_weights(s, torch.ones(s.shape, dtype=torch.bool), torch.as_tensor(tau, dtype=F32), dh)
    z = seq_sum(e)
    acc = torch.zeros(v.shape[1:], dtype=F32)
    for j in range(len(s)):
        acc = acc + e[j] * v[j]
    return acc * (ONE / z)


def seq_sum(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Sum along `dim` strictly left to right, starting from +0.0 (as the C loops do)."""
    x = x.movedim(dim, -1)
    acc = torch.zeros(x.shape[:-1], dtype=F32)
    for k in range(x.shape[-1]):
        acc = acc + x[..., k]
    return acc


def sqrt_rn(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded float32 sqrt (what the C's vsqrt.f32 / sqrtss give).

    torch.sqrt on float32 CPU tensors is not correctly rounded (it differs by an ulp
    on about 15 % of inputs here). sqrt in float64 then one rounding to float32 is
    correctly rounded: 53 >= 2 * 24 + 2 bits, so the double rounding is innocuous."""
    return torch.sqrt(x.to(torch.float64)).to(F32)


def layer_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """C: mean = sum/d; var = sum((x-mean)^2)/d; r = 1/sqrt(var+eps); y = (x-mean)*r*g + b."""
    d = torch.tensor(float(x.shape[-1]), dtype=F32)
    mean = seq_sum(x) / d
    xc = x - mean[..., None]
    var = seq_sum(xc * xc) / d
    r = ONE / sqrt_rn(var + LN_EPS)
    return (xc * r[..., None]) * gamma + beta
