/* bx_kernels.c: see bx_kernels.h for the shapes and the binary algebra. */
#include "bx_kernels.h"

#include "bx_math.h"

#include <string.h>

/* Portable popcount (SWAR): pairs, nibbles, bytes, then the four byte counts are
 * summed by the multiply (byte 3 of v * 0x01010101 holds their sum). */
int bx_popcount_ref(uint32_t v)
{
    v = v - ((v >> 1) & 0x55555555u);
    v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
    v = (v + (v >> 4)) & 0x0F0F0F0Fu;
    return (int)((v * 0x01010101u) >> 24);
}

#if defined(BX_USE_DSP) && defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
/* Cortex-M4 DSP path: after the nibble step each byte holds its own count (0..8);
 * USAD8 against zero sums the four bytes in one instruction (replacing the
 * multiply and shift). Same result as bx_popcount_ref for every input. */
int bx_popcount(uint32_t v)
{
    v = v - ((v >> 1) & 0x55555555u);
    v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
    v = (v + (v >> 4)) & 0x0F0F0F0Fu;
    return (int)__usad8(v, 0u);
}
#elif defined(__POPCNT__)
/* x86 host emulator on a CPU with POPCNT (-mpopcnt, which codegen passes when the
 * build machine has it): one instruction, same result as bx_popcount_ref. */
int bx_popcount(uint32_t v) { return __builtin_popcount(v); }
#else
int bx_popcount(uint32_t v) { return bx_popcount_ref(v); }
#endif

void bx_pack_signs(uint32_t *out, const float *x, int n)
{
    for (int w = 0; w < BX_WORDS(n); w++) {
        uint32_t word = 0;
        int end = (w + 1) * 32 < n ? (w + 1) * 32 : n;
        for (int i = w * 32; i < end; i++)
            word |= (uint32_t)(x[i] < 0.0f) << (i & 31);
        out[w] = word;
    }
}

int32_t bx_bdot_ref(const uint32_t *a, const uint32_t *w, int n)
{
    int32_t p = 0;
    for (int i = 0; i < BX_WORDS(n); i++)
        p += bx_popcount_ref(a[i] ^ w[i]);
    return n - 2 * p;
}

int32_t bx_bdot(const uint32_t *a, const uint32_t *w, int n)
{
    int32_t p = 0;
    for (int i = 0; i < BX_WORDS(n); i++)
        p += bx_popcount(a[i] ^ w[i]);
    return n - 2 * p;
}

/* Reference: one row at a time with the portable popcount. */
void bx_binlinear_ref(float *y, const uint32_t *xb, const uint32_t *w,
                      const float *alpha, const float *bias, int n_in, int n_out)
{
    const int words = BX_WORDS(n_in);
    for (int o = 0; o < n_out; o++) {
        int32_t dot = bx_bdot_ref(xb, w + (size_t)o * words, n_in);
        y[o] = (float)dot * alpha[o] + bias[o];
    }
}

/* Optimised: four rows at a time, so each input word is loaded once for four
 * popcounts and the four sums are independent (no serial dependency between them);
 * the remaining rows go one by one. The integer dots are those of the reference, and
 * the float epilogue is the same expression, so y is bit-identical. */
void bx_binlinear(float *y, const uint32_t *xb, const uint32_t *w,
                  const float *alpha, const float *bias, int n_in, int n_out)
{
    const int words = BX_WORDS(n_in);
    int o = 0;
#if defined(__POPCNT__) && !defined(BX_USE_DSP)
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
    for (; o + 4 <= n_out; o += 4) {
        const uint32_t *w0 = w + (size_t)o * words;
        const uint32_t *w1 = w0 + words, *w2 = w1 + words, *w3 = w2 + words;
        int32_t p0 = 0, p1 = 0, p2 = 0, p3 = 0;
        for (int i = 0; i < words; i++) {
            const uint32_t x = xb[i];
            p0 += bx_popcount(x ^ w0[i]);
            p1 += bx_popcount(x ^ w1[i]);
            p2 += bx_popcount(x ^ w2[i]);
            p3 += bx_popcount(x ^ w3[i]);
        }
        y[o + 0] = (float)(n_in - 2 * p0) * alpha[o + 0] + bias[o + 0];
        y[o + 1] = (float)(n_in - 2 * p1) * alpha[o + 1] + bias[o + 1];
        y[o + 2] = (float)(n_in - 2 * p2) * alpha[o + 2] + bias[o + 2];
        y[o + 3] = (float)(n_in - 2 * p3) * alpha[o + 3] + bias[o + 3];
    }
    for (; o < n_out; o++) {
        int32_t dot = bx_bdot(xb, w + (size_t)o * words, n_in);
        y[o] = (float)dot * alpha[o] + bias[o];
    }
}

