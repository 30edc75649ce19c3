/* bx_kernels.h: the small kernels the forward pass is made of.
 *
 * Binary vectors. A vector of n values in {+1, -1} is stored as ceil(n/32) uint32
 * words: value i is bit (i % 32) of word i / 32, LSB first; bit 0 means +1, bit 1
 * means -1, and sign(0) = +1 (the sign of -0.0 is +1 as well: it is not < 0).
 * Padding bits past n are 0 in every operand.
 *
 * Binary dot product. For a_i, w_i in {+1,-1}, a_i * w_i = +1 when the bits are
 * equal and -1 when they differ, i.e. when bit(a_i) XOR bit(w_i) = 1. With
 * p = popcount(a XOR w) differing positions out of n,
 *     dot(a, w) = (n - p) - p = n - 2p.
 * Padding bits are 0 in both operands, so their XOR is 0 and they never count.
 */
#ifndef BX_KERNELS_H
#define BX_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "bx_internal.h"        /* exactness pragmas, BX_INTERNAL */

/* Kernel selection (no weak symbols, no link-order tricks). The engine calls one name
 * per kernel (bx_binlinear, bx_layernorm, ...). An ISA file of the target (codegen/
 * project.py KERNEL_FILES: bx_kernels_x86.c on the host, bx_kernels_arm*.c on a
 * Cortex-M with Thumb-2 + VFP) defines some of them, and its header
 * bx_kernels_<isa>.h says which with one BX_HAVE_<KERNEL> macro each; bx_kernels.c
 * defines every other one from its portable path. codegen writes only the target's ISA
 * files into a tree, so the ISA headers present in the tree are the selection, which
 * any IDE's preprocessor sees (and the exported one-unit file names them). A kernel defined twice or never is a compile or link
 * error, never a silent fallback. */
#if defined(__has_include)
#if __has_include("bx_kernels_x86.h")
#include "bx_kernels_x86.h"
#endif
#if __has_include("bx_kernels_arm.h")
#include "bx_kernels_arm.h"
#endif
#endif
/* (A compiler without __has_include: the exported library's one-unit file includes its
 * target's ISA headers itself, first; a file-by-file build there must do the same, or an
 * ISA kernel is defined twice: a link error, never a silent fallback.) */

#define BX_WORDS(n) (((n) + 31) / 32)

/* popcount of one word: the portable SWAR reference, and the optimised path. */
BX_INTERNAL int bx_popcount_ref(uint32_t v);
BX_INTERNAL int bx_popcount(uint32_t v);

/* x (n,) float -> out (BX_WORDS(n),) packed signs (bit 1 where x[i] < 0). */
BX_INTERNAL void bx_pack_signs_ref(uint32_t *out, const float *x, int n);
BX_INTERNAL void bx_pack_signs_portable(uint32_t *out, const float *x, int n);   /* C (and AVX2) */
BX_INTERNAL void bx_pack_signs(uint32_t *out, const float *x, int n);            /* the engine's: see bx_binlinear */

/* a, w (BX_WORDS(n),) packed -> n - 2 * popcount(a XOR w), in [-n, n]. */
BX_INTERNAL int32_t bx_bdot_ref(const uint32_t *a, const uint32_t *w, int n);
BX_INTERNAL int32_t bx_bdot(const uint32_t *a, const uint32_t *w, int n);

/* Binary linear layer: W (n_out, BX_WORDS(n_in)) packed, alpha, bias (n_out,)
 * xb (BX_WORDS(n_in),) packed -> y (n_out,):  y[o] = alpha[o] * dot(xb, W[o]) + bias[o]. */
BX_INTERNAL void bx_binlinear_ref(float *y, const uint32_t *xb, const uint32_t *w,
                      const float *alpha, const float *bias, int n_in, int n_out);
/* bx_binlinear_portable: the C path (with the x86 extensions the build enables), any
 * shape. bx_binlinear: what the engine calls; the portable path unless an ISA file
 * (bx_kernels_arm.c on the Cortex-M4) provides it. All three give the same y bits. */
BX_INTERNAL void bx_binlinear_portable(float *y, const uint32_t *xb, const uint32_t *w,
                           const float *alpha, const float *bias, int n_in, int n_out);
BX_INTERNAL void bx_binlinear(float *y, const uint32_t *xb, const uint32_t *w,
                  const float *alpha, const float *bias, int n_in, int n_out);

