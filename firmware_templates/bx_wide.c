/* bx_wide.c: the wide exit 0 (see bx_wide.h; beexgen/core/wide.py is the reference). */
#include "bx_wide.h"

#include "bx_engine.h"      /* bx_weights.h: bx_wide, the tables */

#if BX_HAS_WIDE
/* S (COLS,) += row r of table t (rows of BX_WIDE_COLS int8). */
static void add_row(int64_t *s, const int8_t *t, uint32_t r)
{
    const int8_t *row = t + (uint32_t)r * BX_WIDE_COLS;
    for (int c = 0; c < BX_WIDE_COLS; c++) s[c] += row[c];
}

#if BX_WIDE_WORD_BUCKETS || BX_WIDE_PAIR_BUCKETS
/* Lemire's multiply-shift: a uniform 32-bit x -> 0 .. k - 1, for any k (not only 2^n). */
static uint32_t reduce(uint32_t x, uint32_t k)
{
    return (uint32_t)(((uint64_t)x * k) >> 32);
}
#endif

uint32_t bx_wide_word_bucket(uint32_t h)
{
#if BX_WIDE_WORD_BUCKETS
    return reduce(bx_wide_mix(h), BX_WIDE_WORD_BUCKETS);
#else
    (void)h;
    return 0;
#endif
}

/* A pair of words: mix(h1 * HASH_A + h2), uint32 arithmetic (wraps mod 2^32 as numpy's). */
uint32_t bx_wide_pair_bucket(uint32_t h1, uint32_t h2)
{
#if BX_WIDE_PAIR_BUCKETS
    return reduce(bx_wide_mix(h1 * BX_WIDE_HASH_A + h2), BX_WIDE_PAIR_BUCKETS);
#else
    (void)h1; (void)h2;
    return 0;
#endif
}

/* A pair of ids: ((a * HASH_A + b) * HASH_B) >> shift (multiplicative hashing). */
uint32_t bx_wide_id_bucket(int32_t a, int32_t b)
{
#if BX_WIDE_BUCKETS
    return (((uint32_t)a * BX_WIDE_HASH_A + (uint32_t)b) * BX_WIDE_HASH_B) >> BX_WIDE_SHIFT;
#else
    (void)a; (void)b;
    return 0;
#endif
}

void bx_wide_begin(bx_wide_state *s)
{
    for (int c = 0; c < BX_WIDE_COLS; c++) s->s[c] = 0;
    s->h = BX_WIDE_FNV_OFFSET;
    s->prev_h = BX_WIDE_FNV_OFFSET;     /* the line's start: the empty word's hash */
    s->prev_id = 0;
    s->n_words = 0;
    s->n_ids = 0;
}

void bx_wide_word_end(bx_wide_state *s)
{
#if BX_WIDE_WORD_BUCKETS
    add_row(s->s, bx_wide.word, bx_wide_word_bucket(s->h));
#endif
#if BX_WIDE_PAIR_BUCKETS
    add_row(s->s, bx_wide.pair, bx_wide_pair_bucket(s->prev_h, s->h));    /* (start, w_0) first */
#endif
    s->prev_h = s->h;
    s->h = BX_WIDE_FNV_OFFSET;
    s->n_words++;
}

void bx_wide_id(bx_wide_state *s, int32_t id)
{
#if BX_WIDE_IDS
    add_row(s->s, bx_wide.uni, (uint32_t)id);
#endif
#if BX_WIDE_BUCKETS
    if (s->n_ids > 0) add_row(s->s, bx_wide.big, bx_wide_id_bucket(s->prev_id, id));
#endif
    s->prev_id = id;
    s->n_ids++;
}

/* The streamed text's words from the tokenizer's verdict on each byte (bx_tokenizer.h):
 * a separator ends the word in progress; a punctuation byte ends it (ended == 2: there
 * was one) and is a word of one byte; any other byte extends the word. */
void bx_wide_tok_byte(bx_wide_state *s, const bx_tok_stream *t, uint8_t b)
{
    switch (t->kind) {
    case BX_TOK_SEP:
        if (t->ended) bx_wide_word_end(s);
        break;
    case BX_TOK_PUNCT:
        if (t->ended == 2) bx_wide_word_end(s);
        bx_wide_word_byte(s, b);
        bx_wide_word_end(s);
        break;
    case BX_TOK_WORD:
        bx_wide_word_byte(s, b);
        break;
    default:                    /* refused (not UTF-8): the text is answered with an error */
        break;
    }
}

void bx_wide_tok_end(bx_wide_state *s, const bx_tok_stream *t)
{
    if (t->ended) bx_wide_word_end(s);
}

/* logits (C,): z_c = scale_c * (float)S_c + bias_c; two classes have one column and
 * logits (0, z). */
void bx_wide_sums(const bx_wide_state *s, int64_t *sum)
{
    for (int c = 0; c < BX_WIDE_COLS; c++) sum[c] = s->s[c];
#if BX_WIDE_PAIR_BUCKETS
    if (s->n_words > 0) add_row(sum, bx_wide.pair, bx_wide_pair_bucket(s->prev_h, BX_WIDE_FNV_OFFSET));  /* (w_last, end) */
#endif
}

void bx_wide_end(const bx_wide_state *s, float *logits)
{
    int64_t sum[BX_WIDE_COLS];
    bx_wide_sums(s, sum);
#if BX_WIDE_COLS == 1 && BX_N_CLASSES == 2
    logits[0] = 0.0f;
    logits[1] = bx_wide.scale[0] * (float)sum[0] + bx_wide.bias[0];
#else
    for (int c = 0; c < BX_N_CLASSES; c++) logits[c] = bx_wide.scale[c] * (float)sum[c] + bx_wide.bias[c];
#endif
}
#else
typedef int bx_wide_none;     /* ISO C: a translation unit is not empty */
#endif /* BX_HAS_WIDE */
