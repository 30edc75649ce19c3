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


def constants() -> dict[str, np.float32]:
    """Scalar constants by C name (BX_...), for the generated header."""
    out = {
        "BX_EXP_LO": EXP_LO, "BX_EXP_HI": EXP_HI, "BX_LOG2E": LOG2E,
        "BX_LN2_HI": LN2_HI, "BX_LN2_LO": LN2_LO, "BX_SQRTHF": SQRTHF,
        "BX_LN_EPS": LN_EPS,
    }
    for i, c in enumerate(EXP_POLY):
        out[f"BX_EXP_P{i}"] = c
    for i, c in enumerate(LOG_POLY):
        out[f"BX_LOG_P{i}"] = c
    return out
