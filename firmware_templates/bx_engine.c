/* bx_engine.c: embedding, transformer block, exits and exit policies.
 *
 * The math is that of train/model.py, in the float order of train/deploy.py (the
 * PyTorch mirror the tests compare against bit for bit). Shapes: n tokens
 * (<= BX_SEQ_MAX), d = BX_D_MODEL, h = BX_N_HEADS heads of dh = BX_D_HEAD, f = BX_D_FF.
 *
 * Memory. A block first computes the packed queries and keys and the float values of
 * all n tokens. After that, token i's residual row x[i] is read by nobody but token
 * i, so attention output, SLFN and feed-forward run token by token and overwrite
 * x[i] in place: the static RAM is x and v (n x d floats each), the packed q and k
 * (n x d bits each) and a few per-token rows, independent of the number of blocks.
 */
#include "bx_engine.h"

#include "bx_kernels.h"
#include "bx_math.h"
#include "bx_status.h"
#include "bx_tokenizer.h"

#define D   BX_D_MODEL
#define H   BX_N_HEADS
#define DH  BX_D_HEAD
#define F   BX_D_FF
#define WDH BX_WORDS(DH)
#define MAXW (F > 4 * D ? F : 4 * D)        /* widest per-token row: slfn (4d) or up (f) */
#define MAXIN (F > D ? F : D)               /* widest binary-layer input */

static float    bx_x[BX_SEQ_MAX][D];        /* residual stream */
static float    bx_v[BX_SEQ_MAX][D];        /* attention values */
static uint32_t bx_qb[BX_SEQ_MAX][H][WDH];  /* packed queries, per head */
static uint32_t bx_kb[BX_SEQ_MAX][H][WDH];  /* packed keys, per head */
static float    bx_e[BX_SEQ_MAX];           /* attention weights of one query */
static float    bx_row[MAXW];               /* per-token scratch rows */
static float    bx_row2[D];
static float    bx_att[D];
static uint32_t bx_ub[BX_WORDS(MAXIN)];     /* packed input of a binary layer */

static int32_t  bx_policy = BX_DEFAULT_POLICY;
/* One spare entry: with a single block, policy_exits() never reads bx_thr[b] for
 * b >= 1, but the compiler cannot see that and warns (-Warray-bounds). */
static float    bx_thr[BX_N_BLOCKS + 1] = BX_DEFAULT_THRESHOLDS;
static int      bx_n_thr = BX_DEFAULT_N_THRESHOLDS;
static float    bx_h_prev;                  /* entropy of the previous exit */

void bx_embed(const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        const uint32_t *te = bx_tok_bits + (size_t)ids[i] * BX_WORDS(D);
        const uint32_t *pe = bx_pos_bits + (size_t)i * BX_WORDS(D);
        for (int k = 0; k < D; k++) {
            float t = ((te[k >> 5] >> (k & 31)) & 1u) ? -bx_tok_scale[k] : bx_tok_scale[k];
            float p = ((pe[k >> 5] >> (k & 31)) & 1u) ? -bx_pos_scale[k] : bx_pos_scale[k];
            bx_x[i][k] = t + p;
        }
    }
}

/* LN, sign-pack and binary linear: y (n_out,) = BinLin(sign(LN(x))), x (D,). */
static void norm_binlinear(float *y, const float *x, const bx_norm_w *ln, const bx_binlin_w *w, int n_out)
{
    bx_layernorm(bx_row2, x, ln->w, ln->b, D);
    bx_pack_signs(bx_ub, bx_row2, D);
    bx_binlinear(y, bx_ub, w->bits, w->alpha, w->bias, D, n_out);
}

static void qkv_all(const bx_block_w *blk, int n)
{
    for (int i = 0; i < n; i++) {
        norm_binlinear(bx_row, bx_x[i], &blk->ln1, &blk->qkv, 3 * D);
        for (int hh = 0; hh < H; hh++) {
            bx_pack_signs(bx_qb[i][hh], bx_row + hh * DH, DH);
            bx_pack_signs(bx_kb[i][hh], bx_row + D + hh * DH, DH);
        }
        for (int k = 0; k < D; k++) bx_v[i][k] = bx_row[2 * D + k];
    }
}

/* Token i: attention output and residual -> bx_att = x_att (D,). */
static void attention_token(const bx_block_w *blk, int i, int n)
{
    for (int hh = 0; hh < H; hh++)
        bx_attend(bx_row + hh * DH, bx_e, bx_qb[i][hh], &bx_kb[0][hh][0], H * WDH,
                  &bx_v[0][hh * DH], D, n, DH, blk->tau[hh]);
    bx_pack_signs(bx_ub, bx_row, D);
    bx_binlinear(bx_att, bx_ub, blk->out.bits, blk->out.alpha, blk->out.bias, D, D);
    for (int k = 0; k < D; k++) bx_att[k] = bx_x[i][k] + bx_att[k];
}