/* The same layer with W in the slices layout (beexgen/core/slices.py: groups of 32 rows,
 * column words, lanes 8 (q % 4) + q / 4), which the Cortex-M kernels read: the targets whose
 * ISA header defines BX_BINLINEAR_SLICES get their weights so (codegen/project.py), and
 * their bx_binlinear takes them. Reference, any shape; y bit-identical to bx_binlinear_ref. */
BX_INTERNAL void bx_binlinear_slices_ref(float *y, const uint32_t *xb, const uint32_t *w,
                             const float *alpha, const float *bias, int n_in, int n_out);
#ifndef BX_BINLINEAR_SLICES
#define BX_BINLINEAR_SLICES 0
#endif
/* The bit (lane) of a group's words that holds row q (0..31) of the group (slices.lane_of_row). */
#define BX_SLICE_LANE(q) (8 * ((q) % 4) + (q) / 4)
/* The words of a layer's rows from `row` on, in the target's layout: in the slices layout
 * row must be a multiple of BX_SLICE_ROWS (BX_BINLIN_SPLITS says whether it is). */
#if BX_BINLINEAR_SLICES
#define BX_BINLIN_AT(w, row, n_in) ((w) + (size_t)(row) / BX_SLICE_ROWS * (size_t)(BX_SLICE_HEAD + (n_in)))
#define BX_BINLIN_SPLITS(row) ((row) % BX_SLICE_ROWS == 0)
#else
#define BX_BINLIN_AT(w, row, n_in) ((w) + (size_t)(row) * BX_WORDS(n_in))
#define BX_BINLIN_SPLITS(row) 1
#endif

/* Layer norm over d: x, gamma, beta (d,) -> y (d,); y may alias x.
 * mean = sum(x)/d; var = sum((x-mean)^2)/d; r = 1/sqrt(var+eps); y = (x-mean)*r*g + b. */
BX_INTERNAL void bx_layernorm_portable(float *y, const float *x, const float *gamma, const float *beta, int d);
BX_INTERNAL void bx_layernorm(float *y, const float *x, const float *gamma, const float *beta, int d);   /* ISA files may define it: see bx_binlinear */
/* y (d,) = ((x - mean) * r) * gamma + beta, element-wise: a layer norm's last step. */
BX_INTERNAL void bx_layernorm_apply(float *y, const float *x, const float *gamma, const float *beta, int d,
                        float mean, float r);
/* The same for rows independent rows: x, y (rows, d) row-major; y may alias x. */
BX_INTERNAL void bx_layernorm_rows_portable(float *y, const float *x, const float *gamma, const float *beta, int rows, int d);
BX_INTERNAL void bx_layernorm_rows(float *y, const float *x, const float *gamma, const float *beta, int rows, int d);

/* One attention head for one query. q (BX_WORDS(dh),) packed query; keys: n packed
 * keys, key j at k + j * k_stride words; values: v + j * v_stride floats, dh of them;
 * e (n,) float and c (n,) int32 scratch; E (dh + 1,) the head's weight table
 * (bx_exp_table).  o (dh,) = sum_j softmax_j(tau * dot(q, k_j)) * v_j, the softmax
 * weights e_j = E[c_j - min c] taken from the counts c_j (beexgen/core/numerics.py). */
BX_INTERNAL void bx_attend(float *o, float *e, int32_t *c, const uint32_t *q, const uint32_t *k, int k_stride,
               const float *v, int v_stride, int n, int dh, float tau, const float *E);

/* A head's softmax weight table: E (dh + 1,), E[c] = bx_expf(-(|tau| * (float)(2c))),
 * the weight of a key whose score is 2c below the query's best (computed once per head
 * and block, not per query and key). */
BX_INTERNAL void bx_exp_table(float *E, float tau, int dh);

/* bx_attend's first two steps. Counts: c (n,) = popcount(q ^ k_j) over dh bits, or dh
 * minus it when flip (tau < 0: the best score then has the most differing bits), so the
 * best key always has the smallest count; returns min_j c_j (n >= 1). Weights:
 * e[j] = E[c[j] - lo], returning 1 / sum_j e[j] (sum in j order from 0.0f). Portable
 * paths and the engine-facing names (an ISA file may define them: BX_HAVE_*). */
BX_INTERNAL int32_t bx_attend_scores_portable(int32_t *c, const uint32_t *q, const uint32_t *k, int k_stride, int n, int dh,
                                  int flip);
