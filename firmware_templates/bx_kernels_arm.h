/* bx_kernels_arm.h: what the Cortex-M4 kernel files (bx_kernels_arm.c, Armv7-M, and
 * bx_kernels_arm_dsp.c, the DSP extension) share: the integer dot loops' interface and
 * the assembler macros both files' loops are written with (each file is its own
 * assembly unit, so each pastes them with __asm__(BX_ARM_ASM_MACROS)). The algebra is
 * explained at the top of bx_kernels_arm.c. */
#ifndef BX_KERNELS_ARM_H
#define BX_KERNELS_ARM_H

#include <stdint.h>

/* dots (n_rows,) int32 = n - 2 popcount(x ^ W[o]) for n = 128 (4 words per row) or
 * n = 256 (8 words); W (n_rows, words) packed, n_rows % 8 == 0. Defined by
 * bx_kernels_arm.c, or by bx_kernels_arm_dsp.c when built with -DBX_USE_DSP. */
void bx_m4_dots4(int32_t *dots, const uint32_t *x, const uint32_t *w, int n_rows);
void bx_m4_dots8(int32_t *dots, const uint32_t *x, const uint32_t *w, int n_rows);
/* y (n,) in place: int32 dots in, (float)dot * alpha + bias out; n % 8 == 0 */
void bx_m4_affine(float *y, const float *alpha, const float *bias, int n);

/* out (words,) packed signs of x (32 * words,) floats: bit i = x[i] < 0 */
void bx_m4_pack_words(uint32_t *out, const float *x, int words);

/* e (n,) = tau * (32 - 2 popcount(q0 ^ k[j * k_stride])), n >= 1; returns max_j e[j] */
float bx_m4_scores32(float *e, uint32_t q0, const uint32_t *k, int k_stride, int n, float tau);
/* e (n,) = exp(e - m) without exp's clamps (the caller proved them idle), n >= 1;
 * returns 1 / sum_j e[j]; c = {LOG2E, 0.5, LN2_HI, LN2_LO, P0..P5, 1.0} */
float bx_m4_softmax_noclamp(float *e, int n, const float *c, float m);

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

#endif /* BX_KERNELS_ARM_H */
