/* engine_harness.c: test driver for the engine without the tokenizer.
 * stdin: one sentence per line as space-separated token ids ([CLS] first).
 * stdout per line: "<depth> <cls> <conf hex> <bmacs> <flops> <logit hex>..." plus, with
 * argv[1] == "all", the logits of every exit (policy forced to NONE, one block at a time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bx_engine.h"

extern const bx_block_w bx_blocks[BX_N_BLOCKS];
extern const bx_exit_w bx_exits[BX_N_BLOCKS];

static unsigned bits_of(float f) { unsigned u; memcpy(&u, &f, 4); return u; }

int main(int argc, char **argv)
{
    static char line[1 << 16];
    int all = argc > 1 && strcmp(argv[1], "all") == 0;
    if (all) bx_engine_set_policy(BX_POLICY_NONE, NULL, 0);
    while (fgets(line, sizeof line, stdin)) {
        int32_t ids[BX_SEQ_MAX];
        int n = 0;
        for (char *p = strtok(line, " \n"); p && n < BX_SEQ_MAX; p = strtok(NULL, " \n"))
            ids[n++] = (int32_t)strtol(p, NULL, 10);
        bx_result r;
        memset(&r, 0, sizeof r);
        if (all) {
            bx_embed(ids, n);
            for (int b = 0; b < BX_N_BLOCKS; b++) {
                bx_block_forward(&bx_blocks[b], n);
                bx_exit_after(&bx_exits[b], b, n, &r);
                for (int c = 0; c < BX_N_CLASSES; c++) printf("%08x ", bits_of(r.logits[c]));
            }
            printf("\n");
            continue;
        }
        int depth = bx_forward(ids, n, &r);
        printf("%d %d %08x %u %u", depth, r.cls, bits_of(r.confidence),
               bx_cost_bmacs[n - 1][depth - 1], bx_cost_flops[n - 1][depth - 1]);
        for (int c = 0; c < BX_N_CLASSES; c++) printf(" %08x", bits_of(r.logits[c]));
        printf("\n");
    }
    return 0;
}
