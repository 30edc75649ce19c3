/* wide_harness.c: the wide exit's integer sums, word hashes and buckets, for tests.
 * stdin: records of a 4-byte little-endian length and that many bytes of text.
 * stdout per record: "ok <k> <S_0> ... <S_{C'-1}> | <id buckets> | <word hashes> |
 * <word buckets> | <pair buckets>" with the line's k tokenizer ids, or "err <status>"
 * when the tokenizer refuses the text. The sums are fed as the device's input stream
 * feeds them: the words byte by byte from the streaming tokenizer's verdict on each byte
 * (bx_wide_tok_byte), the ids one by one; the word list (hashes, buckets) comes from
 * bx_next_word, independently. */
#include <stdio.h>
#include <stdlib.h>

#include "bx_engine.h"
#include "bx_tokenizer.h"

int main(void)
{
    static uint8_t text[1 << 16];
    static int32_t ids[1 << 16];
    static uint32_t hashes[1 << 16];
    unsigned char len4[4];
    while (fread(len4, 1, 4, stdin) == 4) {
        size_t n = (size_t)len4[0] | (size_t)len4[1] << 8 | (size_t)len4[2] << 16 | (size_t)len4[3] << 24;
        if (n > sizeof text || fread(text, 1, n, stdin) != n) return 2;
        int k = bx_tokenize(text, n, ids, (int)(sizeof ids / sizeof ids[0]));
        if (k < 0) { printf("err %d\n", -k); continue; }
        bx_wide_state st, words;
        size_t pos = 0, len;
        int nw = 0;
        bx_wide_begin(&words);                  /* the word list, by bx_next_word */
        while ((len = bx_next_word(text, n, &pos)) > 0) {
            for (size_t j = 0; j < len; j++) bx_wide_word_byte(&words, text[pos + j]);
            hashes[nw++] = words.h;
            bx_wide_word_end(&words);
            pos += len;
        }
        bx_tok_stream t;                        /* the sums, as the device's stream feeds them */
        bx_tok_begin(&t);
        bx_wide_begin(&st);
        for (size_t j = 0; j < n; j++) {
            bx_tok_byte(&t, text[j]);
            bx_wide_tok_byte(&st, &t, text[j]);
        }
        bx_tok_end(&t);
        bx_wide_tok_end(&st, &t);
        for (int i = 0; i < k; i++) bx_wide_id(&st, ids[i]);
        int64_t sum[BX_WIDE_COLS];
        bx_wide_sums(&st, sum);
        printf("ok %d", k);
        for (int c = 0; c < BX_WIDE_COLS; c++) printf(" %lld", (long long)sum[c]);
        printf(" |");
        for (int i = 0; i + 1 < k; i++) printf(" %lu", (unsigned long)bx_wide_id_bucket(ids[i], ids[i + 1]));
        printf(" |");
        for (int i = 0; i < nw; i++) printf(" %lu", (unsigned long)hashes[i]);
        printf(" |");
        for (int i = 0; i < nw; i++) printf(" %lu", (unsigned long)bx_wide_word_bucket(hashes[i]));
        printf(" |");
        for (int i = 0; nw > 0 && i <= nw; i++)     /* (start, w_0) .. (w_{n-1}, end) */
            printf(" %lu", (unsigned long)bx_wide_pair_bucket(i == 0 ? BX_WIDE_FNV_OFFSET : hashes[i - 1],
                                                             i == nw ? BX_WIDE_FNV_OFFSET : hashes[i]));
        printf("\n");
    }
    return 0;
}
