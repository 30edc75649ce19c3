/* On-device WordPiece tokenizer, id for id the same as HF `tokenizers` running the
 * pipeline of train/tokenizer.py (docs/INTERNALS.md, "Tokenizer"):
 *
 *   1. validate:      the input must be UTF-8 that Python's strict decoder accepts;
 *   2. normalize:     control bytes 0x00-0x1F and 0x7F become ' ', ASCII A-Z become a-z
 *                     (nothing else: non-ASCII letters such as 'É' stay as they are);
 *   3. pre-tokenize:  split on runs of ' ' (dropped); every ASCII punctuation character
 *                     !"#$%&'()*+,-./ :;<=>?@ [\]^_` {|}~ is a word of its own;
 *   4. WordPiece:     each word -> greedy longest-match pieces from the vocabulary,
 *                     "##" marking the pieces after the first; a word that cannot be
 *                     covered, or is longer than 100 code points, is a single [UNK].
 *
 * Nothing is copied: normalisation is applied on the fly while scanning (a control
 * byte is simply treated as a space) and while comparing with the vocabulary (an
 * upper-case ASCII byte is compared as its lower-case letter). All of this works on
 * bytes: after validation, every byte >= 0x80 belongs to a multi-byte character, and
 * every separator and punctuation character is a single ASCII byte, so no decoding to
 * code points is ever needed. */
#include "bx_tokenizer.h"
#include "bx_vocab.h"

/* ------------------------------------------------------------------ UTF-8 */

/* Continuation bytes of a multi-byte character look like 10xxxxxx. */
static int is_continuation(uint8_t b)
{
    return (b & 0xC0u) == 0x80u;
}

/* Length (1..4) of the well-formed UTF-8 character at s[0..n), or 0 if it is not one.
 * This is the table of well-formed sequences of the Unicode standard (ch. 3, table 3-7),
 * which is exactly what Python's strict decoder accepts:
 *
 *   00..7F                          ASCII
 *   C2..DF  80..BF                  (C0, C1 would be overlong encodings of ASCII)
 *   E0      A0..BF  80..BF          (E0 80..9F would be overlong)
 *   E1..EC  80..BF  80..BF
 *   ED      80..9F  80..BF          (ED A0..BF would be the surrogates D800..DFFF)
 *   EE..EF  80..BF  80..BF
 *   F0      90..BF  80..BF  80..BF  (F0 80..8F would be overlong)
 *   F1..F3  80..BF  80..BF  80..BF
 *   F4      80..8F  80..BF  80..BF  (F4 90.. would be above U+10FFFF)
 *
 * Everything else is rejected: stray continuation bytes 80..BF, C0, C1, F5..FF, and
 * sequences cut short by the end of the input. */
static size_t utf8_char_len(const uint8_t *s, size_t n)
{
    uint8_t b0 = s[0];
    uint8_t lo = 0x80u, hi = 0xBFu;     /* allowed range of the second byte */
    size_t len, i;

    if (b0 < 0x80u) {
        return 1;
    }
    if (b0 < 0xC2u) {
        return 0;
    }
    if (b0 < 0xE0u) {
        len = 2;
    } else if (b0 < 0xF0u) {
        len = 3;
        if (b0 == 0xE0u) {
            lo = 0xA0u;
        } else if (b0 == 0xEDu) {
            hi = 0x9Fu;
        }
    } else if (b0 < 0xF5u) {
        len = 4;
        if (b0 == 0xF0u) {
            lo = 0x90u;
        } else if (b0 == 0xF4u) {
            hi = 0x8Fu;
        }
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (i = 2; i < len; i++) {
        if (!is_continuation(s[i])) {
            return 0;
        }
    }
    return len;
}

int bx_utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t len = utf8_char_len(s + i, n - i);
        if (len == 0) {
            return 0;
        }
        i += len;
    }
    return 1;
}

/* ------------------------------------------------- normalizer, pre-tokenizer */

/* A control byte is normalised to ' ', and runs of ' ' separate words. */
static int is_separator(uint8_t b)
{
    return b == ' ' || b < 0x20u || b == 0x7Fu;
}

/* ASCII punctuation [!-/:-@[-`{-~]: each one is a word by itself. */
static int is_punct(uint8_t b)
{
    return (b >= '!' && b <= '/') || (b >= ':' && b <= '@') ||
           (b >= '[' && b <= '`') || (b >= '{' && b <= '~');
}

