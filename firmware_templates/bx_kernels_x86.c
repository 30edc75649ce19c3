/* bx_kernels_x86.c: the x86 paths of the kernels (host emulator builds only; the
 * Cortex-M trees never receive this file: codegen/project.py KERNEL_FILES).
 *
 * Each function here is the definition of a kernel that bx_kernels.c leaves out (the
 * BX_HAVE_* macros of bx_kernels_x86.h),
 * compiled only when the build enables its instruction set (gcc -mpopcnt, -mavx2,
 * -mavx512*: codegen/cflags.py HOST_ISA_LEVELS, chosen from the build machine's CPU).
 * Built without them this file defines nothing and the portable paths run. Every path
 * does the integer work exactly and the float work as the same IEEE operations in the
 * same order as the portable reference, so it changes speed, never results. */
#include "bx_kernels.h"
#include "bx_kernels_x86.h"     /* BX_X86_AVX512, BX_X86_AVX2, BX_HAVE_* */

#include "bx_math.h"

#include <string.h>
#if defined(__POPCNT__) || defined(BX_X86_AVX2)
#include <immintrin.h>
#endif

#if defined(__POPCNT__)
/* One instruction, same result as bx_popcount_ref. */
int bx_popcount(uint32_t v) { return __builtin_popcount(v); }
#endif

#if defined(BX_X86_AVX2)
/* Whole words, eight lanes at a time: an ordered x < 0 compare (false for +0.0 and
 * -0.0 alike, as in the reference; a movemask of the raw sign bits would count -0.0
 * as negative), then movemask puts lane i's result in bit i; the last n % 32 values by
 * the reference. */
void bx_pack_signs(uint32_t *out, const float *x, int n)
{
    int w = 0;
    const __m256 zero = _mm256_setzero_ps();
    for (; (w + 1) * 32 <= n; w++) {
        const float *p = x + w * 32;
        uint32_t m0 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p), zero, _CMP_LT_OQ));
        uint32_t m1 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + 8), zero, _CMP_LT_OQ));
        uint32_t m2 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + 16), zero, _CMP_LT_OQ));
        uint32_t m3 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(p + 24), zero, _CMP_LT_OQ));
        out[w] = m0 | m1 << 8 | m2 << 16 | m3 << 24;
    }
    bx_pack_signs_ref(out + w, x + w * 32, n - w * 32);
}

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

/* bx_sigmoidf (the table sigmoid of bx_math.h) in eight lanes: u as in the scalar
 * routine, then clamped in float before the conversion (MAXPS returns its second operand,
 * 0, for NaN; QLIM = 2^25 is exact) and to QMAX in integers, which is the scalar
 * routine's q; the table pair of each lane gathered. */
void bx_sigmoid_array(float *x, int n)
{
    const __m256 shift = _mm256_set1_ps(BX_SIG_SHIFT), fix = _mm256_set1_ps(BX_SIG_FIX);
    const __m256 qlim = _mm256_set1_ps(BX_SIG_QLIM), frac = _mm256_set1_ps(BX_SIG_FRAC);
    const __m256i qmax = _mm256_set1_epi32(BX_SIG_QMAX), low = _mm256_set1_epi32((1 << BX_SIG_FRAC_BITS) - 1);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 u = _mm256_mul_ps(_mm256_add_ps(_mm256_loadu_ps(x + i), shift), fix);
        u = _mm256_min_ps(_mm256_max_ps(u, _mm256_setzero_ps()), qlim);
        __m256i q = _mm256_min_epi32(_mm256_cvttps_epi32(u), qmax);
        __m256i k2 = _mm256_slli_epi32(_mm256_srli_epi32(q, BX_SIG_FRAC_BITS), 1);
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(q, low)), frac);
        __m256 tv = _mm256_i32gather_ps(BX_SIG_TD, k2, 4);
        __m256 dv = _mm256_i32gather_ps(BX_SIG_TD + 1, k2, 4);
        _mm256_storeu_ps(x + i, _mm256_add_ps(tv, _mm256_mul_ps(f, dv)));
    }
    for (; i < n; i++) x[i] = bx_sigmoidf(x[i]);
}

