/* bx_kernels.c: the portable kernels (every target); see bx_kernels.h for the shapes
 * and the binary algebra.
 *
 * Each kernel the engine calls is defined here from its portable path, unless an ISA
 * file of the target defines it (its BX_HAVE_<KERNEL> macro: bx_kernels.h, "Kernel
 * selection"; codegen/project.py KERNEL_FILES: bx_kernels_x86.c on the host,
 * bx_kernels_arm*.c on the Cortex-M4), falling back to the portable path for the shapes
 * it does not specialise. This file has no ISA-specific code. */
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

/* The optimised popcount: an ISA file with a popcount instruction (bx_kernels_x86.c
 * with POPCNT) defines it instead; same result for every input. The portable loops
 * below call bx_popcount_ref itself, which the compiler inlines. */
#if !defined(BX_HAVE_POPCOUNT)
int bx_popcount(uint32_t v) { return bx_popcount_ref(v); }
#endif

/* Reference: bit by bit. */
void bx_pack_signs_ref(uint32_t *out, const float *x, int n)
{
    for (int w = 0; w < BX_WORDS(n); w++) {
        uint32_t word = 0;
        int end = (w + 1) * 32 < n ? (w + 1) * 32 : n;
        for (int i = w * 32; i < end; i++)
            word |= (uint32_t)(x[i] < 0.0f) << (i & 31);
        out[w] = word;
    }
}

void bx_pack_signs_portable(uint32_t *out, const float *x, int n)
{
    bx_pack_signs_ref(out, x, n);
}

/* What the engine calls, unless an ISA file defines it (see bx_binlinear below). */
#if !defined(BX_HAVE_PACK_SIGNS)
void bx_pack_signs(uint32_t *out, const float *x, int n) { bx_pack_signs_portable(out, x, n); }
#endif

int32_t bx_bdot_ref(const uint32_t *a, const uint32_t *w, int n)
{
    int32_t p = 0;
    for (int i = 0; i < BX_WORDS(n); i++)
        p += bx_popcount_ref(a[i] ^ w[i]);
    return n - 2 * p;
}

/* The same function under its engine-facing name (the portable loops call bx_bdot_ref,
 * which the compiler inlines). */
int32_t bx_bdot(const uint32_t *a, const uint32_t *w, int n) { return bx_bdot_ref(a, w, n); }

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
void bx_binlinear_portable(float *y, const uint32_t *xb, const uint32_t *w,
                           const float *alpha, const float *bias, int n_in, int n_out)
{
    const int words = BX_WORDS(n_in);
    int o = 0;
    for (; o + 4 <= n_out; o += 4) {
        const uint32_t *w0 = w + (size_t)o * words;
        const uint32_t *w1 = w0 + words, *w2 = w1 + words, *w3 = w2 + words;
        int32_t p0 = 0, p1 = 0, p2 = 0, p3 = 0;
        for (int i = 0; i < words; i++) {
            const uint32_t x = xb[i];
            p0 += bx_popcount_ref(x ^ w0[i]);
            p1 += bx_popcount_ref(x ^ w1[i]);
            p2 += bx_popcount_ref(x ^ w2[i]);
            p3 += bx_popcount_ref(x ^ w3[i]);
        }
        y[o + 0] = (float)(n_in - 2 * p0) * alpha[o + 0] + bias[o + 0];
        y[o + 1] = (float)(n_in - 2 * p1) * alpha[o + 1] + bias[o + 1];
        y[o + 2] = (float)(n_in - 2 * p2) * alpha[o + 2] + bias[o + 2];
        y[o + 3] = (float)(n_in - 2 * p3) * alpha[o + 3] + bias[o + 3];
    }
    for (; o < n_out; o++) {
        int32_t dot = bx_bdot_ref(xb, w + (size_t)o * words, n_in);
        y[o] = (float)dot * alpha[o] + bias[o];
    }
}

/* The slices layout (beexgen/core/slices.py), the one the Cortex-M kernels read: groups of
 * 32 rows, each BX_SLICE_HEAD + n_in words, column j of the group at word BX_SLICE_HEAD + j
 * with row q's bit at lane 8 (q % 4) + q / 4. Reference: row by row, one input at a time,
 * dot = n_in - 2 * (differing bits), the same y as bx_binlinear_ref on the rows layout. */
