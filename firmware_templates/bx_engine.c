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
 * Input: a stream, in RAM that does not depend on the text's length (docs/INTERNALS.md,
 * "Streaming input"). bx_stream_begin, then bx_stream_byte for every byte of the text as
 * it arrives, then bx_stream_end (or bx_stream_ids). The tokenizer (bx_tok_stream)
 * hands each id to stream_id, which (1) adds it to the wide exit's integer sums
 * (bx_wide.c: the ids, and the words byte by byte from the tokenizer's verdict on each
 * byte; int64, exact for any length) and (2) keeps the ids the blocks will see: the first
 * head = (BX_SEQ_MAX - 1) / 2 in place and the rest in a ring of BX_SEQ_MAX - 1 - head
 * slots holding the latest ones. At the end that is [CLS] + all ids, or [CLS] + head +
 * tail past BX_SEQ_MAX (wide.head_tail), exactly as train/deploy.py on the whole text.
 * The text itself is never kept. bx_classify(text, len) is that stream over a buffer.
 *
 * Token groups. The per-token stages run on BX_ROW_GROUP tokens at a time, stage by
 * stage, so that a layer norm gets that many independent rows (bx_layernorm_rows runs them side by side
 * in SIMD lanes on an x86 host; its serial sums make one row latency-bound). Every
 * token's arithmetic is the same either way. BX_ROW_GROUP is 1 on the Cortex-M4 (no SIMD lanes
 * to fill, and the per-token rows stay single) and 8 on an x86 host with AVX2.
 */
#include "bx_engine.h"

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
static int32_t  bx_cnt[BX_SEQ_MAX];         /* its key counts (bx_attend) */
static float    bx_etab[BX_N_HEADS][BX_D_HEAD + 1];   /* softmax weight table per head (bx_exp_table) */
static float    bx_row[BX_ROW_GROUP][BX_ROW_MAX];            /* per-token scratch rows, one group of tokens */
static float    bx_row2[BX_ROW_GROUP][BX_D_MODEL];              /* layer-norm outputs */
static float    bx_att[BX_ROW_GROUP][BX_D_MODEL];               /* x_att, then the SLFN output y */
static uint32_t bx_ub[BX_WORDS(BX_BINLIN_IN_MAX)];     /* packed input of a binary layer */

#if BX_HAS_WIDE
static float    bx_wide_logits[BX_N_CLASSES];   /* exit 0's logits of the text (bx_stream_end) */
#endif

#define BX_KEEP (BX_SEQ_MAX - 1)            /* tokenizer ids the blocks see at most */
#define BX_HEAD (BX_KEEP / 2)               /* ... from the text's start; the rest from its end */
/* The input stream: the only state of a text in progress (docs/INTERNALS.md). */
static struct {
    bx_tok_stream tok;                      /* the word in progress, UTF-8 state */
    uint32_t k;                             /* ids so far (saturates at UINT32_MAX) */
    int32_t  keep[BX_KEEP];                 /* ids 0..BX_HEAD-1, then a ring of the latest */
#if BX_HAS_WIDE
    bx_wide_state wide;                     /* exit 0's sums */
#endif
} bx_in;

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
        bx_embed_row(bx_x[i], te, pe, bx_tok_scale, bx_pos_scale, BX_D_MODEL);
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
            const bx_binlin_w *w = &blk->qkv;
            /* the queries and keys into the row, the values straight into bx_v[i] */
            bx_pack_signs(bx_ub, bx_row2[r], BX_D_MODEL);
#if BX_BINLIN_SPLITS(2 * BX_D_MODEL)
            bx_binlinear(bx_row[r], bx_ub, w->bits, w->alpha, w->bias, BX_D_MODEL, 2 * BX_D_MODEL);
            bx_binlinear(bx_v[i], bx_ub, BX_BINLIN_AT(w->bits, 2 * BX_D_MODEL, BX_D_MODEL),
                         w->alpha + 2 * BX_D_MODEL, w->bias + 2 * BX_D_MODEL, BX_D_MODEL, BX_D_MODEL);
#else       /* the values start inside a group of 32 rows: all three into the row (BX_ROW_MAX >= 3d) */
            bx_binlinear(bx_row[r], bx_ub, w->bits, w->alpha, w->bias, BX_D_MODEL, 3 * BX_D_MODEL);
            for (int k = 0; k < BX_D_MODEL; k++) bx_v[i][k] = bx_row[r][2 * BX_D_MODEL + k];
#endif
#if BX_D_HEAD % 32 == 0
            /* whole words per head: the heads' packed words are those of the whole row */
            bx_pack_signs(&bx_qb[i][0][0], bx_row[r], BX_D_MODEL);
            bx_pack_signs(&bx_kb[i][0][0], bx_row[r] + BX_D_MODEL, BX_D_MODEL);
#else
            for (int hh = 0; hh < BX_N_HEADS; hh++) {
                bx_pack_signs(bx_qb[i][hh], bx_row[r] + hh * BX_D_HEAD, BX_D_HEAD);
                bx_pack_signs(bx_kb[i][hh], bx_row[r] + BX_D_MODEL + hh * BX_D_HEAD, BX_D_HEAD);
            }
#endif
        }
    }
}

/* Token i: attention output and residual -> att = x_att (D,). */
static void attention_token(const bx_block_w *blk, float *att, int i, int n)
{
    for (int hh = 0; hh < BX_N_HEADS; hh++)
        bx_attend(bx_row[0] + hh * BX_D_HEAD, bx_e, bx_cnt, bx_qb[i][hh], &bx_kb[0][hh][0], BX_N_HEADS * BX_HEAD_WORDS,
                  &bx_v[0][hh * BX_D_HEAD], BX_D_MODEL, n, BX_D_HEAD, blk->tau[hh], bx_etab[hh]);
    sign_binlinear(att, bx_row[0], &blk->out, BX_D_MODEL, BX_D_MODEL);
    bx_vadd(att, bx_x[i], att, BX_D_MODEL);
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
        bx_slfn_mix(att, row, x, BX_D_MODEL);
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
        bx_vadd(bx_x[i0 + r], bx_att[r], row, BX_D_MODEL);
    }
}