void bx_exp_shift_array(float *x, float m, int n)
{
    const __m256 mv = _mm256_set1_ps(m);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, bx_expf8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv)));
    for (; i < n; i++) x[i] = bx_expf(x[i] - m);
}
#endif

#if defined(BX_X86_AVX512)
/* x86 with AVX-512 VPOPCNTQ, n_in a multiple of 64 with q = n_in / 64 in {1, 2, 4, 8}
 * 64-bit words per row: eight rows per step. Their 8q words are contiguous in W, so q
 * 512-bit loads cover them, each XORed with x repeated 8/q times (xpat) and counted per
 * 64-bit lane (VPOPCNTQ). Lanes holding consecutive words of one row are then summed
 * pairwise, log2(q) times (fold_pairs8), which leaves the eight rows' popcounts in lane
 * order. The epilogue is the reference's (float)dot * alpha + bias in eight lanes. */
static inline __m512i fold_pairs8(__m512i a, __m512i b)
{
    /* (a, b) as 16 lanes -> lane j = lane 2j + lane 2j+1 */
    const __m512i even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
    return _mm512_add_epi64(_mm512_permutex2var_epi64(a, even, b), _mm512_permutex2var_epi64(a, odd, b));
}

static inline __attribute__((always_inline))
int binlinear_avx512(float *y, const uint32_t *xb, const uint32_t *w, const float *alpha,
                     const float *bias, int n_in, int n_out, int q)
{
    uint64_t xq[8];
    for (int k = 0; k < 8; k++) memcpy(&xq[k], xb + 2 * (k % q), 8);
    const __m512i xpat = _mm512_loadu_si512(xq);
    const __m256i nin = _mm256_set1_epi32(n_in);
    int o = 0;
    for (; o + 8 <= n_out; o += 8) {
        const uint32_t *wo = w + (size_t)o * 2 * q;
        __m512i c[8];
        for (int k = 0; k < q; k++)
            c[k] = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(wo + 16 * k), xpat));
        for (int m = q; m > 1; m /= 2)
            for (int k = 0; k < m / 2; k++) c[k] = fold_pairs8(c[2 * k], c[2 * k + 1]);
        __m256i dot = _mm256_sub_epi32(nin, _mm256_slli_epi32(_mm512_cvtepi64_epi32(c[0]), 1));
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(alpha + o));
        _mm256_storeu_ps(y + o, _mm256_add_ps(v, _mm256_loadu_ps(bias + o)));
    }
    return o;
}
#elif defined(BX_X86_AVX2)
/* x86 with AVX2: the same scheme in 256-bit registers (four 64-bit lanes). A lane's
 * popcount is that of its bytes, each from a 16-entry table by VPSHUFB on the low and
 * high nibble. The pairwise folds work on these byte counts (at most 8q <= 64 per byte
 * after them, no overflow), one VPSADBW then sums each lane's eight bytes. Eight rows
 * are 2q registers, folded down to two (rows 0-3 and 4-7), then merged to eight 32-bit
 * lanes in row order. */
static inline __m256i fold_pairs4(__m256i a, __m256i b)
{
    /* (a, b) as 8 lanes -> lane j = lane 2j + lane 2j+1; the unpacks give the sums in
     * lane order 0, 2, 1, 3, which the permute puts back */
    __m256i s = _mm256_add_epi8(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
    return _mm256_permute4x64_epi64(s, 0xD8);
}

static inline __m256i byte_popcounts(__m256i v)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0F);
    __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
    __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
    return _mm256_add_epi8(lo, hi);
}

