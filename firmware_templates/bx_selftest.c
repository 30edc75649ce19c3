/* bx_selftest.c: the library's self-test (bx_classifier.h, bx_selftest).
 *
 * bx_golden.h (rendered at export) holds a few test-split sentences, chosen to reach
 * every exit and every class, with the class, exit and logit bits beexgen's reference
 * build computed for them under the artifact's calibrated policy. Classifying them
 * again on the user's board, compiler and flags and comparing every bit tells whether
 * this build computes what PyTorch computed (a flipped weight bit, a fused
 * multiply-add, a wrong float ABI all show up as mismatches). */
#include "bx_engine.h"
#include "bx_golden.h"          /* BX_GOLDEN_N, bx_golden[] */

#include <string.h>

int bx_selftest(void)
{
#if BX_GOLDEN_N == 0
    return -1;                  /* exported without golden sentences: nothing to check */
#else
    float saved[BX_N_EXITS + 1];
    int n_saved = 0;
    const int32_t policy = bx_engine_get_policy(saved, &n_saved);
    const float thr[] = BX_DEFAULT_THRESHOLDS;
    int bad = 0;
    (void)bx_engine_set_policy(BX_DEFAULT_POLICY, thr, BX_DEFAULT_N_THRESHOLDS);
    for (int i = 0; i < BX_GOLDEN_N; i++) {
        const bx_golden_t *g = &bx_golden[i];
        bx_result r;
        int ok = bx_classify((const uint8_t *)g->text, g->len, &r) == 0 && r.cls == g->cls &&
                 r.exit_depth == g->exit;
        for (int c = 0; ok && c < BX_N_CLASSES; c++) {
            uint32_t bits;
            memcpy(&bits, &r.logits[c], sizeof bits);
            ok = bits == g->logits[c];
        }
        bad += !ok;
    }
    (void)bx_engine_set_policy(policy, saved, n_saved);
    return bad;
#endif
}
