/* fuzz_tokenizer.c: libFuzzer target for bx_tokenize / bx_utf8_valid (bx_tokenizer.c).
 *
 * Built by tests/fuzz/build_fuzz.py against the vocabulary rendered from a tiny artifact
 * (bx_vocab_data.c), with -fsanitize=fuzzer,address,undefined. For every input the
 * tokenizer is run with several max_ids, each into a heap buffer of exactly max_ids
 * ids (ASan catches a write past it; max_ids 0 passes NULL, as the API allows), and:
 *
 *   1. validity: bx_tokenize rejects (-BX_STATUS_BAD_UTF8) iff the input is not
 *      well-formed UTF-8, judged by an independent decoder below (code points,
 *      overlong / surrogate / > U+10FFFF checks, not the C's byte-range table); the
 *      same verdict from bx_utf8_valid; no other negative value, ever;
 *   2. 0 <= count <= max_ids, and ids in [0, BX_VOCAB_SIZE), never [PAD] 0 or [CLS] 2
 *      (special tokens cannot come out of WordPiece: '[' is punctuation);
 *   3. prefix: the ids for any max_ids are the first min(max_ids, total) ids of an
 *      unbounded run (the result does not depend on max_ids beyond truncation);
 *   4. differential: the unbounded run equals a naive reference WordPiece written here
 *      from docs/INTERNALS.md (normalise into a copy, split, greedy longest match by
 *      linear search of the vocabulary tables, 100-code-point limit), so the binary
 *      search, the max_len shortcut and on-the-fly normalisation are all cross-checked;
 *   5. the input is never modified (the C works in place).
 * A violation prints the input and aborts (libFuzzer then writes crash-<sha1>). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bx_status.h"
#include "bx_tokenizer.h"
#include "bx_vocab.h"

#define PAD_ID 0
#define CLS_ID 2
#define MAX_WORD_CHARS 100

static void fail(const char *what, const uint8_t *data, size_t size)
{
    fprintf(stderr, "fuzz_tokenizer: INVARIANT VIOLATED: %s\n  input (%zu bytes):", what, size);
    for (size_t i = 0; i < size && i < 256; i++) fprintf(stderr, " %02x", data[i]);
    fprintf(stderr, "%s\n", size > 256 ? " ..." : "");
    abort();
}

/* ----------------------------------------------------------- UTF-8 oracle
 * Decode to a code point, then judge the value: a sequence is well-formed iff its
 * lead byte announces 2..4 bytes, the followers are 10xxxxxx, the value needs that
 * many bytes (no overlong form), is not a surrogate and is at most U+10FFFF. Returns
 * the sequence length, 0 if ill-formed. */