void bx_layernorm(float *y, const float *x, const float *gamma, const float *beta, int d)
{
    float s = 0.0f;
    for (int i = 0; i < d; i++) s += x[i];
    float mean = s / (float)d;
    float s2 = 0.0f;
    for (int i = 0; i < d; i++) {
        float t = x[i] - mean;
        s2 += t * t;
    }
    float r = 1.0f / bx_sqrtf(s2 / (float)d + BX_LN_EPS);
    for (int i = 0; i < d; i++)
        y[i] = ((x[i] - mean) * r) * gamma[i] + beta[i];
}

void bx_attend(float *o, float *e, const uint32_t *q, const uint32_t *k, int k_stride,
               const float *v, int v_stride, int n, int dh, float tau)
{
    float m = 0.0f;
    for (int j = 0; j < n; j++) {
        e[j] = (float)bx_bdot(q, k + (size_t)j * k_stride, dh) * tau;
        if (j == 0 || e[j] > m) m = e[j];
    }
    for (int j = 0; j < n; j++) e[j] = bx_expf(e[j] - m);   /* element-wise */
    float z = 0.0f;
    for (int j = 0; j < n; j++) z += e[j];                  /* the sum, in j order */
    float inv = 1.0f / z;
    /* o[c] = (sum_j e[j] * v[j][c]) * inv, each sum taken in j order from 0.0f. The
     * loops run j outer, c inner: every o[c] still sees the same additions in the same
     * order (so the same float), but V is read row by row and the c loop has no
     * dependency between iterations (the compiler may use SIMD lanes for it). */
    for (int c = 0; c < dh; c++) o[c] = 0.0f;
    for (int j = 0; j < n; j++) {
        const float ej = e[j];
        const float *vj = v + (size_t)j * v_stride;
        for (int c = 0; c < dh; c++) o[c] += ej * vj[c];
    }
    for (int c = 0; c < dh; c++) o[c] *= inv;
}

void bx_exit_head(float *logits, float *scratch, const float *x, int n, int d,
                  const float *ln_w, const float *ln_b, const float *w, const float *b, int c)
{
    float *m = scratch, *h = scratch + d;
    for (int k = 0; k < d; k++) {
        float s = 0.0f;
        for (int i = 0; i < n; i++) s += x[(size_t)i * d + k];
        m[k] = s / (float)n;
    }
    bx_layernorm(h, m, ln_w, ln_b, d);
    for (int o = 0; o < c; o++) {
        float acc = 0.0f;
        for (int k = 0; k < d; k++) acc += h[k] * w[(size_t)o * d + k];
        logits[o] = acc + b[o];
    }
}

void bx_exit_stats(const float *logits, int c, int32_t *cls, float *conf, float *entropy)
{
    int32_t best = 0;
    for (int i = 1; i < c; i++)
        if (logits[i] > logits[best]) best = i;
    float m = logits[best];
    float z = 0.0f;
    for (int i = 0; i < c; i++) z += bx_expf(logits[i] - m);
    float logz = bx_logf(z);
    float h = 0.0f;
    for (int i = 0; i < c; i++) {
        float sh = logits[i] - m;
        float p = bx_expf(sh) / z;
        h = h - p * (sh - logz);
    }
    *cls = best;
    *conf = bx_expf(0.0f) / z;
    *entropy = h;
}