void bx_binlinear_slices_ref(float *y, const uint32_t *xb, const uint32_t *w,
                             const float *alpha, const float *bias, int n_in, int n_out)
{
    for (int o = 0; o < n_out; o++) {
        const uint32_t *col = w + (size_t)(o / BX_SLICE_ROWS) * (size_t)(BX_SLICE_HEAD + n_in) + BX_SLICE_HEAD;
        const int lane = BX_SLICE_LANE(o % BX_SLICE_ROWS);
        int32_t p = 0;
        for (int j = 0; j < n_in; j++)
            p += (int32_t)(((col[j] >> lane) ^ (xb[j / 32] >> (j % 32))) & 1u);
        y[o] = (float)(n_in - 2 * p) * alpha[o] + bias[o];
    }
}

/* The kernel the engine calls: the portable path, unless an ISA file of the target
 * defines it (bx_kernels_arm.c in Cortex-M4 firmware, BX_HAVE_BINLINEAR), falling back
 * to bx_binlinear_portable for the shapes it does not specialise. */
#if !defined(BX_HAVE_BINLINEAR)
void bx_binlinear(float *y, const uint32_t *xb, const uint32_t *w,
                  const float *alpha, const float *bias, int n_in, int n_out)
{
    bx_binlinear_portable(y, xb, w, alpha, bias, n_in, n_out);
}
#endif

void bx_layernorm_apply(float *y, const float *x, const float *gamma, const float *beta, int d,
                        float mean, float r)
{
    for (int i = 0; i < d; i++)
        y[i] = ((x[i] - mean) * r) * gamma[i] + beta[i];
}

void bx_layernorm_portable(float *y, const float *x, const float *gamma, const float *beta, int d)
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
    bx_layernorm_apply(y, x, gamma, beta, d, mean, r);
}

/* What the engine calls, unless an ISA file defines it (bx_kernels_arm.c on the M4). */
#if !defined(BX_HAVE_LAYERNORM)
void bx_layernorm(float *y, const float *x, const float *gamma, const float *beta, int d)
{
    bx_layernorm_portable(y, x, gamma, beta, d);
}
#endif

/* Row by row (an ISA file may run rows side by side: bx_kernels_x86.c). */
void bx_layernorm_rows_portable(float *y, const float *x, const float *gamma, const float *beta, int rows, int d)
{
    for (int r = 0; r < rows; r++)
        bx_layernorm(y + (size_t)r * d, x + (size_t)r * d, gamma, beta, d);
}

#if !defined(BX_HAVE_LAYERNORM_ROWS)
void bx_layernorm_rows(float *y, const float *x, const float *gamma, const float *beta, int rows, int d)
{
    bx_layernorm_rows_portable(y, x, gamma, beta, rows, d);
}
#endif

/* Element-wise over arrays: x[i] = bx_sigmoidf(x[i]) and x[i] = bx_expf(x[i] - m), i < n.
 * ISA files may define them, in SIMD lanes (bx_kernels_x86.c) or in assembly
 * (bx_kernels_arm.c), each element the float the scalar routine returns. */
void bx_sigmoid_array_portable(float *x, int n)
{
    for (int i = 0; i < n; i++) x[i] = bx_sigmoidf(x[i]);
}

void bx_exp_shift_array_portable(float *x, float m, int n)
{
    for (int i = 0; i < n; i++) x[i] = bx_expf(x[i] - m);
}

#if !defined(BX_HAVE_SIGMOID_ARRAY)
void bx_sigmoid_array(float *x, int n) { bx_sigmoid_array_portable(x, n); }
#endif
#if !defined(BX_HAVE_EXP_SHIFT_ARRAY)
void bx_exp_shift_array(float *x, float m, int n) { bx_exp_shift_array_portable(x, m, n); }
#endif

/* -s is s with its sign bit flipped, so bit k of a word, moved to bit 31 and XORed into
 * the scale's bits, gives (bit ? -s : s) without a select. */
