/* On-device WordPiece tokenizer: the exact ids of HF `tokenizers` for the pipeline
 * built by beexgen's train/tokenizer.py (docs/INTERNALS.md, "Tokenizer").
 *
 * No heap, no tables beyond the generated vocabulary (bx_vocab.h); the stream state
 * below is the only RAM, whatever the length of the text. */
#ifndef BX_TOKENIZER_H
#define BX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "bx_internal.h"
#include "bx_status.h"
#include "bx_vocab.h"

/* Streaming tokenizer: the text arrives one byte at a time and is never stored. The
 * state is bounded: the word in progress (at most BX_VOCAB_MAX_WORD_CHARS characters of
 * at most 4 bytes; a longer word is [UNK] whatever it holds, so only its length is
 * counted on) and the UTF-8 decoder's. The ids come out as each word ends; the
 * whole text's ids are exactly tokenizers' encode(text).ids, provided bx_tok_end
 * does not fail (a text that is not valid UTF-8 is refused whole, at its end: the ids sent
 * before are then to be discarded). */
#define BX_TOK_WORD_BYTES (4 * BX_VOCAB_MAX_WORD_CHARS)
/* What a byte does to the pre-tokenizer's words (bx_tok_stream.kind): a separator ends
 * the word in progress (ended = 1 if there was one); a punctuation byte ends it and is a
 * word of its own (ended = 1 or 2, its own last); any other byte extends the word. The
 * wide exit hashes the words from this (bx_wide_tok_byte), without keeping them. */
enum { BX_TOK_NONE = 0, BX_TOK_SEP = 1, BX_TOK_PUNCT = 2, BX_TOK_WORD = 3 };
typedef struct {
    uint8_t  word[BX_TOK_WORD_BYTES];   /* the word in progress, normalised */
    uint16_t len;                        /* bytes in word */
    uint16_t chars;                      /* its code points, counted to BX_VOCAB_MAX_WORD_CHARS + 1 */
    uint8_t  need, lo, hi;               /* UTF-8: continuation bytes expected, next one in [lo, hi] */
    uint8_t  bad;                        /* not valid UTF-8 */
    uint8_t  ended;                      /* pre-tokenizer words the last call completed (0..2) */
    uint8_t  kind;                       /* what the last byte was: BX_TOK_SEP, _PUNCT, _WORD (NONE: refused) */
    int32_t  n_out;                      /* ids in out */
    int32_t  out[BX_VOCAB_MAX_WORD_CHARS + 1];   /* the ids the last call completed */
} bx_tok_stream;

BX_INTERNAL void bx_tok_begin(bx_tok_stream *t);
/* One byte of the text. Returns the number of ids it completed (those of the word it
 * ended, and of a punctuation character), now in t->out[0..n): 0 to
 * BX_VOCAB_MAX_WORD_CHARS + 1. */
BX_INTERNAL int  bx_tok_byte(bx_tok_stream *t, uint8_t b);
/* End of the text: the last word's ids in t->out, their count; or -BX_STATUS_BAD_UTF8. */
BX_INTERNAL int  bx_tok_end(bx_tok_stream *t);

/* Tokenize UTF-8 text s[0..n) (no terminator needed). Writes at most max_ids ids.
 * Returns the number of ids written (>= 0), or -BX_STATUS_BAD_UTF8 if s[0..n) is not
 * valid UTF-8 (checked over the whole input, even past the last id written).
 * Produces exactly tokenizers' encode(text, add_special_tokens=False).ids[:max_ids]
 * (no [CLS]: the caller adds it). ids may be NULL when max_ids <= 0. */
BX_INTERNAL int bx_tokenize(const uint8_t *s, size_t n, int32_t *ids, int max_ids);

/* The pre-tokenizer's next word of s[0..n) from *pos on: skips separators, sets *pos
 * to the word's first byte and returns its length in bytes (0: no word left). A word
 * is one ASCII punctuation byte or a run of bytes that are neither separators nor
 * punctuation (bytes as in the text: A-Z not yet folded): the words the stream's
 * `kind` describes byte by byte. The caller advances *pos by the length to get the next
 * one (tests/c/wide_harness.c lists a text's words with it). */
BX_INTERNAL size_t bx_next_word(const uint8_t *s, size_t n, size_t *pos);

/* 1 if s[0..n) is valid UTF-8 exactly as Python's strict bytes.decode("utf-8")
 * accepts it, 0 otherwise. */
BX_INTERNAL int bx_utf8_valid(const uint8_t *s, size_t n);

#endif /* BX_TOKENIZER_H */
