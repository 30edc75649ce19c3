/* bx_math.h: project-owned float routines, bit-identical on x86 and Cortex-M4.
 *
 * Only IEEE-754 single-precision + - * / (correctly rounded on SSE, on the M4's
 * FPv4-SP and in PyTorch's CPU kernels) in a fixed order, no libm, no FMA (built
 * with the exactness flags of codegen/cflags.py, which forbid contraction). train/fmath.py performs the same steps in PyTorch; the
 * constants come from beexgen/core/numerics.py through the generated bx_numerics.h.
 *
 * exp(x): x = k*ln2 + r with k = floor(x*log2(e) + 1/2), so |r| <= ln2/2. ln2 is
 * split in a short high part (k*LN2_HI is exact for |k| < 2^9) and a low part, so r
 * keeps its low bits. e^r = 1 + r + r^2 * p(r) with the Cephes degree-5 minimax
 * polynomial p; then 2^k is assembled from its exponent bits. x is clamped to
 * [-87, 88] so k stays in [-126, 127] (normal floats, no overflow).
 *
 * log(x), x > 0 normal: x = m * 2^e with m in [0.5, 1) read from the bits; if
 * m < sqrt(1/2) use f = 2m - 1 and e - 1, else f = m - 1, so f is in
 * [-0.29, 0.41]; log(1+f) = f - f^2/2 + f^3 * q(f) (Cephes degree-8 q), and
 * e*ln2 is added in two parts as for exp.
 *
 * sigmoid(x): a table with linear interpolation (beexgen/core/numerics.py), without a
 * branch: u = (x + SIG_SHIFT) * SIG_FIX, q = u clamped to [0, SIG_QMAX] and truncated
 * (NaN to 0), i = q >> 16 the interval, f = (q & 0xFFFF) * 2^-16 the fraction (exact),
 * then T[i] + f * D[i] with T, D interleaved in BX_SIG_TD. Within 6e-5 of the true
 * sigmoid, and about a quarter of the instructions of 1 / (1 + exp(-x)) on the M4.
 */
#ifndef BX_MATH_H
#define BX_MATH_H

#include <stdint.h>
#include <string.h>

#include "bx_internal.h"        /* exactness pragmas */

#include "bx_numerics.h"

static inline float bx_floor_small(float t)
{
    /* floor for |t| < 2^31: truncate toward zero, then step down for negatives. */
    int32_t k = (int32_t)t;
    return (float)k > t ? (float)(k - 1) : (float)k;   /* a select: no branch */
}

static inline float bx_expf(float x)
{
    /* selects, not branches, so that element-wise loops over bx_expf can run in SIMD
     * lanes on the host (-fno-trapping-math); the values are the same either way */
    x = x < BX_EXP_LO ? BX_EXP_LO : x;
    x = x > BX_EXP_HI ? BX_EXP_HI : x;
    float kf = bx_floor_small(x * BX_LOG2E + 0.5f);
    float r = x - kf * BX_LN2_HI;
    r = r - kf * BX_LN2_LO;
    float p = BX_EXP_P0;
    p = p * r + BX_EXP_P1;
    p = p * r + BX_EXP_P2;
    p = p * r + BX_EXP_P3;
    p = p * r + BX_EXP_P4;
    p = p * r + BX_EXP_P5;
    float er = (p * (r * r) + r) + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)kf + 127) << 23;
    float two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    return er * two_k;
}

static inline float bx_logf(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    int32_t e = (int32_t)((bits >> 23) & 0xFFu) - 126;
    uint32_t mbits = (bits & 0x7FFFFFu) | 0x3F000000u;
    float m;
    memcpy(&m, &mbits, sizeof m);
    float f;
    if (m < BX_SQRTHF) {
        e -= 1;
        f = (m + m) - 1.0f;
    } else {
        f = m - 1.0f;
    }
    float ef = (float)e;
    float z = f * f;
    float y = BX_LOG_P0;
    y = y * f + BX_LOG_P1;
    y = y * f + BX_LOG_P2;
    y = y * f + BX_LOG_P3;
    y = y * f + BX_LOG_P4;
    y = y * f + BX_LOG_P5;
    y = y * f + BX_LOG_P6;
    y = y * f + BX_LOG_P7;
    y = y * f + BX_LOG_P8;
    y = (y * f) * z;
    y = y + ef * BX_LN2_LO;
    y = y - 0.5f * z;
    float out = f + y;
    return out + ef * BX_LN2_HI;
}

static inline float bx_sigmoidf(float x)
{
    const float u = (x + BX_SIG_SHIFT) * BX_SIG_FIX;
    /* selects (NaN -> 0), as bx_expf's clamps; u < QLIM bounds the conversion */
    const int32_t q = u > 0.0f ? (u < BX_SIG_QLIM ? (int32_t)u : BX_SIG_QMAX) : 0;
    const int32_t i = q >> BX_SIG_FRAC_BITS;
    const float f = (float)(q & ((1 << BX_SIG_FRAC_BITS) - 1)) * BX_SIG_FRAC;
    return BX_SIG_TD[2 * i] + f * BX_SIG_TD[2 * i + 1];
}

/* Correctly rounded square root: one instruction on both targets (vsqrt.f32 on the
 * M4, sqrtss on x86) given the exactness flags (no errno); never a libm call. */
static inline float bx_sqrtf(float x)
{
    return __builtin_sqrtf(x);
}

#endif /* BX_MATH_H */