void bx_embed_row_portable(float *x, const uint32_t *tb, const uint32_t *pb, const float *ts, const float *ps, int d)
{
    for (int w = 0; w < BX_WORDS(d); w++) {
        uint32_t tw = tb[w], pw = pb[w];
        const int end = 32 * w + 32 < d ? 32 * w + 32 : d;
        for (int k = 32 * w; k < end; k++, tw >>= 1, pw >>= 1) {
            uint32_t tu, pu;
            float t, p;
            memcpy(&tu, &ts[k], sizeof tu);
            memcpy(&pu, &ps[k], sizeof pu);
            tu ^= tw << 31;
            pu ^= pw << 31;
            memcpy(&t, &tu, sizeof t);
            memcpy(&p, &pu, sizeof p);
            x[k] = t + p;
        }
    }
}

#if !defined(BX_HAVE_EMBED_ROW)
void bx_embed_row(float *x, const uint32_t *tb, const uint32_t *pb, const float *ts, const float *ps, int d)
{
    bx_embed_row_portable(x, tb, pb, ts, ps, d);
}
#endif

void bx_vadd_portable(float *y, const float *a, const float *b, int n)
{
    for (int i = 0; i < n; i++) y[i] = a[i] + b[i];
}

#if !defined(BX_HAVE_VADD)
void bx_vadd(float *y, const float *a, const float *b, int n) { bx_vadd_portable(y, a, b, n); }
#endif

void bx_slfn_mix_portable(float *att, const float *g, const float *x, int d)
{
    for (int k = 0; k < d; k++) {
        float keep = g[k] * x[k] + g[d + k] * att[k];
        att[k] = keep + g[2 * d + k] * g[3 * d + k];
    }
}

/* What the engine calls, unless an ISA file defines it (bx_kernels_arm.c on the M4). */
#if !defined(BX_HAVE_SLFN_MIX)
void bx_slfn_mix(float *att, const float *g, const float *x, int d) { bx_slfn_mix_portable(att, g, x, d); }
#endif

/* The three steps of bx_attend are separate functions (not inlined) so that an
 * instruction profile can tell them apart by symbol (codegen/m4bench.py profile);
 * a call costs a few instructions per head.
 * Counts: c (n,) = popcount(q ^ k_j) (dh - that when flip); returns their minimum. */
int32_t bx_attend_scores_portable(int32_t *c, const uint32_t *q, const uint32_t *k, int k_stride, int n, int dh,
                                  int flip)
{
    int32_t lo = 0;
    for (int j = 0; j < n; j++) {
        int32_t p = (dh - bx_bdot_ref(q, k + (size_t)j * k_stride, dh)) / 2;   /* exact: dh - dot = 2p */
        c[j] = flip ? dh - p : p;
        if (j == 0 || c[j] < lo) lo = c[j];
    }
    return lo;
}

/* Softmax weights: e[j] = E[c[j] - lo]; returns 1 / sum_j e[j] (sum in j order). */
float bx_attend_softmax_portable(float *e, const int32_t *c, int n, int32_t lo, const float *E)
{
    float z = 0.0f;
    for (int j = 0; j < n; j++) {
        e[j] = E[c[j] - lo];
        z += e[j];
    }
    return 1.0f / z;
}

/* E[c] = exp(-(|tau| * 2c)): the score tau * dot(q, k_j) minus the best score of the
 * query is -|tau| * 2 (c_j - min c) exactly in integers, so the weights need only these
 * dh + 1 exps per head (beexgen/core/numerics.py, train/fmath.py exp_table). */
void bx_exp_table(float *E, float tau, int dh)
{
    const float a = tau < 0.0f ? -tau : tau;
    for (int c = 0; c <= dh; c++) E[c] = bx_expf(-(a * (float)(2 * c)));
}

/* o (8,) = inv * sum_j e[j] * v_j[0..8): eight running sums in registers, each the
 * reference's additions in j order from 0.0f (so the same floats), V read row by row.
 * bx_kernels_arm.c has a VMLA loop for the Cortex-M4 instead (BX_HAVE_WEIGH8). */
