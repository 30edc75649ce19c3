/* bx_wide.h: the wide exit 0, fed incrementally (beexgen/core/wide.py is the reference).
 *
 * The exit is a linear head over integer sums of int8 table rows:
 *
 *   S_c = sum_i U[t_i][c] + sum_i G[bucket(t_i, t_i+1)][c]      WordPiece ids t (and id bigrams)
 *       + sum_j W[word_j][c] + sum_j P[pair(word_j, word_j+1)][c]  the pre-tokenizer's words
 *   logit_c = scale_c * (float)S_c + bias_c                     (float32, one multiply, one add)
 *
 * with c over BX_WIDE_COLS columns: one for two classes (logits (0, z): the softmax
 * only sees the difference), else one per class. S_c is summed in int64, exact for a
 * text of any length (|S_c| <= 127 x its features); (float)S_c rounds to nearest as
 * numpy's int64 -> float32 does (exact while |S_c| < 2^24), so C == PyTorch.
 *
 * The state is a few words; nothing of the text is kept. A caller that streams text
 * feeds each word's bytes as they arrive, ends the word, and feeds each WordPiece id:
 *
 *   bx_wide_begin(&s);
 *   for each word w of the line (bx_next_word):   for each byte b: bx_wide_word_byte(&s, b);
 *                                                  bx_wide_word_end(&s);
 *   for each WordPiece id t of the line, in order: bx_wide_id(&s, t);
 *   bx_wide_end(&s, logits);
 *
 * The device's input stream (bx_engine.c) does the word part byte by byte from the
 * streaming tokenizer's verdict on each byte: bx_wide_tok_byte after each bx_tok_byte,
 * bx_wide_tok_end after bx_tok_end.
 *
 * Words and ids are two independent streams: they may be interleaved in any way, each
 * stream only needs its own order. The word hash is FNV-1a over the word's bytes with
 * A-Z folded to a-z (raw or normalised bytes give the same hash); a bucket is
 * (bx_wide_mix(h) * K) >> 32 (64-bit product), any table size K. */
#ifndef BX_WIDE_H
#define BX_WIDE_H

#include <stdint.h>

#include "bx_internal.h"    /* BX_INTERNAL */
#include "bx_model.h"       /* BX_WIDE_* sizes and constants, BX_N_CLASSES */
#include "bx_tokenizer.h"   /* bx_tok_stream: the word stream of the device's input */

/* The tables: uni (BX_VOCAB, COLS), big (BX_WIDE_BUCKETS, COLS), word
 * (BX_WIDE_WORD_BUCKETS, COLS), pair (BX_WIDE_PAIR_BUCKETS, COLS) int8, each NULL when
 * the model has none; scale, bias (COLS,) float. */
typedef struct {
    const int8_t *uni, *big, *word, *pair;
    const float *scale, *bias;
} bx_wide_w;

typedef struct {
    int64_t  s[BX_WIDE_COLS];   /* the integer sums S (int64: a text of any length) */
    uint32_t h;                 /* FNV-1a of the word being read */
    uint32_t prev_h;            /* hash of the previous word (n_words > 0) */
    int32_t  prev_id;           /* the previous id (n_ids > 0) */
    int32_t  n_words, n_ids;
} bx_wide_state;

/* murmur3 fmix32: spreads every input bit over the high bits the buckets take. */
static inline uint32_t bx_wide_mix(uint32_t h)
{
    h ^= h >> 16;
    h *= BX_WIDE_MIX_1;
    h ^= h >> 13;
    h *= BX_WIDE_MIX_2;
    h ^= h >> 16;
    return h;
}

/* One byte of the current word: FNV-1a step, A-Z folded to a-z (the normaliser's rule). */
static inline void bx_wide_word_byte(bx_wide_state *s, uint8_t b)
{
    if (b >= 'A' && b <= 'Z') b = (uint8_t)(b + ('a' - 'A'));
    s->h = (s->h ^ b) * BX_WIDE_FNV_PRIME;
}

BX_INTERNAL void bx_wide_begin(bx_wide_state *s);
BX_INTERNAL void bx_wide_word_end(bx_wide_state *s);           /* the current word is complete */
BX_INTERNAL void bx_wide_id(bx_wide_state *s, int32_t id);     /* the line's next WordPiece id */
/* The words of a streamed text: byte b went through bx_tok_byte(t, b) just before (its
 * t->kind and t->ended say what it did to the words), or the text ended (bx_tok_end). */
BX_INTERNAL void bx_wide_tok_byte(bx_wide_state *s, const bx_tok_stream *t, uint8_t b);
BX_INTERNAL void bx_wide_tok_end(bx_wide_state *s, const bx_tok_stream *t);
/* S (BX_WIDE_COLS,) of the line so far, the (last word, end) pair included (added to a
 * copy: the state stays as it was). */
BX_INTERNAL void bx_wide_sums(const bx_wide_state *s, int64_t *sum);
/* logits (BX_N_CLASSES,) from bx_wide_sums. */
BX_INTERNAL void bx_wide_end(const bx_wide_state *s, float *logits);

/* The buckets (exposed for the tests): a word of hash h, a pair of words (h1, h2), a
 * pair of ids (a, b); 0 when the model has no such table. */
BX_INTERNAL uint32_t bx_wide_word_bucket(uint32_t h);
BX_INTERNAL uint32_t bx_wide_pair_bucket(uint32_t h1, uint32_t h2);
BX_INTERNAL uint32_t bx_wide_id_bucket(int32_t a, int32_t b);

#endif /* BX_WIDE_H */