static inline __attribute__((always_inline))
int binlinear_avx2(float *y, const uint32_t *xb, const uint32_t *w, const float *alpha,
                   const float *bias, int n_in, int n_out, int q)
{
    /* x repeated 4/q times, or for q = 8 (a row is two registers) its two halves */
    uint64_t xq[8];
    for (int k = 0; k < 8; k++) memcpy(&xq[k], xb + 2 * (k % q), 8);
    const __m256i xpat[2] = {_mm256_loadu_si256((const __m256i *)xq),
                             _mm256_loadu_si256((const __m256i *)(xq + 4))};
    const __m256i nin = _mm256_set1_epi32(n_in), zero = _mm256_setzero_si256();
    const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    int o = 0;
    for (; o + 8 <= n_out; o += 8) {
        const uint32_t *wo = w + (size_t)o * 2 * q;
        __m256i c[16];
        for (int k = 0; k < 2 * q; k++)
            c[k] = byte_popcounts(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(wo + 8 * k)), xpat[k & 1]));
        for (int m = 2 * q; m > 2; m /= 2)
            for (int k = 0; k < m / 2; k++) c[k] = fold_pairs4(c[2 * k], c[2 * k + 1]);
        /* rows 0-3 in the low and rows 4-7 in the high halves of the 64-bit lanes */
        __m256i p = _mm256_or_si256(_mm256_sad_epu8(c[0], zero), _mm256_slli_epi64(_mm256_sad_epu8(c[1], zero), 32));
        p = _mm256_permutevar8x32_epi32(p, order);
        __m256i dot = _mm256_sub_epi32(nin, _mm256_slli_epi32(p, 1));
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(dot), _mm256_loadu_ps(alpha + o));
        _mm256_storeu_ps(y + o, _mm256_add_ps(v, _mm256_loadu_ps(bias + o)));
    }
    return o;
}
#endif

#if defined(__POPCNT__) || defined(BX_X86_AVX2)
/* The widest path the build has for the leading rows (eight at a time by AVX-512 or
 * AVX2 when n_in is 64, 128, 256 or 512; then four at a time on 64-bit words with
 * POPCNT when the word count is even); the remaining rows by bx_binlinear_portable. */
void bx_binlinear(float *y, const uint32_t *xb, const uint32_t *w,
                  const float *alpha, const float *bias, int n_in, int n_out)
{
    const int words = BX_WORDS(n_in);
    int o = 0;
#if defined(BX_X86_AVX512) || defined(BX_X86_AVX2)
#if defined(BX_X86_AVX512)
#define BX_BINLIN_SIMD binlinear_avx512
#else
#define BX_BINLIN_SIMD binlinear_avx2
#endif
    /* constant q per case, so the helper's loops over q unroll */
    if (n_in % 64 == 0) {
        switch (n_in / 64) {
        case 1: o = BX_BINLIN_SIMD(y, xb, w, alpha, bias, n_in, n_out, 1); break;
        case 2: o = BX_BINLIN_SIMD(y, xb, w, alpha, bias, n_in, n_out, 2); break;
        case 4: o = BX_BINLIN_SIMD(y, xb, w, alpha, bias, n_in, n_out, 4); break;
        case 8: o = BX_BINLIN_SIMD(y, xb, w, alpha, bias, n_in, n_out, 8); break;
        default: break;
        }
    }
#undef BX_BINLIN_SIMD
#endif
#if defined(__POPCNT__)
    /* x86 host with POPCNT and an even number of words: the same four-row scheme on
     * 64-bit words (memcpy: no alignment or aliasing assumptions). */
    if (words % 2 == 0) {
        for (; o + 4 <= n_out; o += 4) {
            const uint32_t *w0 = w + (size_t)o * words;
            const uint32_t *w1 = w0 + words, *w2 = w1 + words, *w3 = w2 + words;
            int32_t p0 = 0, p1 = 0, p2 = 0, p3 = 0;
            for (int i = 0; i < words; i += 2) {
                uint64_t x, a0, a1, a2, a3;
                memcpy(&x, xb + i, 8);
                memcpy(&a0, w0 + i, 8); memcpy(&a1, w1 + i, 8);
                memcpy(&a2, w2 + i, 8); memcpy(&a3, w3 + i, 8);
                p0 += __builtin_popcountll(x ^ a0);
                p1 += __builtin_popcountll(x ^ a1);
                p2 += __builtin_popcountll(x ^ a2);
                p3 += __builtin_popcountll(x ^ a3);
            }
            y[o + 0] = (float)(n_in - 2 * p0) * alpha[o + 0] + bias[o + 0];
            y[o + 1] = (float)(n_in - 2 * p1) * alpha[o + 1] + bias[o + 1];
            y[o + 2] = (float)(n_in - 2 * p2) * alpha[o + 2] + bias[o + 2];
            y[o + 3] = (float)(n_in - 2 * p3) * alpha[o + 3] + bias[o + 3];
        }
    }
#endif
    if (o < n_out)
        bx_binlinear_portable(y + o, xb, w + (size_t)o * words, alpha + o, bias + o, n_in, n_out - o);
}
#endif