/* Token i: SLFN, y = f1 * x + f2 * x_att + s * c, written to bx_att (see model.py). */
static void slfn_token(const bx_block_w *blk, int i)
{
    if (blk->slfn.bits == NULL) return;          /* ablation: y = x_att */
    norm_binlinear(bx_row, bx_att, &blk->ln2, &blk->slfn, 4 * D);
    /* the three gates first, in one flat element-wise loop (SIMD lanes on the host;
     * each value is the same float either way), then the mix */
    bx_sigmoid_array(bx_row, 3 * D);
    for (int k = 0; k < D; k++) {
        float f1 = bx_row[k], f2 = bx_row[D + k], s = bx_row[2 * D + k];
        float keep = f1 * bx_x[i][k] + f2 * bx_att[k];
        bx_att[k] = keep + s * bx_row[3 * D + k];
    }
}

/* Token i: x[i] = y + down(sign(up(sign(LN3(y))))), y = bx_att. */
static void ffn_token(const bx_block_w *blk, int i)
{
    norm_binlinear(bx_row, bx_att, &blk->ln3, &blk->up, F);
    bx_pack_signs(bx_ub, bx_row, F);
    bx_binlinear(bx_row, bx_ub, blk->down.bits, blk->down.alpha, blk->down.bias, F, D);
    for (int k = 0; k < D; k++) bx_x[i][k] = bx_att[k] + bx_row[k];
}

void bx_block_forward(const bx_block_w *blk, int n)
{
    qkv_all(blk, n);
    for (int i = 0; i < n; i++) {
        attention_token(blk, i, n);
        slfn_token(blk, i);
        ffn_token(blk, i);
    }
}

static int policy_exits(int b, float conf, float h)
{
    if (b == BX_N_BLOCKS - 1) return 1;
    switch (bx_policy) {
    case BX_POLICY_ENTROPY:      /* (H_prev - H) / H_prev < tau, without the division */
        return b >= 1 && (bx_h_prev - h) < bx_thr[0] * bx_h_prev;
    case BX_POLICY_CONFIDENCE:
    case BX_POLICY_BUDGET:
        return conf >= bx_thr[b];
    default:
        return 0;
    }
}

int bx_exit_after(const bx_exit_w *ex, int b, int n, bx_result *out)
{
    static float scratch[2 * D];
    int32_t cls;
    float conf, h;
    bx_exit_head(out->logits, scratch, &bx_x[0][0], n, D, ex->ln.w, ex->ln.b, ex->w, ex->b, BX_N_CLASSES);
    bx_exit_stats(out->logits, BX_N_CLASSES, &cls, &conf, &h);
    int take = policy_exits(b, conf, h);
    bx_h_prev = h;
    if (take) {
        out->cls = cls;
        out->confidence = conf;
        out->exit_depth = b + 1;
    }
    return take;
}

int bx_model_ids(const uint8_t *text, size_t len, int32_t *ids)
{
    ids[0] = BX_CLS_ID;
    int k = bx_tokenize(text, len, ids + 1, BX_SEQ_MAX - 1);
    return k < 0 ? k : k + 1;
}

int bx_classify(const uint8_t *text, size_t len, bx_result *out)
{
    static int32_t ids[BX_SEQ_MAX];
    int n = bx_model_ids(text, len, ids);
    if (n < 0) return n;
    if (n <= 1) return -BX_STATUS_EMPTY;          /* only [CLS]: nothing to classify */
    out->n_tokens = n;
    int depth = bx_forward(ids, n, out);
    out->bmacs = bx_cost_bmacs[n - 1][depth - 1];
    out->flops = bx_cost_flops[n - 1][depth - 1];
    return 0;
}

int bx_engine_set_policy(int32_t policy, const float *thr, int n_thr)
{
    int want;
    switch (policy) {
    case BX_POLICY_NONE: want = 0; break;
    case BX_POLICY_ENTROPY: want = 1; break;
    case BX_POLICY_CONFIDENCE:
    case BX_POLICY_BUDGET: want = BX_N_BLOCKS - 1; break;
    default: return -BX_STATUS_BAD_ARGUMENT;
    }
    if (n_thr != want) return -BX_STATUS_BAD_ARGUMENT;
    for (int i = 0; i < n_thr; i++) {
        if (!(thr[i] == thr[i])) return -BX_STATUS_BAD_ARGUMENT;   /* NaN */
        bx_thr[i] = thr[i];
    }
    bx_policy = policy;
    bx_n_thr = n_thr;
    return 0;
}

int32_t bx_engine_get_policy(float *thr, int *n_thr)
{
    for (int i = 0; i < bx_n_thr; i++) thr[i] = bx_thr[i];
    *n_thr = bx_n_thr;
    return bx_policy;
}

const char *bx_policy_name(int32_t policy)
{
    return (policy >= 0 && policy < BX_N_POLICIES) ? bx_policy_names[policy] : NULL;
}

int32_t bx_policy_from_name(const char *name, size_t len)
{
    for (int32_t p = 0; p < BX_N_POLICIES; p++) {
        const char *s = bx_policy_names[p];
        if (strlen(s) == len && memcmp(s, name, len) == 0) return p;
    }
    return -1;
}