BX_INTERNAL int32_t bx_attend_scores(int32_t *c, const uint32_t *q, const uint32_t *k, int k_stride, int n, int dh, int flip);
BX_INTERNAL float bx_attend_softmax_portable(float *e, const int32_t *c, int n, int32_t lo, const float *E);
BX_INTERNAL float bx_attend_softmax(float *e, const int32_t *c, int n, int32_t lo, const float *E);

/* bx_attend's last step: o (dh,) = inv * sum_j e[j] * v_j, each sum in j order from 0.0f. */
BX_INTERNAL void bx_attend_weigh_portable(float *o, const float *e, const float *v, int v_stride, int n, int dh, float inv);
BX_INTERNAL void bx_attend_weigh(float *o, const float *e, const float *v, int v_stride, int n, int dh, float inv);

/* Element-wise: x[i] = sigmoid(x[i]) and x[i] = exp(x[i] - m), i < n, each element the
 * float of bx_math.h's scalar routine (bx_sigmoidf, bx_expf). */
BX_INTERNAL void bx_sigmoid_array_portable(float *x, int n);
BX_INTERNAL void bx_sigmoid_array(float *x, int n);
BX_INTERNAL void bx_exp_shift_array_portable(float *x, float m, int n);
BX_INTERNAL void bx_exp_shift_array(float *x, float m, int n);

/* Embedding of one token: x (d,) = (bit k of tb ? -ts[k] : ts[k]) + (bit k of pb ? -ps[k] : ps[k]),
 * tb, pb (BX_WORDS(d),) packed sign bits of the token and position rows. */
BX_INTERNAL void bx_embed_row_portable(float *x, const uint32_t *tb, const uint32_t *pb, const float *ts, const float *ps, int d);
BX_INTERNAL void bx_embed_row(float *x, const uint32_t *tb, const uint32_t *pb, const float *ts, const float *ps, int d);

/* Residual: y (n,) = a + b element-wise (a the first operand); y may alias a or b. */
BX_INTERNAL void bx_vadd_portable(float *y, const float *a, const float *b, int n);
BX_INTERNAL void bx_vadd(float *y, const float *a, const float *b, int n);

/* SLFN mix (train/model.py): g (4d,) = sigmoid gates f1, f2, s then the candidate c;
 * att (d,) in place: att[k] = (f1[k] * x[k] + f2[k] * att[k]) + s[k] * c[k]. */
BX_INTERNAL void bx_slfn_mix_portable(float *att, const float *g, const float *x, int d);
BX_INTERNAL void bx_slfn_mix(float *att, const float *g, const float *x, int d);

/* Tokens the engine runs per-token stages on at a time (bx_engine.c): the rows
 * bx_layernorm_rows gets per call. The build of an ISA file that runs rows side by side
 * sets it (codegen/cflags.py HOST_ISA_LEVELS); 1 otherwise. Results do not depend on it. */
#ifndef BX_ROW_GROUP
#define BX_ROW_GROUP 1
#endif

/* Eight columns of bx_attend's V weighting: o (8,) = inv * sum_{j<n} e[j] * v[j * v_stride + 0..8),
 * each sum in j order from 0.0f. The portable definition, or an ISA file's (BX_HAVE_WEIGH8). */
#if !defined(BX_HAVE_WEIGH8)   /* else: an assembly kernel (bx_kernels_arm.h) */
BX_INTERNAL void bx_weigh8(float *o, const float *e, const float *v, int v_stride, int n, float inv);
#endif

/* Column means: m (d,) = (sum_{i<n} x[i][k], in i order from 0.0f) / n, x (n, d) row-major. */
BX_INTERNAL void bx_colmean_portable(float *m, const float *x, int n, int d);
BX_INTERNAL void bx_colmean(float *m, const float *x, int n, int d);

/* Exit head. x (n, d) row-major residual stream -> logits (c,):
 * m = mean over the n rows; logits = W . LN(m) + b with W (c, d). scratch (2d,). */
BX_INTERNAL void bx_exit_head(float *logits, float *scratch, const float *x, int n, int d,
                  const float *ln_w, const float *ln_b, const float *w, const float *b, int c);

/* Softmax statistics of logits (c,): predicted class (first max), its probability,
 * and the entropy H = -sum p log p, computed in the order of train/exits.py. */
BX_INTERNAL void bx_exit_stats(const float *logits, int c, int32_t *cls, float *conf, float *entropy);

#endif /* BX_KERNELS_H */