#if defined(BX_X86_AVX2)
/* Columns k..k+7 of eight rows (rp[l] + k, eight floats each): c[j] lane l = rp[l][k + j].
 * The standard 8x8 transpose: unpack pairs of rows, shuffle to half-columns, then
 * join the 128-bit halves. */
static inline void transpose8(__m256 *c, const float *const *rp, int k)
{
    __m256 t0 = _mm256_unpacklo_ps(_mm256_loadu_ps(rp[0] + k), _mm256_loadu_ps(rp[1] + k));
    __m256 t1 = _mm256_unpackhi_ps(_mm256_loadu_ps(rp[0] + k), _mm256_loadu_ps(rp[1] + k));
    __m256 t2 = _mm256_unpacklo_ps(_mm256_loadu_ps(rp[2] + k), _mm256_loadu_ps(rp[3] + k));
    __m256 t3 = _mm256_unpackhi_ps(_mm256_loadu_ps(rp[2] + k), _mm256_loadu_ps(rp[3] + k));
    __m256 t4 = _mm256_unpacklo_ps(_mm256_loadu_ps(rp[4] + k), _mm256_loadu_ps(rp[5] + k));
    __m256 t5 = _mm256_unpackhi_ps(_mm256_loadu_ps(rp[4] + k), _mm256_loadu_ps(rp[5] + k));
    __m256 t6 = _mm256_unpacklo_ps(_mm256_loadu_ps(rp[6] + k), _mm256_loadu_ps(rp[7] + k));
    __m256 t7 = _mm256_unpackhi_ps(_mm256_loadu_ps(rp[6] + k), _mm256_loadu_ps(rp[7] + k));
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);   /* cols 0|4, 1|5 */
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);   /* cols 2|6, 3|7 */
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    c[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    c[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    c[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    c[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    c[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    c[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    c[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    c[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* column k of eight rows, for d % 8 trailing columns */
static inline __m256 column8(const float *const *rp, int k)
{
    return _mm256_setr_ps(rp[0][k], rp[1][k], rp[2][k], rp[3][k], rp[4][k], rp[5][k], rp[6][k], rp[7][k]);
}

/* The two sums of a layer norm are serial chains of d float additions (their order is
 * part of the result), so one row is bound by the adder's latency. Rows are
 * independent, though: eight rows run in the eight lanes of one register, lane l
 * summing row l's columns in the reference's order (the columns come from 8x8
 * transposes of the row-major input). A last group of fewer than eight rows repeats its
 * last row in the spare lanes and ignores them. The final element-wise step is row by
 * row, as in bx_layernorm (bx_layernorm_apply). */
void bx_layernorm_rows(float *y, const float *x, const float *gamma, const float *beta, int rows, int d)
{
    const __m256 dv = _mm256_set1_ps((float)d);
    for (int r0 = 0; r0 < rows; r0 += 8) {
        const float *rp[8];
        for (int l = 0; l < 8; l++) rp[l] = x + (size_t)(r0 + l < rows ? r0 + l : rows - 1) * d;
        __m256 c[8], s = _mm256_setzero_ps();
        int k = 0;
        for (; k + 8 <= d; k += 8) {
            transpose8(c, rp, k);
            for (int j = 0; j < 8; j++) s = _mm256_add_ps(s, c[j]);
        }
        for (; k < d; k++) s = _mm256_add_ps(s, column8(rp, k));
        const __m256 mean = _mm256_div_ps(s, dv);
        __m256 s2 = _mm256_setzero_ps();
        for (k = 0; k + 8 <= d; k += 8) {
            transpose8(c, rp, k);
            for (int j = 0; j < 8; j++) {
                __m256 t = _mm256_sub_ps(c[j], mean);
                s2 = _mm256_add_ps(s2, _mm256_mul_ps(t, t));
            }
        }
        for (; k < d; k++) {
            __m256 t = _mm256_sub_ps(column8(rp, k), mean);
            s2 = _mm256_add_ps(s2, _mm256_mul_ps(t, t));
        }
        __m256 var = _mm256_add_ps(_mm256_div_ps(s2, dv), _mm256_set1_ps(BX_LN_EPS));
        __m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_sqrt_ps(var));
        float mv[8], rv[8];
        _mm256_storeu_ps(mv, mean);
        _mm256_storeu_ps(rv, r);
        for (int l = 0; l < 8 && r0 + l < rows; l++)
            bx_layernorm_apply(y + (size_t)(r0 + l) * d, rp[l], gamma, beta, d, mv[l], rv[l]);
    }
}

/* o (8nb,) = inv * sum_j e[j] * v_j, v_j = v + j * v_stride: the reference's sums in
 * nb registers of eight lanes (one lane per c, the additions in j order from 0.0f)
 * instead of memory, so each j costs a multiply and an add per register. */
static inline __attribute__((always_inline))
void weigh_values_avx2(float *o, const float *e, const float *v, int v_stride, int n, int nb, float inv)
{
    __m256 acc[8];
    for (int b = 0; b < nb; b++) acc[b] = _mm256_setzero_ps();
    for (int j = 0; j < n; j++) {
        const __m256 ej = _mm256_set1_ps(e[j]);
        const float *vj = v + (size_t)j * v_stride;
        for (int b = 0; b < nb; b++)
            acc[b] = _mm256_add_ps(acc[b], _mm256_mul_ps(ej, _mm256_loadu_ps(vj + 8 * b)));
    }
    const __m256 iv = _mm256_set1_ps(inv);
    for (int b = 0; b < nb; b++) _mm256_storeu_ps(o + 8 * b, _mm256_mul_ps(acc[b], iv));
}

/* bx_attend's V weighting with dh = 16, 32 or 64 in registers; other dh portable. */
void bx_attend_weigh(float *o, const float *e, const float *v, int v_stride, int n, int dh, float inv)
{
    switch (dh) {   /* constant register counts, so the helper's loops over them unroll */
    case 16: weigh_values_avx2(o, e, v, v_stride, n, 2, inv); return;
    case 32: weigh_values_avx2(o, e, v, v_stride, n, 4, inv); return;
    case 64: weigh_values_avx2(o, e, v, v_stride, n, 8, inv); return;
    default: bx_attend_weigh_portable(o, e, v, v_stride, n, dh, inv); return;
    }
}
#endif

#if defined(__POPCNT__)
int32_t bx_attend_scores(int32_t *c, const uint32_t *q, const uint32_t *k, int k_stride, int n, int dh, int flip)
{
    if (dh == 32 && n > 0) {
        /* x86 host, one full word per key: the counts without bx_bdot's word loop
         * (flipping q's 32 bits turns p into 32 - p), then the minimum as its own loop */
        const uint32_t q0 = flip ? ~q[0] : q[0];
        for (int j = 0; j < n; j++) c[j] = __builtin_popcount(q0 ^ k[(size_t)j * k_stride]);
        int32_t lo = c[0];
        for (int j = 1; j < n; j++) lo = c[j] < lo ? c[j] : lo;
        return lo;
    }
    return bx_attend_scores_portable(c, q, k, k_stride, n, dh, flip);
}
#endif
