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
 *
 * Wide exit 0 (beexgen/core/wide.py, bx_wide.c). bx_classify tokenizes the whole line (a
 * line of at most BX_LINE_MAX bytes has at most BX_LINE_MAX ids) and feeds its ids and
 * its words to bx_wide.c, which sums int8 rows in int32 (exact) and turns the sums into
 * logits with one float multiply and one add per class, as train/deploy.py does. Those logits are exit 0 and are added to every deep exit's
 * logits. The blocks see [CLS] + the ids, or [CLS] + head + tail of them past
 * BX_SEQ_MAX.
 *
 * Token groups. The per-token stages run on BX_ROW_GROUP tokens at a time, stage by
 * stage, so that a layer norm gets that many independent rows (bx_layernorm_rows runs them side by side
 * in SIMD lanes on an x86 host; its serial sums make one row latency-bound). Every
 * token's arithmetic is the same either way. BX_ROW_GROUP is 1 on the Cortex-M4 (no SIMD lanes
 * to fill, and the per-token rows stay single) and 8 on an x86 host with AVX2.
 */
#include "bx_engine.h"

#include "bx_board.h"                       /* BX_LINE_MAX */
#include "bx_kernels.h"
#include "bx_math.h"
#include "bx_status.h"
#include "bx_tokenizer.h"

#define BX_HEAD_WORDS BX_WORDS(BX_D_HEAD)   /* packed words of one head's query or key */
/* widest per-token row: slfn (4d) or up (f); widest binary-layer input */
#define BX_ROW_MAX (BX_D_FF > 4 * BX_D_MODEL ? BX_D_FF : 4 * BX_D_MODEL)
#define BX_BINLIN_IN_MAX (BX_D_FF > BX_D_MODEL ? BX_D_FF : BX_D_MODEL)

static float    bx_x[BX_SEQ_MAX][BX_D_MODEL];        /* residual stream */
static float    bx_v[BX_SEQ_MAX][BX_D_MODEL];        /* attention values */
static uint32_t bx_qb[BX_SEQ_MAX][BX_N_HEADS][BX_HEAD_WORDS];  /* packed queries, per head */
static uint32_t bx_kb[BX_SEQ_MAX][BX_N_HEADS][BX_HEAD_WORDS];  /* packed keys, per head */
static float    bx_e[BX_SEQ_MAX];           /* attention weights of one query */
static float    bx_row[BX_ROW_GROUP][BX_ROW_MAX];            /* per-token scratch rows, one group of tokens */
static float    bx_row2[BX_ROW_GROUP][BX_D_MODEL];              /* layer-norm outputs */
static float    bx_att[BX_ROW_GROUP][BX_D_MODEL];               /* x_att, then the SLFN output y */
static uint32_t bx_ub[BX_WORDS(BX_BINLIN_IN_MAX)];     /* packed input of a binary layer */

#define BX_IDS_MAX BX_LINE_MAX              /* tokenizer ids of one line, at most */
static int32_t  bx_all_ids[BX_IDS_MAX];     /* every tokenizer id of the line */
#if BX_HAS_WIDE
extern const bx_wide_w bx_wide;
static float    bx_wide_logits[BX_N_CLASSES];
#endif

static int32_t  bx_policy = BX_DEFAULT_POLICY;
/* One spare entry: with a single exit, policy_exits() never reads bx_thr[k] for
 * k >= 1, but the compiler cannot see that and warns (-Warray-bounds). */
static float    bx_thr[BX_N_EXITS + 1] = BX_DEFAULT_THRESHOLDS;
static int      bx_n_thr = BX_DEFAULT_N_THRESHOLDS;
static int32_t  bx_prev_cls, bx_streak;     /* class of the previous exit; exits agreeing in a row */
static float    bx_h_prev;                  /* entropy of the previous exit (BX_H_PRIOR first) */

void bx_embed(const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        const uint32_t *te = bx_tok_bits + (size_t)ids[i] * BX_WORDS(BX_D_MODEL);
        const uint32_t *pe = bx_pos_bits + (size_t)i * BX_WORDS(BX_D_MODEL);
        for (int k = 0; k < BX_D_MODEL; k++) {
            float t = ((te[k >> 5] >> (k & 31)) & 1u) ? -bx_tok_scale[k] : bx_tok_scale[k];
            float p = ((pe[k >> 5] >> (k & 31)) & 1u) ? -bx_pos_scale[k] : bx_pos_scale[k];
            bx_x[i][k] = t + p;
        }
    }
}

/* Sign-pack and binary linear: y (n_out,) = BinLin(sign(u)), u (n_in,). */
static void sign_binlinear(float *y, const float *u, const bx_binlin_w *w, int n_in, int n_out)
{
    bx_pack_signs(bx_ub, u, n_in);
    bx_binlinear(y, bx_ub, w->bits, w->alpha, w->bias, n_in, n_out);
}

