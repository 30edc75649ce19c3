/* bx_engine.h: the inference engine's internal interface (see docs/INTERNALS.md); the
 * public one is bx_classifier.h.
 * Sizes come from the generated bx_model.h; all buffers are static. */
#ifndef BX_ENGINE_H
#define BX_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "bx_internal.h"        /* exactness pragmas, BX_INTERNAL */
#include "bx_classifier.h"      /* bx_result and the public functions */
#include "bx_model.h"
#include "bx_tokenizer.h"
#include "bx_wide.h"             /* the wide exit 0 */

/* Weights of one binary linear layer: W (n_out, BX_WORDS(n_in)) packed, alpha, bias (n_out,). */
typedef struct { const uint32_t *bits; const float *alpha; const float *bias; } bx_binlin_w;
typedef struct { const float *w; const float *b; } bx_norm_w;
typedef struct {
    bx_norm_w   ln1, ln2, ln3;
    bx_binlin_w qkv;                 /* (3d, d) */
    const float *tau;                /* (heads,) attention temperature */
    bx_binlin_w out;                 /* (d, d) */
    bx_binlin_w slfn;                /* (4d, d); bits == NULL without SLFN */
    bx_binlin_w up;                  /* (f, d) */
    bx_binlin_w down;                /* (d, f) */
} bx_block_w;
typedef struct { bx_norm_w ln; const float *w; const float *b; } bx_exit_w;  /* w (C, d) */

#include "bx_weights.h"         /* the model data, in these types */

/* Pieces used by the rendered forward pass (bx_forward.c). */
BX_INTERNAL void bx_embed(const int32_t *ids, int n);
BX_INTERNAL void bx_block_forward(const bx_block_w *blk, int n);
/* Runs exit head `b` (after block b + 1); returns 1 (and fills out) when the policy
 * exits here. */
BX_INTERNAL int  bx_exit_after(const bx_exit_w *ex, int b, int n, bx_result *out);
/* Exit 0 on the wide logits bx_classify summed; returns 1 (and fills out) to exit. */
BX_INTERNAL int  bx_exit_wide(bx_result *out);
BX_INTERNAL int  bx_forward(const int32_t *ids, int n, bx_result *out);  /* returns the exit taken */

#endif /* BX_ENGINE_H */