/* The normalizer's only change to a byte inside a word: ASCII A-Z -> a-z. Bytes of
 * multi-byte characters (>= 0x80) are never touched, so 'É' stays 'É'. */
static uint8_t ascii_lower(uint8_t b)
{
    return (b >= 'A' && b <= 'Z') ? (uint8_t)(b + ('a' - 'A')) : b;
}

/* ------------------------------------------------------------ vocabulary */

/* Compare a vocabulary piece with a part of the (not yet normalised) input, the way
 * the tables are sorted: bytewise, and a proper prefix before the longer string. */
static int compare_piece(const uint8_t *piece, size_t piece_len, const uint8_t *key, size_t key_len)
{
    size_t n = piece_len < key_len ? piece_len : key_len;
    size_t i;
    for (i = 0; i < n; i++) {
        uint8_t k = ascii_lower(key[i]);
        if (piece[i] != k) {
            return piece[i] < k ? -1 : 1;
        }
    }
    if (piece_len == key_len) {
        return 0;
    }
    return piece_len < key_len ? -1 : 1;
}

/* Binary search of key[0..key_len) in a table. Returns 1 and sets *id if found. */
static int table_find(const bx_vocab_table_t *t, const uint8_t *key, size_t key_len, int32_t *id)
{
    uint32_t lo = 0, hi = t->count;     /* the answer, if any, is in [lo, hi) */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2u;
        size_t off = t->offsets[mid];
        size_t len = (size_t)t->offsets[mid + 1u] - off;
        int c = compare_piece(t->bytes + off, len, key, key_len);
        if (c == 0) {
            *id = (int32_t)t->ids[mid];
            return 1;
        }
        if (c < 0) {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return 0;
}

/* Move a cut position p inside w[0..len) back to the start of the character it falls
 * in (p == len, the end of the word, is always a character boundary). */
static size_t char_boundary(const uint8_t *w, size_t len, size_t p)
{
    while (p > 0 && p < len && is_continuation(w[p])) {
        p--;
    }
    return p;
}

/* Greedy longest match: the longest piece of table t that w[0..len) starts with.
 *
 * This is tokenizers' loop: try the whole rest of the word, and while it is not in the
 * vocabulary drop its last *character* (not byte) and try again. Taking the longest
 * piece first is the rule, not an optimisation: with "un", "##aff", "##able" and
 * "unaff" in the vocabulary, "unaffable" is "unaff ##able", never "un ##aff ##able".
 *
 * Two shortcuts give the same answer: a candidate longer than the table's longest
 * piece cannot match, so we start at that length; and cuts inside a character are
 * skipped (vocabulary pieces are whole characters). Returns the piece's length in
 * bytes (0: no piece matches) and sets *id. */
static size_t longest_match(const bx_vocab_table_t *t, const uint8_t *w, size_t len, int32_t *id)
{
    size_t cut = len < t->max_len ? len : (size_t)t->max_len;
    cut = char_boundary(w, len, cut);
    while (cut > 0) {
        if (table_find(t, w, cut, id)) {
            return cut;
        }
        cut = char_boundary(w, len, cut - 1u);
    }
    return 0;
}

/* ------------------------------------------------------------- WordPiece */

/* One word (normalised on the fly) -> its WordPiece ids, into pieces[] (room for
 * BX_VOCAB_MAX_WORD_CHARS: a word of at most that many characters has at most that many
 * pieces). Returns the count. A word that cannot be covered, or is longer than
 * BX_VOCAB_MAX_WORD_CHARS code points (`too_long`), is the single id [UNK]. */
static int tokenize_word(const uint8_t *w, size_t len, int too_long, int32_t *pieces)
{
    size_t start = 0;
    int k = 0;

    if (too_long) {
        pieces[0] = BX_VOCAB_UNK_ID;
        return 1;
    }
    while (start < len) {
        /* The first piece comes from the word-initial table; the others are looked up
         * as "##" + rest, i.e. in the continuation table, stored without the "##". */
        const bx_vocab_table_t *t = start == 0 ? &bx_vocab_initial : &bx_vocab_continuation;
        int32_t id = 0;
        size_t piece = longest_match(t, w + start, len - start, &id);
        if (piece == 0) {
            /* Some part of the word matches nothing: the whole word is one [UNK],
             * replacing any pieces already found for it. */
            pieces[0] = BX_VOCAB_UNK_ID;
            return 1;
        }
        pieces[k++] = id;
        start += piece;
    }
    return k;
}

/* ------------------------------------------------------------- the stream */

/* Streaming UTF-8 validation, the table of utf8_char_len one byte at a time: `need`
 * continuation bytes are still expected, the next one within [lo, hi]. */
static void utf8_step(bx_tok_stream *t, uint8_t b)
{
    if (t->need) {
        if (b < t->lo || b > t->hi) { t->bad = 1; return; }
        t->need--;
        t->lo = 0x80u;
        t->hi = 0xBFu;
        return;
    }
    if (b < 0x80u) return;
    t->lo = 0x80u;
    t->hi = 0xBFu;
    if (b < 0xC2u) { t->bad = 1; return; }
    if (b < 0xE0u) { t->need = 1; return; }
    if (b < 0xF0u) {
        t->need = 2;
        if (b == 0xE0u) t->lo = 0xA0u;
        else if (b == 0xEDu) t->hi = 0x9Fu;
        return;
    }
    if (b < 0xF5u) {
        t->need = 3;
        if (b == 0xF0u) t->lo = 0x90u;
        else if (b == 0xF4u) t->hi = 0x8Fu;
        return;
    }
    t->bad = 1;
}

/* The word in progress is complete: its ids are appended to t->out. */
static void end_word(bx_tok_stream *t)
{
    if (t->chars == 0) return;
    t->n_out += tokenize_word(t->word, t->len, t->chars > BX_VOCAB_MAX_WORD_CHARS, t->out + t->n_out);
    t->ended++;
    t->len = 0;
    t->chars = 0;
}

/* One byte of the word in progress (normalised: ASCII A-Z -> a-z). It is kept while the
 * word has at most BX_VOCAB_MAX_WORD_CHARS characters; past that the word is [UNK]
 * whatever follows, so only its character count goes on. */
static void word_byte(bx_tok_stream *t, uint8_t b)
{
    b = ascii_lower(b);
    if (!is_continuation(b) && t->chars <= BX_VOCAB_MAX_WORD_CHARS) t->chars++;
    if (t->chars <= BX_VOCAB_MAX_WORD_CHARS) t->word[t->len++] = b;
}

void bx_tok_begin(bx_tok_stream *t)
{
    t->len = 0;
    t->chars = 0;
    t->need = 0;
    t->lo = 0x80u;
    t->hi = 0xBFu;
    t->bad = 0;
    t->n_out = 0;
    t->ended = 0;
    t->kind = BX_TOK_NONE;
}

int bx_tok_byte(bx_tok_stream *t, uint8_t b)
{
    t->n_out = 0;
    t->ended = 0;
    t->kind = BX_TOK_NONE;
    if (t->bad) return 0;                    /* the text is refused at its end anyway */
    t->kind = BX_TOK_NONE;
    utf8_step(t, b);
    if (t->bad) return 0;
    if (is_separator(b)) {
        t->kind = BX_TOK_SEP;
        end_word(t);
    } else if (is_punct(b)) {
        t->kind = BX_TOK_PUNCT;
        end_word(t);
        word_byte(t, b);
        end_word(t);
    } else {
        t->kind = BX_TOK_WORD;
        word_byte(t, b);
    }
    return t->n_out;
}

int bx_tok_end(bx_tok_stream *t)
{
    t->n_out = 0;
    t->ended = 0;
    if (t->bad || t->need) {
        t->bad = 1;
        return -BX_STATUS_BAD_UTF8;
    }
    end_word(t);
    return t->n_out;
}

size_t bx_next_word(const uint8_t *s, size_t n, size_t *pos)
{
    size_t i = *pos;
    while (i < n && is_separator(s[i])) {
        i++;
    }
    *pos = i;
    if (i >= n) {
        return 0;
    }
    if (is_punct(s[i])) {
        return 1;
    }
    size_t k = 1;           /* a word runs up to the next separator, punctuation or the end */
    while (i + k < n && !is_separator(s[i + k]) && !is_punct(s[i + k])) {
        k++;
    }
    return k;
}


/* ------------------------------------------------------------- whole texts */

int bx_tokenize(const uint8_t *s, size_t n, int32_t *ids, int max_ids)
{
    static bx_tok_stream t;
    size_t max = max_ids > 0 ? (size_t)max_ids : 0u, count = 0;
    bx_tok_begin(&t);
    for (size_t i = 0; i <= n; i++) {
        int k = i < n ? bx_tok_byte(&t, s[i]) : bx_tok_end(&t);
        if (k < 0) return -BX_STATUS_BAD_UTF8;
        for (int j = 0; j < k && count < max; j++) ids[count++] = t.out[j];
    }
    return (int)count;
}