static void qkv_all(const bx_block_w *blk, int n)
{
    for (int i0 = 0; i0 < n; i0 += BX_ROW_GROUP) {
        const int g = n - i0 < BX_ROW_GROUP ? n - i0 : BX_ROW_GROUP;
        bx_layernorm_rows(bx_row2[0], bx_x[i0], blk->ln1.w, blk->ln1.b, g, BX_D_MODEL);
        for (int r = 0; r < g; r++) {
            const int i = i0 + r;
            sign_binlinear(bx_row[r], bx_row2[r], &blk->qkv, BX_D_MODEL, 3 * BX_D_MODEL);
            for (int hh = 0; hh < BX_N_HEADS; hh++) {
                bx_pack_signs(bx_qb[i][hh], bx_row[r] + hh * BX_D_HEAD, BX_D_HEAD);
                bx_pack_signs(bx_kb[i][hh], bx_row[r] + BX_D_MODEL + hh * BX_D_HEAD, BX_D_HEAD);
            }
            for (int k = 0; k < BX_D_MODEL; k++) bx_v[i][k] = bx_row[r][2 * BX_D_MODEL + k];
        }
    }
}

/* Token i: attention output and residual -> att = x_att (D,). */
static void attention_token(const bx_block_w *blk, float *att, int i, int n)
{
    for (int hh = 0; hh < BX_N_HEADS; hh++)
        bx_attend(bx_row[0] + hh * BX_D_HEAD, bx_e, bx_qb[i][hh], &bx_kb[0][hh][0], BX_N_HEADS * BX_HEAD_WORDS,
                  &bx_v[0][hh * BX_D_HEAD], BX_D_MODEL, n, BX_D_HEAD, blk->tau[hh]);
    sign_binlinear(att, bx_row[0], &blk->out, BX_D_MODEL, BX_D_MODEL);
    for (int k = 0; k < BX_D_MODEL; k++) att[k] = bx_x[i][k] + att[k];
}

/* Tokens i0..i0+g-1: SLFN, y = f1 * x + f2 * x_att + s * c, written over bx_att (see model.py). */
static void slfn_group(const bx_block_w *blk, int i0, int g)
{
    if (blk->slfn.bits == NULL) return;          /* ablation: y = x_att */
    bx_layernorm_rows(bx_row2[0], bx_att[0], blk->ln2.w, blk->ln2.b, g, BX_D_MODEL);
    for (int r = 0; r < g; r++) {
        float *row = bx_row[r], *att = bx_att[r];
        const float *x = bx_x[i0 + r];
        sign_binlinear(row, bx_row2[r], &blk->slfn, BX_D_MODEL, 4 * BX_D_MODEL);
        /* the three gates first, in one flat element-wise pass (SIMD lanes on the host;
         * each value is the same float either way), then the mix */
        bx_sigmoid_array(row, 3 * BX_D_MODEL);
        for (int k = 0; k < BX_D_MODEL; k++) {
            float f1 = row[k], f2 = row[BX_D_MODEL + k], s = row[2 * BX_D_MODEL + k];
            float keep = f1 * x[k] + f2 * att[k];
            att[k] = keep + s * row[3 * BX_D_MODEL + k];
        }
    }
}

/* Tokens i0..i0+g-1: x[i] = y + down(sign(up(sign(LN3(y))))), y = bx_att. */
static void ffn_group(const bx_block_w *blk, int i0, int g)
{
    bx_layernorm_rows(bx_row2[0], bx_att[0], blk->ln3.w, blk->ln3.b, g, BX_D_MODEL);
    for (int r = 0; r < g; r++) {
        float *row = bx_row[r];
        sign_binlinear(row, bx_row2[r], &blk->up, BX_D_MODEL, BX_D_FF);
        sign_binlinear(row, row, &blk->down, BX_D_FF, BX_D_MODEL);
        for (int k = 0; k < BX_D_MODEL; k++) bx_x[i0 + r][k] = bx_att[r][k] + row[k];
    }
}

void bx_block_forward(const bx_block_w *blk, int n)
{
    qkv_all(blk, n);
    for (int i0 = 0; i0 < n; i0 += BX_ROW_GROUP) {
        const int g = n - i0 < BX_ROW_GROUP ? n - i0 : BX_ROW_GROUP;
        for (int r = 0; r < g; r++) attention_token(blk, bx_att[r], i0 + r, n);
        slfn_group(blk, i0, g);
        ffn_group(blk, i0, g);
    }
}

/* Exit column k (exit BX_FIRST_EXIT + k), its class, confidence and entropy: does the
 * policy leave here? (beexgen/core/policy.py decide is the same rule.) */
