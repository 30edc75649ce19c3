/* wide_harness.c: the wide exit's integer sums and bigram buckets, for tests.
 * stdin: records of a 4-byte little-endian length and that many bytes of text.
 * stdout per record: "ok <k> <S_0> ... <S_{C-1}> <bucket_0> ... <bucket_{k-2}>" with the
 * line's k tokenizer ids, or "err <status>" when the tokenizer refuses the text. */
#include <stdio.h>
#include <stdlib.h>

#include "bx_engine.h"
#include "bx_tokenizer.h"

int main(void)
{
    static uint8_t text[1 << 16];
    static int32_t ids[1 << 16];
    unsigned char len4[4];
    while (fread(len4, 1, 4, stdin) == 4) {
        size_t n = (size_t)len4[0] | (size_t)len4[1] << 8 | (size_t)len4[2] << 16 | (size_t)len4[3] << 24;
        if (n > sizeof text || fread(text, 1, n, stdin) != n) return 2;
        int k = bx_tokenize(text, n, ids, (int)(sizeof ids / sizeof ids[0]));
        if (k < 0) { printf("err %d\n", -k); continue; }
        int32_t s[BX_N_CLASSES];
        bx_wide_sums(s, ids, k);
        printf("ok %d", k);
        for (int c = 0; c < BX_N_CLASSES; c++) printf(" %ld", (long)s[c]);
        for (int i = 0; i + 1 < k; i++) printf(" %lu", (unsigned long)bx_wide_bucket(ids[i], ids[i + 1]));
        printf("\n");
    }
    return 0;
}