void bx_block_forward(const bx_block_w *blk, int n)
{
    qkv_all(blk, n);
    for (int hh = 0; hh < BX_N_HEADS; hh++) bx_exp_table(bx_etab[hh], blk->tau[hh], BX_D_HEAD);
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
    /* the head's scratch (2d floats) is the per-token rows' RAM: no token is in flight
     * between blocks, and BX_ROW_MAX >= 4d */
    _Static_assert(BX_ROW_MAX >= 2 * BX_D_MODEL, "bx_row holds the exit head's scratch");
    bx_exit_head(out->logits, &bx_row[0][0], &bx_x[0][0], n, BX_D_MODEL, ex->ln.w, ex->ln.b, ex->w, ex->b,
                 BX_N_CLASSES);
#if BX_HAS_WIDE
    for (int c = 0; c < BX_N_CLASSES; c++) out->logits[c] = out->logits[c] + bx_wide_logits[c];
#endif
    return exit_here(b + BX_HAS_WIDE, out);
}

#if BX_HAS_WIDE
int bx_exit_wide(bx_result *out)
{
    for (int c = 0; c < BX_N_CLASSES; c++) out->logits[c] = bx_wide_logits[c];
    return exit_here(0, out);
}
#endif

/* ---- the input stream ---------------------------------------------------------- */

/* One tokenizer id: exit 0's sums, and the ids the blocks see (head in place, tail ring). */
static void stream_id(int32_t id)
{
#if BX_HAS_WIDE
    bx_wide_id(&bx_in.wide, id);
#endif
    uint32_t i = bx_in.k;
    if (i < BX_HEAD) bx_in.keep[i] = id;
    else bx_in.keep[BX_HEAD + (i - BX_HEAD) % (BX_KEEP - BX_HEAD)] = id;
    if (bx_in.k != UINT32_MAX) bx_in.k++;
}

void bx_stream_begin(void)
{
    bx_tok_begin(&bx_in.tok);
    bx_in.k = 0;
#if BX_HAS_WIDE
    bx_wide_begin(&bx_in.wide);
#endif
}

void bx_stream_byte(uint8_t b)
{
    int n = bx_tok_byte(&bx_in.tok, b);
#if BX_HAS_WIDE
    bx_wide_tok_byte(&bx_in.wide, &bx_in.tok, b);   /* the words' hashes (the ids: stream_id) */
#endif
    for (int i = 0; i < n; i++) stream_id(bx_in.tok.out[i]);
}

void bx_stream_bytes(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) bx_stream_byte(s[i]);
}

/* ids (BX_SEQ_MAX,) <- [CLS] + the kept ids in text order: all of them, or the head and
 * the tail ring unrolled from its oldest slot. Returns the count, or -BX_STATUS_BAD_UTF8. */
int bx_stream_ids(int32_t *ids)
{
    int last = bx_tok_end(&bx_in.tok);      /* the last word's ids */
    if (last < 0) return -BX_STATUS_BAD_UTF8;
#if BX_HAS_WIDE
    bx_wide_tok_end(&bx_in.wide, &bx_in.tok);
#endif
    for (int i = 0; i < last; i++) stream_id(bx_in.tok.out[i]);
    const uint32_t k = bx_in.k, tail = BX_KEEP - BX_HEAD;
    ids[0] = BX_CLS_ID;
    if (k <= BX_KEEP) {
        for (uint32_t i = 0; i < k; i++) ids[1 + i] = bx_in.keep[i];
        return (int)k + 1;
    }
    for (uint32_t i = 0; i < BX_HEAD; i++) ids[1 + i] = bx_in.keep[i];
    uint32_t oldest = (k - BX_HEAD) % tail;             /* slot of id k - tail */
    for (uint32_t i = 0; i < tail; i++) ids[1 + BX_HEAD + i] = bx_in.keep[BX_HEAD + (oldest + i) % tail];
    return BX_KEEP + 1;
}

int bx_stream_end(bx_result *out)
{
    static int32_t ids[BX_SEQ_MAX];
    int n = bx_stream_ids(ids);
    if (n < 0) return n;
    if (n == 1) return -BX_STATUS_EMPTY;          /* no token besides [CLS]: nothing to classify */
    uint32_t k = bx_in.k;
    out->n_tokens = n;
    out->n_ids = k > INT32_MAX ? INT32_MAX : (int32_t)k;
#if BX_HAS_WIDE
    bx_wide_end(&bx_in.wide, bx_wide_logits);
#endif
    bx_h_prev = BX_H_PRIOR;
    int e = bx_forward(ids, n, out);
    out->bmacs = bx_cost_bmacs[n - 1][e - BX_FIRST_EXIT];
    out->flops = bx_cost_flops[n - 1][e - BX_FIRST_EXIT] + BX_WIDE_FLOPS_PER_ID * k;
    return 0;
}

int bx_model_ids(const uint8_t *text, size_t len, int32_t *ids)
{
    bx_stream_begin();
    bx_stream_bytes(text, len);
    return bx_stream_ids(ids);
}

int bx_classify(const uint8_t *text, size_t len, bx_result *out)
{
    bx_stream_begin();
    bx_stream_bytes(text, len);
    return bx_stream_end(out);
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
    return -BX_STATUS_BAD_ARGUMENT;
}
