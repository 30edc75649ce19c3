/* bx_engine.h: the inference engine's interface (see docs/INTERNALS.md).
 * Sizes come from the generated bx_model.h; all buffers are static. */
#ifndef BX_ENGINE_H
#define BX_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "bx_model.h"

typedef struct {
    int32_t  cls;                    /* predicted class index */
    int32_t  exit_depth;             /* 1..BX_N_BLOCKS: blocks run */
    float    confidence;             /* softmax probability of cls at the exit */
    float    logits[BX_N_CLASSES];   /* logits of the exit taken */
    int32_t  n_tokens;               /* ids fed to the model, [CLS] included */
    uint32_t bmacs;                  /* binary multiply-accumulates executed */
    uint32_t flops;                  /* float operations executed (deploy.py convention) */
} bx_result;

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

/* Tokenize and classify UTF-8 text[0..len). Returns 0, or a negative bx_status:
 * BX_STATUS_BAD_UTF8, or BX_STATUS_EMPTY when the text gives no token besides [CLS]. */
int bx_classify(const uint8_t *text, size_t len, bx_result *out);

/* Model input ids of a text: [CLS] + tokenizer ids, at most BX_SEQ_MAX.
 * Returns the count, or a negative bx_status. */
int bx_model_ids(const uint8_t *text, size_t len, int32_t *ids);

/* Exit policy (values of beexgen.artifact.Policy, generated as BX_POLICY_*).
 * n_thr must be 0 (NONE), 1 (ENTROPY) or BX_N_BLOCKS - 1 (CONFIDENCE, BUDGET).
 * Returns 0, or -BX_STATUS_BAD_ARGUMENT. */
int bx_engine_set_policy(int32_t policy, const float *thr, int n_thr);
/* Current policy; writes its thresholds to thr (room for BX_N_BLOCKS floats),
 * their count to *n_thr. */
int32_t bx_engine_get_policy(float *thr, int *n_thr);
const char *bx_policy_name(int32_t policy);   /* "none", "entropy", ... or NULL */
int32_t bx_policy_from_name(const char *name, size_t len);  /* -1 if unknown */

/* Pieces used by the rendered forward pass (bx_forward.c). */
void bx_embed(const int32_t *ids, int n);
void bx_block_forward(const bx_block_w *blk, int n);
/* Runs exit head `b`; returns 1 (and fills out) when the policy exits here. */
int  bx_exit_after(const bx_exit_w *ex, int b, int n, bx_result *out);
int  bx_forward(const int32_t *ids, int n, bx_result *out);  /* returns the exit depth */

#endif /* BX_ENGINE_H */
