/* bx_golden_driver.c: beexgen's reference run for the self-test's golden answers
 * (codegen/selftest.py), never part of a generated tree. Reads texts on stdin, each as a
 * 4-byte little-endian length and its bytes, classifies each with the library under the
 * artifact's policy and prints one line per text: `<cls> <exit> <logit bits hex>...`,
 * or `err <status>`. */
#include <stdio.h>
#include <string.h>

#include "bx_classifier.h"

int main(void)
{
    static uint8_t buf[1 << 16];
    unsigned char h[4];
    while (fread(h, 1, 4, stdin) == 4) {
        size_t n = (size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16 | (size_t)h[3] << 24;
        if (n > sizeof buf || fread(buf, 1, n, stdin) != n) return 2;
        bx_result r;
        int rc = bx_classify(buf, n, &r);
        if (rc) { printf("err %d\n", -rc); continue; }
        printf("%d %d", (int)r.cls, (int)r.exit_depth);
        for (int c = 0; c < BX_N_CLASSES; c++) {
            uint32_t bits;
            memcpy(&bits, &r.logits[c], sizeof bits);
            printf(" %08lx", (unsigned long)bits);
        }
        printf("\n");
    }
    return 0;
}
