"""The float part of the numerics contract: constants defined once, here.

The deployed model runs in three places (PyTorch deploy mode, C on x86, C on the
Cortex-M4). Binary parts are exact integers everywhere. The float parts use only
IEEE-754 single-precision +, -, *, / and sqrt (all correctly rounded on x86 SSE, on
the M4's FPv4 and in PyTorch's CPU kernels) in a fixed order, plus the project-owned
exp and log below, built from those same operations. No libm, no FMA
(the C is built with the exactness flags of codegen/cflags.py), so the three give
bit-identical floats.

Every constant the C needs is emitted from here into the generated header
(`bx_model.h`), as a C99 hex-float literal: C never re-derives one.

exp(x) (Cephes expf):
    x  = clamp(x, EXP_LO, EXP_HI)
    k  = floor(x * LOG2E + 0.5)                 -> x = k ln2 + r, |r| <= ln2 / 2
    r  = (x - k * LN2_HI) - k * LN2_LO          (ln2 split so k * LN2_HI is exact)
    p  = ((((c0 r + c1) r + c2) r + c3) r + c4) r + c5
    e^r = (p * r^2 + r) + 1
    exp(x) = e^r * 2^k, 2^k built from its exponent bits (k in [-126, 127]).

sigmoid(x) (a table with linear interpolation; issue 24: a quarter of the cost of
1 / (1 + exp(-x)) on the Cortex-M4, within 6e-5 of the true sigmoid, no branch):
    u  = (x + SIG_SHIFT) * SIG_FIX              (the add rounds; the multiply by 2^20 is exact)
    q  = u > 0 ? (u < SIG_QLIM ? (int) u : SIG_QMAX) : 0      (NaN -> 0; 2^25 - 1 at most)
    i  = q >> SIG_FRAC_BITS                     (in [0, SIG_N - 1]: the 1/16 step of x + 16)
    f  = (float)(q & 0xFFFF) * 2^-16            (exact, in [0, 1))
    sigmoid(x) = T[i] + f * D[i]                with (T[i], D[i]) = SIG_TD[2i], SIG_TD[2i + 1]:
    T[i] = float32(sigmoid(SIG_LO + i / SIG_SCALE)), D[i] = float32(T[i + 1] - T[i]), D[SIG_N] = 0.
The clamp of q is what the Cortex-M4 does by itself (VCVT to fixed point saturates and
sends NaN to 0, USAT clamps to [0, 2^25 - 1]), so inputs at or beyond the table's range
cost no extra instruction there.

softmax weights (attention): the scores tau * dot(q, k_j) of one head take the values
tau * (dh - 2 p_j), p_j = popcount(q ^ k_j), so the weights are a function of the
integer distance c_j = |p_j - p*| to the count p* of the largest score (the smallest
p_j for tau >= 0, the largest for tau < 0):
    e_j = exp(-(|tau| * (float)(2 c_j)))        = EXP_TABLE(tau)[c_j], c_j in [0, dh],
    one table of dh + 1 exps per head and block instead of one exp per query and key.

log(x), x > 0 normal (Cephes logf):
    x = m * 2^e with m in [sqrt(1/2), sqrt(2)), f = m - 1, z = f * f
    y = poly9(f) * f * z - LN2_LO' * e - z / 2   (each step below, in order)
    log x = (f + y) + LN2_HI * e
"""
from __future__ import annotations

import numpy as np

f32 = np.float32

# exp
EXP_LO = f32(-87.0)
EXP_HI = f32(88.0)
LOG2E = f32(1.44269504088896341)
LN2_HI = f32(0.693359375)
LN2_LO = f32(-2.12194440e-4)
EXP_POLY = tuple(f32(c) for c in (
    1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
    4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1,
))

# log
SQRTHF = f32(0.707106781186547524)
LOG_POLY = tuple(f32(c) for c in (
    7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
    -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
    2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
))

# sigmoid: table + linear interpolation on [SIG_LO, SIG_HI], SIG_SCALE steps per unit
SIG_LO = f32(-16.0)
SIG_HI = f32(16.0)
SIG_SCALE = f32(16.0)
SIG_OFF = f32(-SIG_LO * SIG_SCALE)
SIG_N = int(SIG_OFF * 2)            # intervals; T has SIG_N + 1 entries
SIG_SHIFT = f32(-SIG_LO)
SIG_FRAC_BITS = 16                  # fraction bits of q
SIG_FIX = f32(float(SIG_SCALE) * 2.0 ** SIG_FRAC_BITS)
SIG_QMAX = SIG_N * 2 ** SIG_FRAC_BITS - 1
SIG_QLIM = f32(SIG_QMAX + 1)
SIG_FRAC = f32(2.0 ** -SIG_FRAC_BITS)


def _sigmoid_table() -> np.ndarray:
    """SIG_TD (2 (SIG_N + 1),) float32: T[i], D[i] interleaved (one load pair per lookup)."""
    x = float(SIG_LO) + np.arange(SIG_N + 1, dtype=np.float64) / float(SIG_SCALE)
    t = (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
    d = np.zeros_like(t)
    d[:-1] = (t[1:].astype(np.float64) - t[:-1].astype(np.float64)).astype(np.float32)
    return np.stack([t, d], axis=1).reshape(-1)


SIG_TD = _sigmoid_table()

# layer norm
LN_EPS = f32(1e-5)

HALF = f32(0.5)
ONE = f32(1.0)


def c_float(x) -> str:
    """A float32 value as an exact C99 hex-float literal, e.g. `0x1.8p+0f`."""
    v = float(f32(x))
    if v == 0.0:
        return "-0.0f" if np.signbit(v) else "0.0f"
    mant, exp = v.hex().split("p")
    return mant.rstrip("0").rstrip(".") + "p" + exp + "f"


def constants() -> dict[str, np.float32 | int | tuple]:
    """Constants by C name (BX_...), for the generated header: floats and ints become
    macros, tuples `static const float` arrays."""
    out = {
        "BX_SIG_SHIFT": SIG_SHIFT, "BX_SIG_FIX": SIG_FIX, "BX_SIG_QLIM": SIG_QLIM, "BX_SIG_FRAC": SIG_FRAC,
        "BX_SIG_QMAX": SIG_QMAX, "BX_SIG_FRAC_BITS": SIG_FRAC_BITS,
        "BX_SIG_TD": tuple(SIG_TD),
        "BX_EXP_LO": EXP_LO, "BX_EXP_HI": EXP_HI, "BX_LOG2E": LOG2E,
        "BX_LN2_HI": LN2_HI, "BX_LN2_LO": LN2_LO, "BX_SQRTHF": SQRTHF,
        "BX_LN_EPS": LN_EPS,
    }
    for i, c in enumerate(EXP_POLY):
        out[f"BX_EXP_P{i}"] = c
    for i, c in enumerate(LOG_POLY):
        out[f"BX_LOG_P{i}"] = c
    from beexgen.core import slices          # the binary weights' layout for the Cortex-M kernels
    out.update(slices.constants())
    return out
