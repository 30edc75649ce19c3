/* bx_math.h: project-owned float routines, bit-identical on x86 and Cortex-M4.
 *
 * Only IEEE-754 single-precision + - * / (correctly rounded on SSE, on the M4's
 * FPv4-SP and in PyTorch's CPU kernels) in a fixed order, no libm, no FMA (build
 * with -ffp-contract=off). train/fmath.py performs the same steps in PyTorch; the
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
 */
#ifndef BX_MATH_H
#define BX_MATH_H

#include <stdint.h>
#include <string.h>

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
    return 1.0f / (1.0f + bx_expf(-x));
}

/* Element-wise over arrays: x[i] = bx_sigmoidf(x[i]) and x[i] = bx_expf(x[i] - m), i < n.
 * On an x86 host with AVX2, eight lanes at a time by bx_expf8 below (each lane the
 * float the scalar routine returns), the last n % 8 by the scalar routine; elsewhere
 * the plain loop. Static inline, so the Cortex-M4 code is the loop it always was. */
static inline void bx_sigmoid_array(float *x, int n);
static inline void bx_exp_shift_array(float *x, float m, int n);

#if defined(__AVX2__)
#include <immintrin.h>

/* bx_expf in eight AVX2 lanes: the same IEEE operations in the same order. The clamps
 * are compare-and-blend; the floor step subtracts one where (float)k > t by adding the
 * compare mask (all ones = -1) to k, which is (float)(k - 1) of the scalar select. */
static inline __m256 bx_expf8(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(BX_EXP_LO), hi = _mm256_set1_ps(BX_EXP_HI);
    x = _mm256_blendv_ps(x, lo, _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    x = _mm256_blendv_ps(x, hi, _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
    __m256 t = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(BX_LOG2E)), _mm256_set1_ps(0.5f));
    __m256i k = _mm256_cvttps_epi32(t);
    k = _mm256_add_epi32(k, _mm256_castps_si256(_mm256_cmp_ps(_mm256_cvtepi32_ps(k), t, _CMP_GT_OQ)));
    __m256 kf = _mm256_cvtepi32_ps(k);
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(kf, _mm256_set1_ps(BX_LN2_HI)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(kf, _mm256_set1_ps(BX_LN2_LO)));
    __m256 p = _mm256_set1_ps(BX_EXP_P0);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BX_EXP_P1));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BX_EXP_P2));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BX_EXP_P3));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BX_EXP_P4));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(BX_EXP_P5));
    __m256 er = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r), _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(er, _mm256_castsi256_ps(bits));
}

static inline void bx_sigmoid_array(float *x, int n)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = bx_expf8(_mm256_xor_ps(_mm256_loadu_ps(x + i), sign));   /* -x */
        _mm256_storeu_ps(x + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) x[i] = bx_sigmoidf(x[i]);
}

static inline void bx_exp_shift_array(float *x, float m, int n)
{
    const __m256 mv = _mm256_set1_ps(m);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, bx_expf8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv)));
    for (; i < n; i++) x[i] = bx_expf(x[i] - m);
}
#elif defined(__ARM_ARCH_7EM__) && defined(__ARM_FP)
/* Cortex-M4 firmware: the sigmoid loop in assembly (bx_kernels_arm.c, the same float
 * operations as bx_sigmoidf); exp of x - m stays the loop below. */
void bx_m4_sigmoid_array(float *x, int n);

static inline void bx_sigmoid_array(float *x, int n)
{
    bx_m4_sigmoid_array(x, n);
}

static inline void bx_exp_shift_array(float *x, float m, int n)
{
    for (int i = 0; i < n; i++) x[i] = bx_expf(x[i] - m);
}
#else
static inline void bx_sigmoid_array(float *x, int n)
{
    for (int i = 0; i < n; i++) x[i] = bx_sigmoidf(x[i]);
}

static inline void bx_exp_shift_array(float *x, float m, int n)
{
    for (int i = 0; i < n; i++) x[i] = bx_expf(x[i] - m);
}
#endif

/* Correctly rounded square root: one instruction on both targets (vsqrt.f32 on the
 * M4, sqrtss on x86) given -fno-math-errno; never a libm call. */
static inline float bx_sqrtf(float x)
{
    return __builtin_sqrtf(x);
}

#endif /* BX_MATH_H */
