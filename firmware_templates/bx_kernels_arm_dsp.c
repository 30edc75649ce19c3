/* bx_kernels_arm_dsp.c: the rows step of bx_kernels_arm.c's binary linear epilogue with
 * the Armv7E-M DSP extension (firmware built with --dsp, -DBX_USE_DSP); the count, its
 * transpose and the float part are bx_kernels_arm.c's.
 *
 * A transposed word holds the low bytes of Z of four rows (byte b: row b). UXTB16 splits
 * it into two halfword pairs (rows 0, 2 and, rotated by 8, rows 1, 3), and SMLABB /
 * SMLATB make e + s2 * Z from the bottom or top halfword with s2 (= +-2, a signed
 * halfword) in one instruction each: eight instructions for four rows instead of ten.
 * With bits of weight 256 and 512 (ext), their per-row bytes (r9) go into the halfwords
 * by one AND and one ADD per pair (Z <= 768 fits a halfword).
 */
#include "bx_kernels.h"
#include "bx_kernels_arm.h"

#if defined(BX_USE_DSP)
__asm__(
    "   .syntax unified\n"
    "   .thumb\n"
    /* zword w, sa, sb, sc, sd, ext: as bx_kernels_arm.c's (r4 = e, r5 = s2; with ext, r9 =
     * the rows' bits of weight 256 and 512 from bx_zext; r9, r11, r12, lr scratch) */
    "   .macro bx_zword w, sa, sb, sc, sd, ext\n"
    "   uxtb16  r12, \\w\n"                 /* Z0 | Z2 << 16 */
    "   uxtb16  lr, \\w, ror #8\n"          /* Z1 | Z3 << 16 */
    "   .if \\ext\n"                      /* r9 from bx_zext: byte b = Z's bits 8, 9 of row b */
    "   and     r11, r9, #0x00FF00FF\n"
    "   add     r12, r12, r11, lsl #8\n"
    "   and     r11, r9, #0xFF00FF00\n"
    "   add     lr, lr, r11\n"
    "   .endif\n"
    "   smlabb  r9, r12, r5, r4\n"
    "   smlabb  r11, lr, r5, r4\n"
    "   vmov    \\sa, \\sb, r9, r11\n"
    "   smlatb  r9, r12, r5, r4\n"
    "   smlatb  r11, lr, r5, r4\n"
    "   vmov    \\sc, \\sd, r9, r11\n"
    "   .endm\n"
    BX_ARM_SLICE_AFFINE
);
#else
typedef int bx_kernels_arm_dsp_unused;   /* built without -DBX_USE_DSP: bx_kernels_arm.c has the rows step */
#endif
