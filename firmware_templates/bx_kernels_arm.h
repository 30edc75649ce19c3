/* bx_kernels_arm.h: what the Cortex-M4 kernel files (bx_kernels_arm.c, Armv7-M, and
 * bx_kernels_arm_dsp.c, the DSP extension) share: the integer dot loops' interface and
 * the assembler macros both files' loops are written with (each file is its own
 * assembly unit, so each pastes them with __asm__(BX_ARM_ASM_MACROS)). The algebra is
 * explained at the top of bx_kernels_arm.c. */
#ifndef BX_KERNELS_ARM_H
#define BX_KERNELS_ARM_H

#include <stdint.h>

#include "bx_internal.h"        /* BX_ASM_GLOBAL */

/* The engine-facing kernels bx_kernels_arm.c defines (bx_kernels.h, "Kernel selection");
 * bx_kernels.c defines the others from their portable paths. */
#define BX_HAVE_PACK_SIGNS      1
#define BX_HAVE_WEIGH8          1   /* in assembly: declared here, not static */
#define BX_HAVE_ATTEND_SCORES   1
#define BX_HAVE_ATTEND_SOFTMAX  1
#define BX_HAVE_SIGMOID_ARRAY   1
#define BX_HAVE_LAYERNORM       1
#define BX_HAVE_BINLINEAR       1
#define BX_HAVE_ATTEND_WEIGH    1
#define BX_HAVE_EMBED_ROW       1
#define BX_HAVE_COLMEAN         1
#define BX_HAVE_VADD            1
#define BX_HAVE_SLFN_MIX        1

/* Eight columns of bx_attend's V weighting (bx_kernels.h): a VMLA loop in assembly. */
void bx_weigh8(float *o, const float *e, const float *v, int v_stride, int n, float inv);

/* dots (n_rows,) int32 = n - 2 popcount(x ^ W[o]) for n = 128 (4 words per row) or
 * n = 256 (8 words); W (n_rows, words) packed, n_rows % 8 == 0. Defined by
 * bx_kernels_arm.c, or by bx_kernels_arm_dsp.c when built with -DBX_USE_DSP. */
void bx_m4_dots4(int32_t *dots, const uint32_t *x, const uint32_t *w, int n_rows);
void bx_m4_dots8(int32_t *dots, const uint32_t *x, const uint32_t *w, int n_rows);
/* y (n,) in place: int32 dots in, (float)dot * alpha + bias out; n % 8 == 0 */
void bx_m4_affine(float *y, const float *alpha, const float *bias, int n);

/* out (words,) packed signs of x (32 * words,) floats: bit i = x[i] < 0 */
void bx_m4_pack_words(uint32_t *out, const float *x, int words);

/* c (n,) = popcount(q0 ^ k[j * k_stride]), n >= 1; returns min_j c[j] */
int32_t bx_m4_counts32(int32_t *c, uint32_t q0, const uint32_t *k, int k_stride, int n);
/* e (n,) = E[c - lo], n >= 1; returns 1 / sum_j e[j] (in j order from +0.0) */
float bx_m4_softmax_tab(float *e, const int32_t *c, int n, int32_t lo, const float *E);

#define BX_ARM_ASM_MACROS \
    "   .syntax unified\n" \
    "   .thumb\n" \
    /* cnt4 r: nibble counts of r in place (r12 scratch) */ \
    "   .macro bx_cnt4 r\n" \
    "   and     r12, \\r, #0xAAAAAAAA\n" \
    "   sub     \\r, \\r, r12, lsr #1\n" \
    "   and     r12, \\r, #0xCCCCCCCC\n" \
    "   and     \\r, \\r, #0x33333333\n" \
    "   add     \\r, \\r, r12, lsr #2\n" \
    "   .endm\n" \
    /* fa a, b, c: full adder in place: c <- sum bits, a <- carries, b spent (r12 scratch) */ \
    "   .macro bx_fa a, b, c\n" \
    "   eor     \\b, \\a, \\b\n"            /* t = a ^ b */ \
    "   eor     r12, \\a, \\c\n"            /* a ^ c */ \
    "   eor     \\c, \\b, \\c\n"            /* s = t ^ c */ \
    "   and     \\b, \\b, r12\n" \
    "   eor     \\a, \\a, \\b\n"            /* cy = a ^ (t & (a ^ c)) */ \
    "   .endm\n" \
    "   .macro bx_nib2bytes r\n"            /* nibbles <= 15 -> bytes */ \
    "   and     r12, \\r, #0xF0F0F0F0\n" \
    "   and     \\r, \\r, #0x0F0F0F0F\n" \
    "   add     \\r, \\r, r12, lsr #4\n" \
    "   .endm\n" \
    "   .macro bx_nib2bytes_small r\n"      /* nibbles <= 7 -> bytes */ \
    "   add     \\r, \\r, \\r, lsr #4\n" \
    "   and     \\r, \\r, #0x0F0F0F0F\n" \
    "   .endm\n"

/* The dot loops around a kernel file's row macros, which the file defines before it
 * pastes these (bx_kernels_arm.c: Armv7-M; bx_kernels_arm_dsp.c: the DSP extension).
 * bx_m4_dots4(dots r0, x r1, W r2, n_rows r3): x stays in r8-r11, r0 walks W, r1 the
 * dots, lr = n = 128; setup: the file's own extra register set-up. bx_m4_dots8: the
 * same with r2 = x (eight words do not fit beside a row's), n = 256. Eight (four) rows
 * per pass: n_rows % 8 == 0. */
#define BX_ARM_DOTS4(setup) \
    "   .text\n" \
    BX_ASM_GLOBAL(bx_m4_dots4) \
    "   .type   bx_m4_dots4, %function\n" \
    "   .thumb_func\n" \
    "bx_m4_dots4:\n" \
    "   push    {r4-r11, lr}\n" \
    "   ldm     r1, {r8-r11}\n" \
    "   mov     r1, r0\n" \
    "   mov     r0, r2\n" \
    "   add     r3, r0, r3, lsl #4\n"       /* end of W */ \
    setup \
    "   mov     lr, #128\n" \
    "1: bx_row4\n   bx_row4\n   bx_row4\n   bx_row4\n" \
    "   bx_row4\n   bx_row4\n   bx_row4\n   bx_row4\n" \
    "   cmp     r0, r3\n" \
    "   bne     1b\n" \
    "   pop     {r4-r11, pc}\n" \
    "   .size   bx_m4_dots4, . - bx_m4_dots4\n"
#define BX_ARM_DOTS8 \
    BX_ASM_GLOBAL(bx_m4_dots8) \
    "   .type   bx_m4_dots8, %function\n" \
    "   .thumb_func\n" \
    "bx_m4_dots8:\n" \
    "   push    {r4-r11, lr}\n" \
    "   mov     r12, r1\n" \
    "   mov     r1, r0\n" \
    "   mov     r0, r2\n" \
    "   mov     r2, r12\n" \
    "   add     r3, r0, r3, lsl #5\n"       /* end of W */ \
    "   mov     lr, #256\n" \
    "1: bx_row8\n   bx_row8\n   bx_row8\n   bx_row8\n" \
    "   cmp     r0, r3\n" \
    "   bne     1b\n" \
    "   pop     {r4-r11, pc}\n" \
    "   .size   bx_m4_dots8, . - bx_m4_dots8\n"

#endif /* BX_KERNELS_ARM_H */
