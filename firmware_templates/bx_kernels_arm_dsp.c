/* bx_kernels_arm_dsp.c: the words-4 and words-8 dot loops of bx_kernels_arm.c with the
 * Armv7E-M DSP extension (firmware built with --dsp, -DBX_USE_DSP); the rest of the
 * kernel (adders, nibble counts, the float epilogue) is bx_kernels_arm.c's.
 *
 * USADA8 ends a row's count. A nibble word z (every nibble <= 15) has bytes 16h + l;
 * with y = 15h in each byte (h16 = z & 0xF0F0F0F0, y = h16 - (h16 >> 4)), z - y = h + l
 * byte by byte and never borrows, so USAD8(z, y) = sum of the eight nibbles, and
 * USADA8 adds it to a running total: three instructions from a nibble word to the row's
 * count, with no byte step, no multiply, and no limit from byte sums. A words-4 row
 * needs two (z = cnt4(s) + 2 cnt4(cy) and cnt4(d)), a words-8 row four (A, B and twice
 * cnt4(f) with the same y).
 */
#include "bx_kernels.h"
#include "bx_kernels_arm.h"

#if defined(BX_USE_DSP)
#if !defined(BX_UNITY)   /* one unit: bx_kernels_arm.c, included before, pasted them */
__asm__(BX_ARM_ASM_MACROS);
#endif

__asm__(
    /* acc (+)= sum of the nibbles of z; r12 scratch. first: USAD8, else USADA8 */
    "   .macro bx_nibsum acc, z, first\n"
    "   and     r12, \\z, #0xF0F0F0F0\n"
    "   sub     r12, r12, r12, lsr #4\n"
    "   .if \\first\n"
    "   usad8   \\acc, \\z, r12\n"
    "   .else\n"
    "   usada8  \\acc, \\z, r12, \\acc\n"
    "   .endif\n"
    "   .endm\n"
    /* words-4 row: r0 = W row, r8-r11 = x, lr = n, dot stored at r1 */
    "   .macro bx_row4\n"
    "   ldm     r0!, {r4-r7}\n"
    "   eor     r4, r4, r8\n"
    "   eor     r5, r5, r9\n"
    "   eor     r6, r6, r10\n"
    "   eor     r7, r7, r11\n"
    "   bx_fa   r4, r5, r6\n"               /* r6 = s, r4 = cy */
    "   bx_cnt4 r6\n"
    "   bx_cnt4 r4\n"
    "   add     r6, r6, r4, lsl #1\n"       /* z <= 12 */
    "   bx_cnt4 r7\n"
    "   bx_nibsum r6, r6, 1\n"
    "   bx_nibsum r6, r7, 0\n"              /* p */
    "   sub     r6, lr, r6, lsl #1\n"
    "   str     r6, [r1], #4\n"
    "   .endm\n"
    BX_ARM_DOTS4("")
    /* words-8 row: as in bx_kernels_arm.c up to A (r10), B (r11) and cnt4(f) (r4) */
    "   .macro bx_row8\n"
    "   ldm     r0!, {r4-r7}\n"
    "   ldm     r2, {r8-r11}\n"
    "   eor     r4, r4, r8\n"
    "   eor     r5, r5, r9\n"
    "   eor     r6, r6, r10\n"
    "   eor     r7, r7, r11\n"
    "   bx_fa   r4, r5, r6\n"
    "   ldm     r0!, {r8-r11}\n"
    "   ldrd    r5, r12, [r2, #16]\n"
    "   eor     r8, r8, r5\n"
    "   eor     r9, r9, r12\n"
    "   ldrd    r5, r12, [r2, #24]\n"
    "   eor     r10, r10, r5\n"
    "   eor     r11, r11, r12\n"
    "   bx_fa   r6, r7, r8\n"
    "   bx_fa   r8, r9, r10\n"
    "   bx_fa   r4, r6, r8\n"
    "   bx_cnt4 r10\n"
    "   bx_cnt4 r8\n"
    "   add     r10, r10, r8, lsl #1\n"     /* A */
    "   bx_cnt4 r11\n"
    "   bx_cnt4 r4\n"
    "   add     r11, r11, r4, lsl #1\n"     /* B */
    "   bx_nibsum r10, r10, 1\n"
    "   bx_nibsum r10, r11, 0\n"
    "   and     r12, r4, #0xF0F0F0F0\n"     /* + 2 pop(f): the same y twice */
    "   sub     r12, r12, r12, lsr #4\n"
    "   usada8  r10, r4, r12, r10\n"
    "   usada8  r10, r4, r12, r10\n"
    "   sub     r10, lr, r10, lsl #1\n"
    "   str     r10, [r1], #4\n"
    "   .endm\n"
    BX_ARM_DOTS8
);

#else
typedef int bx_kernels_arm_dsp_unused;   /* built without -DBX_USE_DSP: bx_kernels_arm.c has the loops */
#endif

