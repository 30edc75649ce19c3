/* bx_kernels_arm.h: what the Cortex-M4 kernel files (bx_kernels_arm.c, Armv7-M, and
 * bx_kernels_arm_dsp.c, the DSP extension) share: the binary layer's interfaces, its
 * epilogue around each file's rows step (BX_ARM_SLICE_AFFINE) and bx_kernels_arm.c's
 * assembler macros (each file is its own assembly unit). The algebra is explained at the
 * top of bx_kernels_arm.c. */
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

/* The binary linear layer reads its weights in the slices layout (bx_kernels.h). */
#define BX_BINLINEAR_SLICES     1
/* The largest n_in of the assembly path: Z = F + 2c <= 3 n_in / 2 fits ten planes, and
 * bx_binlinear's column list (n_in / 2 + 16 words) is on the stack. */
#define BX_M4_SLICE_MAX_IN      512

/* One group of 32 rows (bx_kernels_arm.c): z[0..7] the low bytes of Z (byte b of z[i]:
 * row 4i + b), z[8], z[9] its bits of weight 256 and 512 (bit 8 (q % 4) + q / 4: row q);
 * g the group's words, list the column offsets, blocks = their number / 16. */
void bx_m4_slice_counts(uint32_t *z, const uint32_t *g, const int32_t *list, int blocks);
/* The offsets (base + 4 + 4 j: base is the offset of bit 0 minus 4) of v's set bits j into list,
 * lowest first; returns the list's new end. */
int32_t *bx_m4_slice_bits(int32_t *list, uint32_t v, int32_t base);
/* y (rows,) = (float)(e + s2 * Z[q]) * alpha[q] + bias[q], rows = 8, 16, 24 or 32; z as above. */
void bx_m4_slice_affine(float *y, const uint32_t *z, const float *alpha, const float *bias, int rows,
                        int32_t e, int32_t s2);

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
    "   .macro bx_nib2bytes_small r\n"      /* nibbles <= 7 -> bytes */ \
    "   add     \\r, \\r, \\r, lsr #4\n" \
    "   and     \\r, \\r, #0x0F0F0F0F\n" \
    "   .endm\n"

/* bx_m4_slice_affine around a kernel file's bx_zword macro (bx_kernels_arm.c: Armv7-M;
 * bx_kernels_arm_dsp.c: the DSP extension), which the file defines before it pastes this.
 * r0 = y, r1 = z, r2 = alpha, r6 = bias, r4 = e, r5 = s2, r10 / r3 = the planes 256 / 512;
 * the fast loop when both are 0 (n_in <= 170 always), else the one adding them. */
#define BX_ARM_SLICE_AFFINE \
    /* eight rows: two transposed words from r1 -> y at r0 (alpha r2, bias r6 advance) */ \
    /* zext: r9 = bit i of z[8] + 2 bit i of z[9] in each byte (the next word's rows; r10, \
     * r3 hold the planes, shifted one bit per word), when ext */ \
    "   .macro bx_zext ext\n" \
    "   .if \\ext\n" \
    "   and     r9, r10, #0x01010101\n" \
    "   and     r11, r3, #0x01010101\n" \
    "   add     r9, r9, r11, lsl #1\n" \
    "   lsr     r10, r10, #1\n" \
    "   lsr     r3, r3, #1\n" \
    "   .endif\n" \
    "   .endm\n" \
    "   .macro bx_zrows8 ext\n" \
    "   ldm     r1!, {r7, r8}\n" \
    "   bx_zext \\ext\n" \
    "   bx_zword r7, s0, s1, s2, s3, \\ext\n" \
    "   bx_zext \\ext\n" \
    "   bx_zword r8, s4, s5, s6, s7, \\ext\n" \
    "   vcvt.f32.s32 s0, s0\n" \
    "   vcvt.f32.s32 s1, s1\n" \
    "   vcvt.f32.s32 s2, s2\n" \
    "   vcvt.f32.s32 s3, s3\n" \
    "   vcvt.f32.s32 s4, s4\n" \
    "   vcvt.f32.s32 s5, s5\n" \
    "   vcvt.f32.s32 s6, s6\n" \
    "   vcvt.f32.s32 s7, s7\n" \
    "   vldm    r2!, {s8-s15}\n" \
    "   vldm    r6!, {s16-s23}\n" \
    "   vmla.f32 s16, s0, s8\n" \
    "   vmla.f32 s17, s1, s9\n" \
    "   vmla.f32 s18, s2, s10\n" \
    "   vmla.f32 s19, s3, s11\n" \
    "   vmla.f32 s20, s4, s12\n" \
    "   vmla.f32 s21, s5, s13\n" \
    "   vmla.f32 s22, s6, s14\n" \
    "   vmla.f32 s23, s7, s15\n" \
    "   vstm    r0!, {s16-s23}\n" \
    "   .endm\n" \
    "   .text\n" \
    BX_ASM_GLOBAL(bx_m4_slice_affine) \
    "   .type   bx_m4_slice_affine, %function\n" \
    "   .thumb_func\n" \
    "bx_m4_slice_affine:\n"     /* r0 = y, r1 = z, r2 = alpha, r3 = bias, [sp] = rows (8, 16, 24 or 32), \
                                 * [sp, #4] = e, [sp, #8] = s2 */ \
    "   push    {r4-r11, lr}\n" \
    "   vpush   {s16-s23}\n" \
    "   mov     r6, r3\n"                   /* bias */ \
    "   add     r12, sp, #68\n"             /* past 9 registers and 8 floats */ \
    "   ldm     r12, {r3-r5}\n"             /* r3 = rows, r4 = e, r5 = s2 */ \
    "   add     lr, r0, r3, lsl #2\n" \
    "   push    {lr}\n"                     /* the end of y */ \
    "   ldrd    r10, r3, [r1, #32]\n"       /* planes 256 and 512 */ \
    "   orrs    r12, r10, r3\n" \
    "   bne     3f\n" \
    "1: bx_zrows8 0\n" \
    "   ldr     r12, [sp]\n" \
    "   cmp     r0, r12\n" \
    "   bne     1b\n" \
    "   b       4f\n" \
    "3: bx_zrows8 1\n" \
    "   ldr     r12, [sp]\n" \
    "   cmp     r0, r12\n" \
    "   bne     3b\n" \
    "4: add     sp, sp, #4\n" \
    "   vpop    {s16-s23}\n" \
    "   pop     {r4-r11, pc}\n" \
    "   .size   bx_m4_slice_affine, . - bx_m4_slice_affine\n" \

#endif /* BX_KERNELS_ARM_H */