#if !defined(BX_HAVE_WEIGH8)
void bx_weigh8(float *o, const float *e, const float *v, int v_stride, int n, float inv)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f, a4 = 0.0f, a5 = 0.0f, a6 = 0.0f, a7 = 0.0f;
    for (int j = 0; j < n; j++) {
        const float ej = e[j];
        const float *vj = v + (size_t)j * v_stride;
        a0 = a0 + ej * vj[0]; a1 = a1 + ej * vj[1]; a2 = a2 + ej * vj[2]; a3 = a3 + ej * vj[3];
        a4 = a4 + ej * vj[4]; a5 = a5 + ej * vj[5]; a6 = a6 + ej * vj[6]; a7 = a7 + ej * vj[7];
    }
    o[0] = a0 * inv; o[1] = a1 * inv; o[2] = a2 * inv; o[3] = a3 * inv;
    o[4] = a4 * inv; o[5] = a5 * inv; o[6] = a6 * inv; o[7] = a7 * inv;
}
#endif

/* The engine-facing steps, unless an ISA file defines them (bx_kernels_arm.c on the M4). */
#if !defined(BX_HAVE_ATTEND_SCORES)
int32_t bx_attend_scores(int32_t *c, const uint32_t *q, const uint32_t *k, int k_stride, int n, int dh, int flip)
{
    return bx_attend_scores_portable(c, q, k, k_stride, n, dh, flip);
}
#endif
#if !defined(BX_HAVE_ATTEND_SOFTMAX)
float bx_attend_softmax(float *e, const int32_t *c, int n, int32_t lo, const float *E)
{
    return bx_attend_softmax_portable(e, c, n, lo, E);
}
#endif

/* V weighting: o[c] = (sum_j e[j] * v[j][c]) * inv, each sum taken in j order from 0.0f. */
void bx_attend_weigh_portable(float *o, const float *e, const float *v, int v_stride, int n, int dh, float inv)
{
    int c0 = 0;
    for (; c0 + 8 <= dh; c0 += 8)                          /* eight columns at a time */
        bx_weigh8(o + c0, e, v + c0, v_stride, n, inv);
    /* the last dh % 8 columns: j outer, c inner; every o[c] sees the same additions in
     * the same order */
    for (int c = c0; c < dh; c++) o[c] = 0.0f;
    for (int j = 0; j < n; j++) {
        const float ej = e[j];
        const float *vj = v + (size_t)j * v_stride;
        for (int c = c0; c < dh; c++) o[c] += ej * vj[c];
    }
    for (int c = c0; c < dh; c++) o[c] *= inv;
}

#if !defined(BX_HAVE_ATTEND_WEIGH)
void bx_attend_weigh(float *o, const float *e, const float *v, int v_stride, int n, int dh, float inv)
{
    bx_attend_weigh_portable(o, e, v, v_stride, n, dh, inv);
}
#endif

void bx_attend(float *o, float *e, int32_t *c, const uint32_t *q, const uint32_t *k, int k_stride,
               const float *v, int v_stride, int n, int dh, float tau, const float *E)
{
    int32_t lo = bx_attend_scores(c, q, k, k_stride, n, dh, tau < 0.0f);
    float inv = bx_attend_softmax(e, c, n, lo, E);
    bx_attend_weigh(o, e, v, v_stride, n, dh, inv);
}

void bx_colmean_portable(float *m, const float *x, int n, int d)
{
    for (int k = 0; k < d; k++) {
        float s = 0.0f;
        for (int i = 0; i < n; i++) s += x[(size_t)i * d + k];
        m[k] = s / (float)n;
    }
}

/* Weak: bx_kernels_arm.c sums sixteen columns at a time in registers. */
#if !defined(BX_HAVE_COLMEAN)
void bx_colmean(float *m, const float *x, int n, int d) { bx_colmean_portable(m, x, n, d); }
#endif

void bx_exit_head(float *logits, float *scratch, const float *x, int n, int d,
                  const float *ln_w, const float *ln_b, const float *w, const float *b, int c)
{
    float *m = scratch, *h = scratch + d;
    bx_colmean(m, x, n, d);
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