static size_t oracle_char(const uint8_t *s, size_t n)
{
    static const uint32_t min_value[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    uint8_t b = s[0];
    size_t len;
    uint32_t cp;
    if (b < 0x80) return 1;
    else if ((b & 0xE0) == 0xC0) { len = 2; cp = b & 0x1Fu; }
    else if ((b & 0xF0) == 0xE0) { len = 3; cp = b & 0x0Fu; }
    else if ((b & 0xF8) == 0xF0) { len = 4; cp = b & 0x07u; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min_value[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
    return len;
}

static int oracle_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = oracle_char(s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* ----------------------------------------------------------- reference WordPiece */

static int ref_is_space(uint8_t b) { return b == ' '; }   /* after normalisation */
static int ref_is_punct(uint8_t b)
{
    return b < 0x80 && b > ' ' && b < 0x7F &&
           !((b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z'));
}

/* Linear search of the whole table for exactly w[0..n): -1 if absent. */
static int32_t ref_lookup(const bx_vocab_table_t *t, const uint8_t *w, size_t n)
{
    for (uint32_t i = 0; i < t->count; i++) {
        size_t off = t->offsets[i], len = (size_t)t->offsets[i + 1] - off;
        if (len == n && memcmp(t->bytes + off, w, n) == 0) return (int32_t)t->ids[i];
    }
    return -1;
}

typedef struct { int32_t *ids; size_t n, cap; } ref_out;

static void ref_emit(ref_out *o, int32_t id)
{
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 64;
        int32_t *p = realloc(o->ids, o->cap * sizeof *o->ids);
        if (!p) abort();
        o->ids = p;
    }
    o->ids[o->n++] = id;
}

/* One normalised word w[0..n), valid UTF-8. */
static void ref_word(const uint8_t *w, size_t n, ref_out *o)
{
    size_t bounds[4 * MAX_WORD_CHARS + 8], nb = 0, chars = 0;   /* character starts, then n */
    for (size_t i = 0; i < n; i += oracle_char(w + i, n - i)) {
        if (++chars > MAX_WORD_CHARS) { ref_emit(o, BX_VOCAB_UNK_ID); return; }
        bounds[nb++] = i;
    }
    bounds[nb++] = n;
    size_t first = o->n, start = 0;          /* index into bounds */
    while (start + 1 < nb) {
        const bx_vocab_table_t *t = start == 0 ? &bx_vocab_initial : &bx_vocab_continuation;
        int32_t id = -1;
        size_t end;
        for (end = nb - 1; end > start; end--) {
            id = ref_lookup(t, w + bounds[start], bounds[end] - bounds[start]);
            if (id >= 0) break;
        }
        if (id < 0) { o->n = first; ref_emit(o, BX_VOCAB_UNK_ID); return; }
        ref_emit(o, id);
        start = end;
    }
}

static void ref_tokenize(const uint8_t *s, size_t n, ref_out *o)
{
    uint8_t *t = malloc(n ? n : 1);
    if (!t) abort();
    for (size_t i = 0; i < n; i++) {
        uint8_t b = s[i];
        t[i] = (b < 0x20 || b == 0x7F) ? ' ' : (b >= 'A' && b <= 'Z') ? (uint8_t)(b + 32) : b;
    }
    size_t i = 0;
    while (i < n) {
        if (ref_is_space(t[i])) { i++; continue; }
        if (ref_is_punct(t[i])) { ref_word(t + i, 1, o); i++; continue; }
        size_t j = i;
        while (j < n && !ref_is_space(t[j]) && !ref_is_punct(t[j])) j++;
        ref_word(t + i, j - i, o);
        i = j;
    }
    free(t);
}

/* ----------------------------------------------------------- the target */

static int run(const uint8_t *data, size_t size, int max_ids, int32_t **out)
{
    int32_t *ids = max_ids > 0 ? malloc((size_t)max_ids * sizeof *ids) : NULL;
    if (max_ids > 0 && !ids) abort();
    for (int i = 0; i < max_ids; i++) ids[i] = -12345;
    int k = bx_tokenize(data, size, ids, max_ids);
    *out = ids;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* private copy, exactly sized: an over-read hits ASan, and we can check it is untouched */
    uint8_t *in = malloc(size ? size : 1);
    if (!in) abort();
    if (size) memcpy(in, data, size);

    int valid = oracle_valid(in, size);
    if (bx_utf8_valid(in, size) != valid) fail("bx_utf8_valid disagrees with the oracle", data, size);

    /* unbounded: every word yields >= 1 id and every id >= 1 byte, so size + 1 is room */
    int full_max = (int)(size + 1);
    int32_t *full;
    int total = run(in, size, full_max, &full);
    if (!valid) {
        if (total != -BX_STATUS_BAD_UTF8) fail("invalid UTF-8 not rejected with BAD_UTF8", data, size);
    } else {
        if (total < 0) fail("valid UTF-8 rejected", data, size);
        if (total > full_max) fail("count > max_ids", data, size);
        for (int i = 0; i < total; i++)
            if (full[i] < 0 || full[i] >= BX_VOCAB_SIZE || full[i] == PAD_ID || full[i] == CLS_ID)
                fail("id out of range or a special token", data, size);
        ref_out ref = { NULL, 0, 0 };
        ref_tokenize(in, size, &ref);
        if (ref.n != (size_t)total || (total && memcmp(ref.ids, full, (size_t)total * sizeof *full) != 0)) {
            fprintf(stderr, "C (%d ids):", total);
            for (int i = 0; i < total && i < 64; i++) fprintf(stderr, " %d", full[i]);
            fprintf(stderr, "\nreference (%zu ids):", ref.n);
            for (size_t i = 0; i < ref.n && i < 64; i++) fprintf(stderr, " %d", ref.ids[i]);
            fprintf(stderr, "\n");
            fail("ids differ from the reference WordPiece", data, size);
        }
        free(ref.ids);
    }

    /* truncated runs: a prefix of the unbounded one (or the same rejection) */
    static const int maxes[] = { -1, 0, 1, 2, 3, 5, 8, 23, 24, 64 };
    for (size_t m = 0; m < sizeof maxes / sizeof maxes[0]; m++) {
        int32_t *ids;
        int k = run(in, size, maxes[m], &ids);
        if (!valid) {
            if (k != -BX_STATUS_BAD_UTF8) fail("truncated run: invalid UTF-8 not rejected", data, size);
        } else {
            int want = maxes[m] <= 0 ? 0 : (total < maxes[m] ? total : maxes[m]);
            if (k != want) fail("truncated count != min(max_ids, total)", data, size);
            if (k > 0 && memcmp(ids, full, (size_t)k * sizeof *ids) != 0)
                fail("truncated ids are not a prefix of the unbounded ids", data, size);
        }
        free(ids);
    }
    free(full);
    if (size && memcmp(in, data, size) != 0) fail("input modified", data, size);
    free(in);
    return 0;
}
