/* On-device WordPiece tokenizer: the exact ids of HF `tokenizers` for the pipeline
 * built by beexgen's train/tokenizer.py (docs/INTERNALS.md, "Tokenizer").
 *
 * No heap, no tables beyond the generated vocabulary (bx_vocab.h), a few dozen
 * bytes of stack. The input is never copied or modified. */
#ifndef BX_TOKENIZER_H
#define BX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "bx_status.h"

/* Tokenize UTF-8 text s[0..n) (no terminator needed). Writes at most max_ids ids.
 * Returns the number of ids written (>= 0), or -BX_STATUS_BAD_UTF8 if s[0..n) is not
 * valid UTF-8 (checked over the whole input, even past the last id written).
 * Produces exactly tokenizers' encode(text, add_special_tokens=False).ids[:max_ids]
 * (no [CLS]: the caller adds it). ids may be NULL when max_ids <= 0. */
int bx_tokenize(const uint8_t *s, size_t n, int32_t *ids, int max_ids);

/* The pre-tokenizer's next word of s[0..n) from *pos on: skips separators, sets *pos
 * to the word's first byte and returns its length in bytes (0: no word left). A word
 * is one ASCII punctuation byte or a run of bytes that are neither separators nor
 * punctuation (bytes as in the text: A-Z not yet folded). The wide exit hashes these
 * (bx_wide.h); the caller advances *pos by the length to get the next one. */
size_t bx_next_word(const uint8_t *s, size_t n, size_t *pos);

/* 1 if s[0..n) is valid UTF-8 exactly as Python's strict bytes.decode("utf-8")
 * accepts it, 0 otherwise. */
int bx_utf8_valid(const uint8_t *s, size_t n);

#endif /* BX_TOKENIZER_H */
