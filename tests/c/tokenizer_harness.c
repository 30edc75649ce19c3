/* Test harness for bx_tokenizer.c: runs many inputs in one process.
 *
 * stdin: records, each  u32 little-endian byte length n,
 *                       i32 little-endian max_ids,
 *                       n bytes of text (any bytes: NUL, CR, LF, invalid UTF-8 ...).
 * stdout: one line per record: "<count> <id> <id> ..." or "E <status>" when
 * bx_tokenize returns a negative status. The id buffer is malloc'd with exactly
 * max_ids entries, so the sanitizer build catches any write past it. */
#include <stdio.h>
#include <stdlib.h>

#include "bx_tokenizer.h"

static int read_u32(uint32_t *v)
{
    unsigned char b[4];
    if (fread(b, 1, 4, stdin) != 4) {
        return 0;
    }
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}

int main(void)
{
    uint32_t n, m;
    while (read_u32(&n)) {
        int max_ids;
        uint8_t *text;
        int32_t *ids;
        int r, i;
        if (!read_u32(&m)) {
            fprintf(stderr, "truncated record header\n");
            return 2;
        }
        max_ids = (int)(int32_t)m;
        text = malloc(n ? n : 1u);
        ids = max_ids > 0 ? malloc((size_t)max_ids * sizeof *ids) : NULL;
        if (!text || (max_ids > 0 && !ids)) {
            fprintf(stderr, "out of memory\n");
            return 2;
        }
        if (fread(text, 1, n, stdin) != n) {
            fprintf(stderr, "truncated record\n");
            return 2;
        }
        r = bx_tokenize(text, n, ids, max_ids);
        if (r < 0) {
            printf("E %d\n", -r);
        } else {
            printf("%d", r);
            for (i = 0; i < r; i++) {
                printf(" %ld", (long)ids[i]);
            }
            putchar('\n');
        }
        free(text);
        free(ids);
    }
    return 0;
}