static int policy_exits(int k, int32_t cls, float conf, float h)
{
    /* PATIENCE: how many exits in a row have agreed with the one before (0 at the first) */
    bx_streak = (k > 0 && cls == bx_prev_cls) ? bx_streak + 1 : 0;
    bx_prev_cls = cls;
    if (k == BX_N_EXITS - 1) return 1;
    switch (bx_policy) {
    case BX_POLICY_ENTROPY:      /* (H_prev - H) / H_prev < tau, without the division */
        return (bx_h_prev - h) < bx_thr[0] * bx_h_prev;
    case BX_POLICY_CONFIDENCE:
    case BX_POLICY_BUDGET:
        return conf >= bx_thr[k];
    case BX_POLICY_PATIENCE:     /* PABEE: the class has not changed for thr[0] exits */
        return (float)bx_streak >= bx_thr[0];
    default:
        return 0;
    }
}

/* out->logits hold exit column k's logits: statistics, policy, and the result if it exits. */
static int exit_here(int k, bx_result *out)
{
    int32_t cls;
    float conf, h;
    bx_exit_stats(out->logits, BX_N_CLASSES, &cls, &conf, &h);
    int take = policy_exits(k, cls, conf, h);
    bx_h_prev = h;
    if (take) {
        out->cls = cls;
        out->confidence = conf;
        out->exit_depth = BX_FIRST_EXIT + k;
    }
    return take;
}

int bx_exit_after(const bx_exit_w *ex, int b, int n, bx_result *out)
{
    static float scratch[2 * BX_D_MODEL];
    bx_exit_head(out->logits, scratch, &bx_x[0][0], n, BX_D_MODEL, ex->ln.w, ex->ln.b, ex->w, ex->b, BX_N_CLASSES);
#if BX_HAS_WIDE
    for (int c = 0; c < BX_N_CLASSES; c++) out->logits[c] = out->logits[c] + bx_wide_logits[c];
#endif
    return exit_here(b + BX_HAS_WIDE, out);
}

#if BX_HAS_WIDE
/* logits (C,) of the wide exit over the whole line: its words (the pre-tokenizer's,
 * bx_next_word) and its k ids, fed to bx_wide.c as a streaming tokenizer would. */
static void wide_logits(float *logits, const uint8_t *text, size_t len, const int32_t *ids, int k)
{
    bx_wide_state st;
    size_t pos = 0, n;
    bx_wide_begin(&st);
    for (int i = 0; i < k; i++) bx_wide_id(&st, ids[i]);
    while ((n = bx_next_word(text, len, &pos)) > 0) {
        for (size_t j = 0; j < n; j++) bx_wide_word_byte(&st, text[pos + j]);
        bx_wide_word_end(&st);
        pos += n;
    }
    bx_wide_end(&st, logits);
}

int bx_exit_wide(bx_result *out)
{
    for (int c = 0; c < BX_N_CLASSES; c++) out->logits[c] = bx_wide_logits[c];
    return exit_here(0, out);
}
#endif

/* ids (BX_SEQ_MAX,) <- [CLS] + all[0..k), or [CLS] + head + tail of it. */
static int compose_ids(int32_t *ids, const int32_t *all, int k)
{
    const int keep = BX_SEQ_MAX - 1, head = keep / 2;
    ids[0] = BX_CLS_ID;
    if (k <= keep) {
        for (int i = 0; i < k; i++) ids[1 + i] = all[i];
        return k + 1;
    }
    for (int i = 0; i < head; i++) ids[1 + i] = all[i];
    for (int i = 0; i < keep - head; i++) ids[1 + head + i] = all[k - (keep - head) + i];
    return keep + 1;
}

int bx_model_ids(const uint8_t *text, size_t len, int32_t *ids)
{
    int k = bx_tokenize(text, len, bx_all_ids, BX_IDS_MAX);
    return k < 0 ? k : compose_ids(ids, bx_all_ids, k);
}

int bx_classify(const uint8_t *text, size_t len, bx_result *out)
{
    static int32_t ids[BX_SEQ_MAX];
    if (len > BX_LINE_MAX) return -BX_STATUS_LINE_TOO_LONG;   /* more ids than bx_all_ids holds */
    int k = bx_tokenize(text, len, bx_all_ids, BX_IDS_MAX);
    if (k < 0) return k;
    if (k == 0) return -BX_STATUS_EMPTY;          /* no token besides [CLS]: nothing to classify */
    int n = compose_ids(ids, bx_all_ids, k);
    out->n_tokens = n;
    out->n_ids = k;
#if BX_HAS_WIDE
    wide_logits(bx_wide_logits, text, len, bx_all_ids, k);
#endif
    bx_h_prev = BX_H_PRIOR;
    int e = bx_forward(ids, n, out);
    out->bmacs = bx_cost_bmacs[n - 1][e - BX_FIRST_EXIT];
    out->flops = bx_cost_flops[n - 1][e - BX_FIRST_EXIT] + BX_WIDE_FLOPS_PER_ID * (uint32_t)k;
    return 0;
}

int bx_engine_set_policy(int32_t policy, const float *thr, int n_thr)
{
    if (policy < 0 || policy >= BX_N_POLICIES || n_thr != bx_policy_n_thresholds[policy])
        return -BX_STATUS_BAD_ARGUMENT;
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
